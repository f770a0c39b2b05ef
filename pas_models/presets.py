"""Named base networks. Widths and depths are data here, never in module code.

- ``r2plus1d_18``: torchvision's R(2+1)D-18 (Tran et al. 2018) with the PAS
  paper's view: 16 consecutive frames, frames resized to 128x171, 112x112 crops.
- ``slowfast_4x16_r50``: Table 9 of the paper: 64-frame raw clip, slow pathway
  stride 16 (4 frames), fast stride 2 (32 frames), alpha 8, beta 1/8, fusion
  kernel 5 and channel ratio 2; short side in [256, 320], 224 train crop,
  256 test crop (short side 256); dropout 0.5 before the classifier.
- ``r2plus1d_tiny``, ``slowfast_tiny``: the same families at a few MFLOPs for
  demos, tests and CPU searches on the synthetic dataset.
"""

from __future__ import annotations

from collections.abc import Callable

from pas_models.errors import UnknownNameError
from pas_models.spec import ArchSpec, FusionSpec, PathwaySpec, ViewSpec


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


PRESETS: dict[str, Callable[[int], ArchSpec]] = {
    "r2plus1d_18": r2plus1d_18,
    "slowfast_4x16_r50": slowfast_4x16_r50,
    "r2plus1d_tiny": r2plus1d_tiny,
    "slowfast_tiny": slowfast_tiny,
}


def preset(name: str, num_classes: int | None = None) -> ArchSpec:
    """The base spec called ``name``; ``num_classes`` overrides the preset's default."""
    if name not in PRESETS:
        raise UnknownNameError("backbone", name, sorted(PRESETS))
    factory = PRESETS[name]
    return factory() if num_classes is None else factory(num_classes)
