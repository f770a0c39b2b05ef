"""Named base networks. Widths and depths are data here, never in module code.

- ``r2plus1d_18``: torchvision's R(2+1)D-18 (Tran et al. 2018) with the PAS
  paper's view: 16 consecutive frames, frames resized to 128x171, 112x112 crops.
- ``slowfast_4x16_r50``: Table 9 of the paper: 64-frame raw clip, slow pathway
  stride 16 (4 frames), fast stride 2 (32 frames), alpha 8, beta 1/8, fusion
  kernel 5 and channel ratio 2; short side in [256, 320], 224 train crop,
  256 test crop (short side 256); dropout 0.5 before the classifier.
- ``x3d_s``, ``x3d_m``: X3D (Feichtenhofer 2020) as PyTorchVideo's model zoo
  builds them: X3D-XS's network expanded by width 2.0, depth 2.2 and bottleneck
  2.25 (stem 24, stage widths 24/48/96/192, inner 54/108/216/432, blocks
  3/5/11/7, head 432 -> 2048); X3D-S sees 13 frames 6 apart, X3D-M 16 frames
  5 apart. Their views are PySlowFast's three-crop test: short side in
  [182, 228] (S) or [256, 320] (M), train crops 160 / 224, test crop = short
  side 182 / 256.
- ``r2plus1d_tiny``, ``slowfast_tiny``, ``x3d_tiny``: the same families at a
  few MFLOPs for demos, tests and CPU searches on the synthetic dataset.
"""

from __future__ import annotations

from collections.abc import Callable

from pas_models.errors import UnknownNameError
from pas_models.spec import ArchSpec, FusionSpec, PathwaySpec, ViewSpec
from pas_models.widths import round_repeats, round_width


def r2plus1d_18(num_classes: int = 400) -> ArchSpec:
    widths = (64, 128, 256, 512)
    return ArchSpec(
        name="r2plus1d_18", family="r2plus1d", num_classes=num_classes,
        view=ViewSpec(frames=16, frame_stride=1, crop_train=112, crop_test=112,
                      resize="fixed", resize_train=(128, 171), resize_test=(128, 171)),
        pathways=(PathwaySpec(name="main", sample_stride=1, stem_width=64, stem_mid_width=45,
                              stem_temporal_kernel=3, stem_spatial_kernel=7,
                              stage_widths=widths, stage_out_widths=widths,
                              stage_temporal_kernels=(3, 3, 3, 3), stage_temporal_strides=(1, 2, 2, 2)),),
        stage_blocks=(2, 2, 2, 2), stage_spatial_strides=(1, 2, 2, 2),
    )


def r2plus1d_tiny(num_classes: int = 10) -> ArchSpec:
    widths = (6, 12, 16, 24)
    return ArchSpec(
        name="r2plus1d_tiny", family="r2plus1d", num_classes=num_classes,
        view=ViewSpec(frames=8, frame_stride=2, crop_train=32, crop_test=32,
                      resize="fixed", resize_train=(36, 36), resize_test=(36, 36)),
        pathways=(PathwaySpec(name="main", sample_stride=1, stem_width=6, stem_mid_width=4,
                              stem_temporal_kernel=3, stem_spatial_kernel=7,
                              stage_widths=widths, stage_out_widths=widths,
                              stage_temporal_kernels=(3, 3, 3, 3), stage_temporal_strides=(1, 2, 2, 1)),),
        stage_blocks=(2, 2, 2, 2), stage_spatial_strides=(2, 2, 2, 1),
    )


