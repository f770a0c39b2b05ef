"""Frames decoded on a GPU (torchcodec, NVDEC): the views cut from tensors, the float resize CUDA uses, the
fallback to the CPU, the refusals; on a machine with CUDA, the GPU's views against the CPU's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import MKV, MP4, PYAV_ONLY, needs_torchcodec

from pas_models.data.backends import read_frames
from pas_models.data.dataset import ClipDataset
from pas_models.data.formats import Sample
from pas_models.data.transforms import Box, crop_resize, resize_frames, resize_in_float, to_clip
from pas_models.errors import PasError
from pas_models.presets import preset
from pas_models.reductions import apply_op

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available() or PYAV_ONLY, reason="no CUDA device here")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here")
TEACHER = preset("r2plus1d_18", num_classes=2)
SAMPLES = [Sample(str(MP4), 0), Sample(str(MKV), 1)]


@pytest.mark.parametrize(("size", "box"), [(112, Box(0, 0, 256, 340)), (128, Box(10, 40, 171, 171)),
                                           (200, Box(0, 0, 120, 160))])  # down, down square, up
def test_the_float_resize_is_within_one_level_of_the_cpus_uint8_kernel(size: int, box: Box) -> None:
    frames = read_frames(MP4, [0, 50, 299])
    crop = torch.from_numpy(np.ascontiguousarray(frames[:, box.top:box.top + box.height,
                                                        box.left:box.left + box.width])).permute(0, 3, 1, 2)
    diff = (resize_frames(crop, size).int() - resize_in_float(crop, size).int()).abs()
    assert diff.max() <= 1 and diff.float().mean() < 0.5


def test_views_cut_from_a_tensor_are_those_cut_from_the_array() -> None:
    frames = read_frames(MKV, [3, 4, 9])
    box = Box(20, 30, 200, 250)
    for flip in (False, True):
        a = crop_resize(frames, box, 112, flip)
        b = crop_resize(torch.from_numpy(frames), box, 112, flip)
        assert torch.equal(a, b)
        assert torch.equal(to_clip(a, (0.4, 0.4, 0.4), (0.2, 0.2, 0.2)), to_clip(b, (0.4, 0.4, 0.4), (0.2, 0.2, 0.2)))


@pytest.mark.skipif(PYAV_ONLY, reason="every backend reads with PyAV here")
def test_gpu_decode_is_refused_with_the_fix() -> None:
    with pytest.raises(PasError, match=r"decoding on the GPU needs the torchcodec backend .*decodes with decord"):
        ClipDataset(SAMPLES, TEACHER, train=False, backend="decord", decode_device="cuda")
    with pytest.raises(PasError, match="frames decode on the CPU or on a CUDA device"):
        ClipDataset(SAMPLES, TEACHER, train=False, decode_device="mps")


@no_cuda
@needs_torchcodec
@pytest.mark.skipif(PYAV_ONLY, reason="every backend reads with PyAV here")
def test_without_a_gpu_gpu_decode_is_refused_and_a_reader_asked_for_one_decodes_on_the_cpu() -> None:
    from pas_models.data.torchcodec_reader import TorchcodecReader

    with pytest.raises(PasError, match=r"this machine has no CUDA device; set recipe\.gpu_decode: false"):
        ClipDataset(SAMPLES, TEACHER, train=False, backend="torchcodec", decode_device="cuda")
    reader = TorchcodecReader(str(MP4), device="cuda")
    try:
        assert reader.device == "cpu" and reader.cpu_by is not None and reader.cpu_by.startswith("NVDEC cannot")
        assert np.array_equal(reader.frames([7, 2, 7, 150]), read_frames(MP4, [7, 2, 7, 150], "pyav"))
    finally:
        reader.close()


# the colour conversion's tolerance: NVDEC's NV12 -> RGB (NPP) against swscale's, in uint8 levels over a clip
MEAN_LEVELS, P99_LEVELS = 3.0, 12.0


@needs_cuda
@needs_torchcodec
@pytest.mark.parametrize("train", [True, False])
def test_the_gpus_views_are_the_cpus_within_the_colour_conversion(train: bool) -> None:
    student = apply_op(TEACHER, "s")
    cpu = ClipDataset(SAMPLES, student, TEACHER, train=train, clips=2, backend="torchcodec")
    gpu = ClipDataset(SAMPLES, student, TEACHER, train=train, clips=2, backend="torchcodec", decode_device="cuda")
    std = 255 * torch.tensor(cpu.std).view(3, 1, 1, 1)
    for index in range(len(cpu)):
        a, b = cpu[index], gpu[index]
        assert a["video"] == b["video"] and b["student"].is_cuda
        for view in ("student", "teacher"):
            levels = ((a[view] - b[view].cpu()) * std).abs()
            assert levels.mean() <= MEAN_LEVELS and levels.quantile(0.99) <= P99_LEVELS, (index, view)
