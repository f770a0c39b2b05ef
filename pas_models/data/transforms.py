"""Spatial transforms on decoded frames: resize rule + crop as one crop-then-resize, flip, normalise.

Resizing whole frames and then cropping equals cropping the matching box of the
source frame and resizing only that box; the latter touches fewer pixels, so
every view here is ``crop_resize(frames, box, size)``. Boxes are in source
pixels, computed from the spec's view (fixed resize or short-side range, crop).

Frames stay uint8 until ``to_clip`` turns them into float32 ``(3, T, S, S)``,
normalised with the dataset's mean and std (default: the Kinetics values
torchvision's video models use).

Frames decoded on a GPU (torchcodec on CUDA) arrive as a uint8 tensor on that device and stay there: the same
box, the same resize (in float, rounded back to uint8, as CUDA has no uint8 antialiased resize: within one
level of the CPU's uint8 kernel) and the same normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pas_models.spec import ViewSpec

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


@dataclass(frozen=True)
class Box:
    """A crop in source pixels: top, left, height, width (integers, inside the frame)."""

    top: int
    left: int
    height: int
    width: int


def _scales(src_h: int, src_w: int, view: ViewSpec, short_side: float | None, train: bool) -> tuple[float, float]:
    """Source -> resized scale factors (y, x)."""
    if view.resize == "fixed":
        h, w = view.resize_train if train else view.resize_test
        return h / src_h, w / src_w
    side = short_side if short_side is not None else view.resize_test[0]
    s = side / min(src_h, src_w)
    return s, s


def _box(src_h: int, src_w: int, sy: float, sx: float, crop: int, fy: float, fx: float) -> Box:
    """The source box of a ``crop`` x ``crop`` window at relative position (fy, fx) in [0, 1] of the resized frame."""
    rh, rw = src_h * sy, src_w * sx  # resized frame size
    ch, cw = min(crop, rh), min(crop, rw)
    top, left = (rh - ch) * fy, (rw - cw) * fx
    top_px, left_px = round(top / sy), round(left / sx)
    h, w = max(1, round(ch / sy)), max(1, round(cw / sx))
    return Box(min(top_px, src_h - h), min(left_px, src_w - w), min(h, src_h), min(w, src_w))


def train_box(src_h: int, src_w: int, view: ViewSpec, rng: np.random.Generator) -> tuple[Box, bool]:
    """Random resize (short side in the range, or fixed), random crop position, random horizontal flip."""
    short = float(rng.integers(view.resize_train[0], view.resize_train[1] + 1)) if view.resize == "short_side" else None
    sy, sx = _scales(src_h, src_w, view, short, train=True)
    box = _box(src_h, src_w, sy, sx, view.crop_train, float(rng.random()), float(rng.random()))
    return box, bool(rng.random() < 0.5)


def eval_boxes(src_h: int, src_w: int, view: ViewSpec, crops: int = 1) -> list[Box]:
    """Centre crop (crops=1) or three crops along the long side: start, centre, end (crops=3)."""
    if crops not in (1, 3):
        raise ValueError(f"test crops must be 1 or 3, got {crops}")
    sy, sx = _scales(src_h, src_w, view, None, train=False)
    positions = (0.5,) if crops == 1 else (0.0, 0.5, 1.0)
    if src_h > src_w:
        return [_box(src_h, src_w, sy, sx, view.crop_test, p, 0.5) for p in positions]
    return [_box(src_h, src_w, sy, sx, view.crop_test, 0.5, p) for p in positions]


def crop_resize(frames: np.ndarray | torch.Tensor, box: Box, size: int, flip: bool = False) -> torch.Tensor:
    """uint8 (N, H, W, 3) frames -> uint8 (N, 3, size, size): the box, resized (bilinear, antialiased), on the
    frames' device.

    Stays in uint8 (channels-last, torch's vectorised path: ~8x faster than float on CPU).
    """
    crop = frames[:, box.top:box.top + box.height, box.left:box.left + box.width]
    if isinstance(crop, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(crop))
    else:
        x = crop.contiguous()
    x = resize_frames(x.permute(0, 3, 1, 2), size)  # NHWC memory: channels-last
    return x.flip(-1) if flip else x


def resize_frames(x: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, 3, h, w) -> (N, 3, size, size), bilinear with antialiasing; unchanged if already that size.

    On the CPU in uint8; elsewhere (CUDA has no uint8 antialiased kernel) in float32, rounded back to uint8."""
    if x.shape[-2:] == (size, size):
        return x
    if x.device.type == "cpu":
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return resize_in_float(x, size)


def resize_in_float(x: torch.Tensor, size: int) -> torch.Tensor:
    """The float32 resize of uint8 frames, rounded and clamped back to uint8 (the GPU's path)."""
    y = F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return y.round_().clamp_(0, 255).to(torch.uint8).contiguous(memory_format=torch.channels_last)


def to_clip(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 (N, 3, S, S) frames -> normalised float32 clip (3, N, S, S), on the frames' device."""
    clip = x.permute(1, 0, 2, 3).contiguous().float()  # reorder while 1 byte per element
    m, s = torch.tensor(mean, dtype=clip.dtype), torch.tensor(std, dtype=clip.dtype)
    scale = (1.0 / (255.0 * s)).view(3, 1, 1, 1).to(clip.device)
    shift = (m / s).view(3, 1, 1, 1).to(clip.device)
    return clip.mul_(scale).sub_(shift)  # (x / 255 - mean) / std in two passes