def _slowfast_pathways(slow_inner: tuple[int, ...], beta_inv: int, expansion: int, slow_stride: int,
                       fast_stride: int, stem: int, stem_kernel: int) -> tuple[PathwaySpec, PathwaySpec]:
    n = len(slow_inner)
    fast_inner = tuple(w // beta_inv for w in slow_inner)
    slow_kernels = tuple(1 if i < n // 2 else 3 for i in range(n))  # temporal convs only in the late slow stages
    ones = (1,) * n
    slow = PathwaySpec(name="slow", sample_stride=slow_stride, stem_width=stem, stem_mid_width=None,
                       stem_temporal_kernel=1, stem_spatial_kernel=stem_kernel, stage_widths=slow_inner,
                       stage_out_widths=tuple(w * expansion for w in slow_inner),
                       stage_temporal_kernels=slow_kernels, stage_temporal_strides=ones)
    fast = PathwaySpec(name="fast", sample_stride=fast_stride, stem_width=stem // beta_inv, stem_mid_width=None,
                       stem_temporal_kernel=5, stem_spatial_kernel=stem_kernel, stage_widths=fast_inner,
                       stage_out_widths=tuple(w * expansion for w in fast_inner),
                       stage_temporal_kernels=(3,) * n, stage_temporal_strides=ones)
    return slow, fast


def slowfast_4x16_r50(num_classes: int = 400) -> ArchSpec:
    return ArchSpec(
        name="slowfast_4x16_r50", family="slowfast", num_classes=num_classes,
        view=ViewSpec(frames=64, frame_stride=1, crop_train=224, crop_test=256,
                      resize="short_side", resize_train=(256, 320), resize_test=(256, 256)),
        pathways=_slowfast_pathways((64, 128, 256, 512), beta_inv=8, expansion=4,
                                    slow_stride=16, fast_stride=2, stem=64, stem_kernel=7),
        stage_blocks=(3, 4, 6, 3), stage_spatial_strides=(1, 2, 2, 2),
        fusion=FusionSpec(conv_channel_ratio=2, kernel=5), head_dropout=0.5,
    )


def slowfast_tiny(num_classes: int = 10) -> ArchSpec:
    return ArchSpec(
        name="slowfast_tiny", family="slowfast", num_classes=num_classes,
        view=ViewSpec(frames=16, frame_stride=1, crop_train=32, crop_test=32,
                      resize="short_side", resize_train=(36, 44), resize_test=(36, 36)),
        pathways=_slowfast_pathways((8, 12, 16, 24), beta_inv=4, expansion=2,
                                    slow_stride=8, fast_stride=2, stem=8, stem_kernel=3),
        stage_blocks=(3, 3, 3, 3), stage_spatial_strides=(1, 2, 2, 1),
        fusion=FusionSpec(conv_channel_ratio=2, kernel=5), head_dropout=0.5,
    )


def _x3d_pathway(stem_in: int, width_factor: float, bottleneck_factor: float) -> PathwaySpec:
    """PyTorchVideo's ``create_x3d`` widths: each stage doubles the last (rounded to 8), times the width
    factor; the channel-wise conv's width is the bottleneck factor times the stage's."""
    dims = [stem_in]
    for _ in range(3):
        dims.append(round_width(dims[-1], 2.0))
    out = tuple(round_width(d, width_factor) for d in dims)
    return PathwaySpec(name="main", sample_stride=1, stem_width=round_width(stem_in, width_factor),
                       stem_mid_width=None, stem_temporal_kernel=5, stem_spatial_kernel=3,
                       stage_widths=tuple(int(bottleneck_factor * w) for w in out), stage_out_widths=out,
                       stage_temporal_kernels=(3, 3, 3, 3), stage_temporal_strides=(1, 1, 1, 1))


def _x3d(name: str, num_classes: int, frames: int, frame_stride: int, crop: int, short_side: tuple[int, int],
         test_side: int) -> ArchSpec:
    return ArchSpec(
        name=name, family="x3d", num_classes=num_classes,
        view=ViewSpec(frames=frames, frame_stride=frame_stride, crop_train=crop, crop_test=test_side,
                      resize="short_side", resize_train=short_side, resize_test=(test_side, test_side)),
        pathways=(_x3d_pathway(12, width_factor=2.0, bottleneck_factor=2.25),),
        stage_blocks=tuple(round_repeats(d, 2.2) for d in (1, 2, 5, 3)), stage_spatial_strides=(2, 2, 2, 2),
        head_width=2048, head_dropout=0.5,
    )


def x3d_s(num_classes: int = 400) -> ArchSpec:
    return _x3d("x3d_s", num_classes, frames=13, frame_stride=6, crop=160, short_side=(182, 228), test_side=182)


def x3d_m(num_classes: int = 400) -> ArchSpec:
    return _x3d("x3d_m", num_classes, frames=16, frame_stride=5, crop=224, short_side=(256, 320), test_side=256)


def x3d_tiny(num_classes: int = 10) -> ArchSpec:
    out = (8, 16, 24, 32)
    return ArchSpec(
        name="x3d_tiny", family="x3d", num_classes=num_classes,
        view=ViewSpec(frames=8, frame_stride=2, crop_train=32, crop_test=32,
                      resize="short_side", resize_train=(36, 44), resize_test=(36, 36)),
        pathways=(PathwaySpec(name="main", sample_stride=1, stem_width=8, stem_mid_width=None,
                              stem_temporal_kernel=5, stem_spatial_kernel=3,
                              stage_widths=tuple(int(2.25 * w) for w in out), stage_out_widths=out,
                              stage_temporal_kernels=(3, 3, 3, 3), stage_temporal_strides=(1, 1, 1, 1)),),
        stage_blocks=(1, 2, 3, 2), stage_spatial_strides=(2, 2, 2, 1),
        head_width=96, head_dropout=0.5,
    )


PRESETS: dict[str, Callable[[int], ArchSpec]] = {
    "r2plus1d_18": r2plus1d_18,
    "slowfast_4x16_r50": slowfast_4x16_r50,
    "r2plus1d_tiny": r2plus1d_tiny,
    "slowfast_tiny": slowfast_tiny,
    "x3d_s": x3d_s,
    "x3d_m": x3d_m,
    "x3d_tiny": x3d_tiny,
}


def preset(name: str, num_classes: int | None = None) -> ArchSpec:
    """The base spec called ``name``; ``num_classes`` overrides the preset's default."""
    if name not in PRESETS:
        raise UnknownNameError("backbone", name, sorted(PRESETS))
    factory = PRESETS[name]
    return factory() if num_classes is None else factory(num_classes)
