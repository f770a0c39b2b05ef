"""ArchSpec: a frozen, JSON-round-trippable description of a video network and its input view.

Everything that determines a network's weights and its cost lives here as data:
builders (``pas_models.nets``) read only the spec, reduction operators
(``pas_models.reductions``) map a spec to a new spec, FLOPs are counted on the
spec's own view (``pas_models.flops``).

Frames, in three vocabularies:

    source video:  0 1 2 3 4 5 6 7 8 9 ...            (decoded frames)
    raw clip:      T frames, ``frame_stride`` source frames apart
                   (paper: "the input clip"; ``t`` cuts T, ``f`` doubles the stride)
    pathway p:     raw[::p.sample_stride]             (SlowFast: slow 16, fast 2;
                                                       R(2+1)D: the raw clip itself)

The model's input tensor is ``raw[::input_stride]`` with ``input_stride`` the gcd
of the pathway strides (SlowFast: the fast frames); each pathway subsamples it
inside the network. So the data pipeline decodes only frames some pathway uses.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from pas_models.errors import SpecError
from pas_models.typed_data import from_data

SPEC_VERSION = 1
FAMILIES = ("r2plus1d", "slowfast", "x3d")
RESIZE_KINDS = ("fixed", "short_side")
# Spatial stride of each family's stem in front of the residual stages
# (R(2+1)D and X3D: one stride-2 conv; SlowFast: stride-2 conv + stride-2 max-pool).
STEM_SPATIAL_STRIDE = {"r2plus1d": 2, "slowfast": 4, "x3d": 2}


@dataclass(frozen=True)
class ViewSpec:
    """The input view of one sample.

    frames: raw clip length T, in frames.
    frame_stride: source-video frames between two consecutive raw-clip frames.
    crop_train, crop_test: side of the square crop, pixels.
    resize: how frames are resized before cropping:
        "fixed": to exactly (H, W) = resize_train (training) / resize_test (test);
        "short_side": the short side to a random value in the range
        resize_train = (min, max) for training and to resize_test[0] for test
        (resize_test = (S, S)), keeping the aspect ratio.
    """

    frames: int
    frame_stride: int
    crop_train: int
    crop_test: int
    resize: str
    resize_train: tuple[int, int]
    resize_test: tuple[int, int]


@dataclass(frozen=True)
class PathwaySpec:
    """One pathway (R(2+1)D has one, SlowFast two): widths, kernels and sampling.

    sample_stride: the pathway takes every n-th raw-clip frame.
    stem_width: output channels of the stem.
    stem_mid_width: (2+1)D stem only: channels between its spatial and its
        temporal convolution (torchvision: 45); None for a 3D stem and for X3D's
        (whose channel-wise temporal conv keeps the stem width).
    stem_temporal_kernel, stem_spatial_kernel: kernel sizes of the stem (frames, pixels).
    stage_widths: per residual stage, the inner width of its blocks (bottleneck;
        X3D: the expanded width of the channel-wise conv) or the block width
        (basic block; then equal to stage_out_widths).
    stage_out_widths: per residual stage, output channels of its blocks.
    stage_temporal_kernels: per stage, temporal kernel of the blocks' temporal conv.
    stage_temporal_strides: per stage, temporal stride of its first block.
    """

    name: str
    sample_stride: int
    stem_width: int
    stem_mid_width: int | None
    stem_temporal_kernel: int
    stem_spatial_kernel: int
    stage_widths: tuple[int, ...]
    stage_out_widths: tuple[int, ...]
    stage_temporal_kernels: tuple[int, ...]
    stage_temporal_strides: tuple[int, ...]


@dataclass(frozen=True)
class FusionSpec:
    """SlowFast lateral connections (fast -> slow), after the stem and stages 1..n-1.

    conv_channel_ratio: fused channels = ratio x fast channels (paper: 2).
    kernel: temporal kernel of the fusion conv (paper: 5); its temporal stride
        is alpha, the ratio of the two pathways' sample strides.
    """

    conv_channel_ratio: int
    kernel: int


@dataclass(frozen=True)
class AppliedOp:
    """One reduction step already applied: operator key and its gamma."""

    op: str
    gamma: float


@dataclass(frozen=True)
class TuckerConv:
    """One convolution replaced by its Tucker-2 form (operator k, ``pas_models.tucker``):
    1x1x1 (C_in -> rank_in), the kernel (rank_in -> rank_out, the original's stride and padding),
    1x1x1 (rank_out -> C_out).

    conv: the Conv3d's module path in the built network, e.g. ``layer2.0.conv1.0.0``.
    """

    conv: str
    rank_in: int
    rank_out: int


@dataclass(frozen=True)
class ArchSpec:
    """A network and its input view. See the module docstring for the frame model.

    head_width: X3D only: channels of the head's projection in front of the classifier (2048);
        None for the families whose classifier reads the pooled features.
    """

    name: str
    family: str
    num_classes: int
    view: ViewSpec
    pathways: tuple[PathwaySpec, ...]
    stage_blocks: tuple[int, ...]
    stage_spatial_strides: tuple[int, ...]
    fusion: FusionSpec | None = None
    head_dropout: float = 0.0
    applied: tuple[AppliedOp, ...] = ()
    tucker: tuple[TuckerConv, ...] = ()  # decomposed convolutions, in network order
    head_width: int | None = None

    def __post_init__(self) -> None:
        _validate(self)

    # ---- derived quantities (never stored) ---------------------------------
    @property
    def ops(self) -> str:
        """Operators applied so far, e.g. "c,f,t" ("" for a base network)."""
        return ",".join(a.op for a in self.applied)

    @property
    def label(self) -> str:
        """Readable name: the preset and its operators, e.g. "r2plus1d_18+c+f"."""
        return "+".join([self.name, *(a.op for a in self.applied)])

    @property
    def alpha(self) -> int | None:
        """SlowFast speed ratio (slow stride / fast stride); None for one pathway."""
        if len(self.pathways) != 2:
            return None
        return self.pathways[0].sample_stride // self.pathways[1].sample_stride

    @property
    def input_stride(self) -> int:
        """Raw-clip frames between consecutive frames of the model's input tensor."""
        return math.gcd(*(p.sample_stride for p in self.pathways))

    @property
    def input_frames(self) -> int:
        """Frames in the model's input tensor."""
        return _frames_taken(self.view.frames, self.input_stride)

    def pathway_frames(self, pathway: PathwaySpec) -> int:
        """Frames the given pathway sees (ceil(T / sample_stride))."""
        return _frames_taken(self.view.frames, pathway.sample_stride)

    def temporal_stride(self, pathway: PathwaySpec) -> int:
        """Total temporal downsampling of a pathway (its stages' strides; every stem has temporal stride 1)."""
        return math.prod(pathway.stage_temporal_strides)

    def frames_below_temporal_stride(self) -> list[str]:
        """The pathways that see fewer frames than their total temporal downsampling (their tail's activation
        maps have one frame: halving the clip then saves less than half the cost), as "name: F < S"."""
        return [f"{p.name} {self.pathway_frames(p)} frames < its temporal stride {self.temporal_stride(p)}"
                for p in self.pathways if self.pathway_frames(p) < self.temporal_stride(p)]

    def crop(self, train: bool = False) -> int:
        return self.view.crop_train if train else self.view.crop_test

    def input_shape(self, train: bool = False) -> tuple[int, int, int, int]:
        """(C, T, H, W) of one sample as the model receives it."""
        side = self.crop(train)
        return (3, self.input_frames, side, side)

    def pathway_shapes(self, train: bool = False) -> dict[str, tuple[int, int, int, int]]:
        """(C, T, H, W) per pathway, after each pathway's own frame sampling."""
        side = self.crop(train)
        return {p.name: (3, self.pathway_frames(p), side, side) for p in self.pathways}

    def source_frame_offsets(self) -> tuple[int, ...]:
        """Offsets, in source-video frames from the clip start, of the input tensor's frames."""
        step = self.view.frame_stride * self.input_stride
        return tuple(i * step for i in range(self.input_frames))

    @property
    def spatial_stride(self) -> int:
        """Total spatial downsampling of the network (input pixels per output cell)."""
        return STEM_SPATIAL_STRIDE[self.family] * math.prod(self.stage_spatial_strides)

    # ---- (de)serialisation -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = hashed_form(dataclasses.asdict(self))  # the families without a head projection keep their JSON
        assert d is not None
        return {"spec_version": SPEC_VERSION, **d}

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchSpec:
        if not isinstance(data, dict):
            raise SpecError(f"spec: expected a JSON object, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("spec_version", None)
        if version != SPEC_VERSION:
            raise SpecError(
                f"spec.spec_version: this pas reads version {SPEC_VERSION}, got {version!r};"
                " re-export the spec with this version of pas"
            )
        spec: ArchSpec = from_data(cls, data, "spec", SpecError)
        return spec

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"spec: not valid JSON ({exc})") from exc
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> ArchSpec:
        return dataclasses.replace(self, **changes)


def hashed_form(spec_data: dict[str, Any] | None) -> dict[str, Any] | None:
    """``dataclasses.asdict`` of a spec as identities hash it: without the keys added after specs were first
    hashed while they hold their default (``head_width`` of the families without a head projection), so a
    task's hash stays what it was."""
    if spec_data is None or spec_data.get("head_width", 0) is not None:
        return spec_data
    return {k: v for k, v in spec_data.items() if k != "head_width"}


def _frames_taken(frames: int, stride: int) -> int:
    """Frames kept when taking every ``stride``-th of ``frames``, starting at the first."""
    return -(-frames // stride)


# ---- validation ---------------------------------------------------------------
def _require(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise SpecError(f"{where}: {msg}")


def _positive_ints(values: tuple[int, ...], where: str) -> None:
    ok = all(isinstance(v, int) and v >= 1 for v in values)
    _require(ok, where, f"every value must be an integer >= 1, got {values}")


def _one_of(value: str, choices: tuple[str, ...], where: str) -> None:
    _require(value in choices, where, f"{value!r} is not one of {', '.join(choices)}")


def _validate(spec: ArchSpec) -> None:
    _one_of(spec.family, FAMILIES, "spec.family")
    _require(isinstance(spec.num_classes, int) and spec.num_classes >= 1, "spec.num_classes", "must be an integer >= 1")
    _require(0.0 <= spec.head_dropout < 1.0, "spec.head_dropout", f"must be in [0, 1), got {spec.head_dropout}")
    _validate_view(spec.view)
    n = len(spec.stage_blocks)
    _require(n >= 1, "spec.stage_blocks", "at least one stage is needed")
    _positive_ints(spec.stage_blocks, "spec.stage_blocks")
    _positive_ints(spec.stage_spatial_strides, "spec.stage_spatial_strides")
    _require(len(spec.stage_spatial_strides) == n, "spec.stage_spatial_strides", f"needs {n} values (one per stage)")
    for i, p in enumerate(spec.pathways):
        where = f"spec.pathways[{i}]"
        _positive_ints((p.sample_stride, p.stem_width, p.stem_temporal_kernel, p.stem_spatial_kernel), where)
        for key in ("stage_widths", "stage_out_widths", "stage_temporal_kernels", "stage_temporal_strides"):
            values = getattr(p, key)
            _positive_ints(values, f"{where}.{key}")
            _require(len(values) == n, f"{where}.{key}", f"needs {n} values (one per stage), got {len(values)}")
    for i, t in enumerate(spec.tucker):
        _require(isinstance(t.conv, str) and bool(t.conv), f"spec.tucker[{i}].conv", "must name a convolution")
        _positive_ints((t.rank_in, t.rank_out), f"spec.tucker[{i}]")
    names = [t.conv for t in spec.tucker]
    _require(len(set(names)) == len(names), "spec.tucker", "a convolution is listed twice")
    _require((spec.head_width is not None) == (spec.family == "x3d"), "spec.head_width",
             "an x3d network needs its head width (2048 for X3D-S/M)" if spec.family == "x3d"
             else f"only x3d networks have a head projection; remove it for a {spec.family} network")
    if spec.head_width is not None:
        _positive_ints((spec.head_width,), "spec.head_width")
    {"r2plus1d": _validate_r2plus1d, "slowfast": _validate_slowfast, "x3d": _validate_x3d}[spec.family](spec)


def _validate_view(v: ViewSpec) -> None:
    sizes = (v.frames, v.frame_stride, v.crop_train, v.crop_test, *v.resize_train, *v.resize_test)
    _positive_ints(sizes, "spec.view")
    _one_of(v.resize, RESIZE_KINDS, "spec.view.resize")
    if v.resize == "short_side":
        lo, hi = v.resize_train
        _require(lo <= hi, "spec.view.resize_train", "short-side range must be (min, max)")
        _require(v.resize_test[0] == v.resize_test[1], "spec.view.resize_test", "short-side test size must be (S, S)")


def _validate_r2plus1d(spec: ArchSpec) -> None:
    _require(len(spec.pathways) == 1, "spec.pathways", "r2plus1d has exactly one pathway")
    _require(spec.fusion is None, "spec.fusion", "r2plus1d has no fusion")
    p = spec.pathways[0]
    mid_ok = p.stem_mid_width is not None and p.stem_mid_width >= 1
    _require(mid_ok, "spec.pathways[0].stem_mid_width", "a (2+1)D stem needs its mid width")
    same = p.stage_widths == p.stage_out_widths
    _require(same, "spec.pathways[0].stage_out_widths", "basic blocks: must equal stage_widths")


def _validate_x3d(spec: ArchSpec) -> None:
    _require(len(spec.pathways) == 1, "spec.pathways", "x3d has exactly one pathway")
    _require(spec.fusion is None, "spec.fusion", "x3d has no fusion")
    _require(spec.pathways[0].stem_mid_width is None, "spec.pathways[0].stem_mid_width",
             "x3d's stem keeps its width through the channel-wise temporal conv: must be null")


def _validate_slowfast(spec: ArchSpec) -> None:
    _require(len(spec.pathways) == 2, "spec.pathways", "slowfast has exactly two pathways (slow, fast)")
    _require(spec.fusion is not None, "spec.fusion", "slowfast needs its fusion settings")
    slow, fast = spec.pathways
    alpha_ok = slow.sample_stride % fast.sample_stride == 0 and slow.sample_stride > fast.sample_stride
    _require(alpha_ok, "spec.pathways[0].sample_stride",
             "the slow stride must be a multiple (alpha > 1) of the fast stride")
    assert spec.fusion is not None
    _positive_ints((spec.fusion.conv_channel_ratio, spec.fusion.kernel), "spec.fusion")
