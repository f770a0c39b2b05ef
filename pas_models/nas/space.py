"""The search space of the gradient-based strategy (the PV-NAS family), derived from a base spec.

Every point is an ordinary ``ArchSpec`` (``SearchSpace.derive``): `pas flops`, `pas train` and
`pas export` take it as they take a PAS network. The decisions, each an index into its choices,
index 0 always the base network's own value:

====================  ==============================================  =================================
decision              choices                                          acts like
====================  ==============================================  =================================
``frames``            raw clip length T, T/2, T/4                      operator t (first T' frames)
``crop``              crop and resize sizes / 1, 1.4, 2                operator s (test crop >= the
                                                                       network's spatial stride)
``stageI.blocks``     n, n-1, ..., 1 (n: the base's)                   the trailing blocks are dropped
``stageI.P.width``    inner and output widths / 1, 1.4, 2, 2.8         operator c's rounding (``shrink``)
``stageI.P.kt``       temporal kernel 3, 1 (where the base has 3)      the centre tap of the 3-tap kernel
====================  ==============================================  =================================

(P: the pathway, ``main`` for R(2+1)D and X3D, ``slow`` / ``fast`` for SlowFast; I: the stage, 1-based.
X3D's width decision narrows a stage's inner and output widths together: its channel-wise convs and
squeeze-excitations follow; its head width is not searched. Its kt decision acts on the channel-wise
conv's temporal kernel.)

pas's own choices, beyond what the PV-NAS paper states:

- SlowFast's blocks are one decision per stage for both pathways (an ``ArchSpec`` has one block count
  per stage).
- Where the base block 0 of a stage has no projection shortcut (same widths, stride 1: R(2+1)D-18's
  layer1 after its 64-wide stem, slowfast_tiny's last slow stage; X3D: same widths, whose strided
  shortcut conv then has no batch norm, X3D-S/M's stage 1 after its 24-wide stem), a derived network
  whose widths there differ would need a projection the base does not have: R(2+1)D's and X3D's stage
  1 width decision narrows the stem by the same factor; elsewhere that stage and the stages that feed it
  keep the base's widths.
- Choices that give the same network as a smaller index (rounding at tiny widths, a clip too short to
  halve) are dropped, so every choice of a decision is a different network.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

from pas_models.errors import SpecError
from pas_models.reductions import cut_frames, shrink
from pas_models.spec import ArchSpec, PathwaySpec

WIDTH_GAMMAS = (1.0, 1.4, 2.0, 2.8)
FRAME_GAMMAS = (1.0, 2.0, 4.0)
CROP_GAMMAS = (1.0, 1.4, 2.0)
TEMPORAL_KERNELS = (3, 1)
STEM_FOLLOWS = ("r2plus1d", "x3d")  # families whose stage 1 width decision narrows the stem where they are equal


@dataclass(frozen=True)
class Decision:
    """One choice of the space: its name, its values (index 0: the base's), what they mean."""

    name: str
    values: tuple[float, ...]
    kind: str  # frames | crop | blocks | width | kt
    stage: int | None = None  # 0-based
    pathway: int | None = None

    def __len__(self) -> int:
        return len(self.values)

    def show(self, index: int) -> str:
        v = self.values[index]
        if self.kind in ("frames", "crop", "width"):
            return "x1" if v == 1 else f"/{v:g}"
        return f"{int(v)}"


Arch = tuple[int, ...]  # one choice index per decision, in SearchSpace.decisions order


@dataclass(frozen=True)
class SearchSpace:
    """The decisions derived from ``base`` (see the module docstring)."""

    base: ArchSpec
    decisions: tuple[Decision, ...]
    stem_follows_stage1: bool  # R(2+1)D: stage 1's width also narrows the stem (no projection there)

    @classmethod
    def of(cls, base: ArchSpec) -> SearchSpace:
        if base.tucker:
            raise SpecError(f"{base.label}: a base network with Tucker-2 convolutions cannot be searched "
                            "by the gradient strategy (its supernet slices plain kernels)")
        if base.applied:
            raise SpecError(f"{base.label}: the gradient strategy searches from a base network, not from a "
                            "network reduced already")
        decisions: list[Decision] = []
        frames = _distinct(FRAME_GAMMAS, lambda g: cut_frames(base.view.frames, g), keep=lambda t: t >= 1)
        decisions.append(Decision("frames", frames, "frames"))
        crops = _distinct(CROP_GAMMAS, lambda g: shrink(base.view.crop_test, g),
                          keep=lambda c: c >= base.spatial_stride)
        decisions.append(Decision("crop", crops, "crop"))
        stem_follows, fixed = False, _fixed_widths(base)
        for i, n in enumerate(base.stage_blocks):
            if n > 1:
                decisions.append(Decision(f"stage{i + 1}.blocks", tuple(float(b) for b in range(n, 0, -1)),
                                          "blocks", stage=i))
            for j, p in enumerate(base.pathways):
                where = f"stage{i + 1}.{p.name}"
                if base.family in STEM_FOLLOWS and i == 0 and _no_projection(base, 0, 0):
                    stem_follows = True  # the stem narrows with stage 1: block 0 keeps its identity shortcut
                if (i, j) not in fixed:
                    widths = _distinct(WIDTH_GAMMAS, lambda g, p=p, i=i: (shrink(p.stage_widths[i], g),
                                                                          shrink(p.stage_out_widths[i], g)))
                    if len(widths) > 1:
                        decisions.append(Decision(f"{where}.width", widths, "width", stage=i, pathway=j))
                if p.stage_temporal_kernels[i] == 3:
                    decisions.append(Decision(f"{where}.kt", tuple(float(k) for k in TEMPORAL_KERNELS), "kt",
                                              stage=i, pathway=j))
        return cls(base, tuple(decisions), stem_follows)

    # ---- points ---------------------------------------------------------------------------------
    @property
    def largest(self) -> Arch:
        return (0,) * len(self.decisions)

    def sizes(self) -> tuple[int, ...]:
        return tuple(len(d) for d in self.decisions)

    def count(self) -> int:
        return math.prod(self.sizes())

    def index(self, name: str) -> int:
        for i, d in enumerate(self.decisions):
            if d.name == name:
                return i
        raise KeyError(name)

    def check(self, arch: Arch) -> Arch:
        arch = tuple(int(a) for a in arch)
        if len(arch) != len(self.decisions) or any(not 0 <= a < len(d) for a, d in zip(arch, self.decisions,
                                                                                         strict=True)):
            raise SpecError(f"architecture {list(arch)} does not index this search space's "
                            f"{len(self.decisions)} decisions {list(self.sizes())}")
        return arch

    def value(self, arch: Arch, name: str, default: float) -> float:
        try:
            i = self.index(name)
        except KeyError:
            return default
        return self.decisions[i].values[arch[i]]

    def describe(self, arch: Arch) -> str:
        """What differs from the base: ``frames /2, crop /1.4, stage2.main.width /2, stage3.blocks 1``."""
        arch = self.check(arch)
        parts = [f"{d.name} {d.show(a)}" for d, a in zip(self.decisions, arch, strict=True) if a != 0]
        return ", ".join(parts) or "the base network"

    def code(self, arch: Arch) -> str:
        """A short stable name: the choice indices, e.g. ``g0102-0110``."""
        return "g" + "".join(str(a) for a in self.check(arch))

    def derive(self, arch: Arch) -> ArchSpec:
        """The network of ``arch``: an ordinary ArchSpec (named ``BASE~CODE``)."""
        arch = self.check(arch)
        b = self.base
        v = b.view
        g_crop = self.value(arch, "crop", 1.0)
        view = replace(v, frames=cut_frames(v.frames, self.value(arch, "frames", 1.0)),
                       crop_train=shrink(v.crop_train, g_crop), crop_test=shrink(v.crop_test, g_crop),
                       resize_train=tuple(shrink(x, g_crop) for x in v.resize_train),
                       resize_test=tuple(shrink(x, g_crop) for x in v.resize_test))
        blocks = tuple(int(self.value(arch, f"stage{i + 1}.blocks", n)) for i, n in enumerate(b.stage_blocks))
        pathways = []
        for j, p in enumerate(b.pathways):
            gs = [self.value(arch, f"stage{i + 1}.{p.name}.width", 1.0) for i in range(len(b.stage_blocks))]
            kts = tuple(int(self.value(arch, f"stage{i + 1}.{p.name}.kt", k))
                        for i, k in enumerate(p.stage_temporal_kernels))
            q = replace(p, stage_widths=tuple(shrink(w, g) for w, g in zip(p.stage_widths, gs, strict=True)),
                        stage_out_widths=tuple(shrink(w, g) for w, g in zip(p.stage_out_widths, gs, strict=True)),
                        stage_temporal_kernels=kts)
            if self.stem_follows_stage1 and j == 0:
                q = _narrow_stem(q, gs[0])
            pathways.append(q)
        return b.replace(name=f"{b.name}~{self.code(arch)}", view=view, pathways=tuple(pathways),
                         stage_blocks=blocks)

    def all_archs(self) -> Iterator[Arch]:
        return itertools.product(*(range(len(d)) for d in self.decisions))


def _narrow_stem(p: PathwaySpec, g: float) -> PathwaySpec:
    return replace(p, stem_width=shrink(p.stem_width, g),
                   stem_mid_width=None if p.stem_mid_width is None else shrink(p.stem_mid_width, g))


def _fixed_widths(base: ArchSpec) -> set[tuple[int, int]]:
    """(stage, pathway) whose widths stay the base's: a stage whose base block 0 has an identity shortcut,
    and what feeds it (a narrower derived block there would need a projection the base does not have).
    R(2+1)D's and X3D's stage 1 is the exception: its width decision narrows the stem as well."""
    fixed: set[tuple[int, int]] = set()
    for i in range(len(base.stage_blocks)):
        for j in range(len(base.pathways)):
            if not _no_projection(base, i, j) or (base.family in STEM_FOLLOWS and i == 0):
                continue
            fixed.add((i, j))
            if i > 0:
                fixed.add((i - 1, j))
                if base.family == "slowfast" and j == 0:
                    fixed.add((i - 1, 1))  # the fast pathway's output is fused into the slow input
    return fixed


def _no_projection(base: ArchSpec, i: int, j: int) -> bool:
    """Whether block 0 of stage ``i`` (pathway ``j``) of the base has an identity shortcut (X3D: a shortcut
    without batch norm, its strided 1x1x1 conv having one only where the widths differ)."""
    p = base.pathways[j]
    if base.family != "x3d" and (base.stage_spatial_strides[i] != 1 or p.stage_temporal_strides[i] != 1):
        return False
    if i == 0:
        c_in = p.stem_width
        if base.family == "slowfast" and j == 0 and base.fusion is not None:
            c_in += base.pathways[1].stem_width * base.fusion.conv_channel_ratio
    else:
        c_in = p.stage_out_widths[i - 1]
        if base.family == "slowfast" and j == 0 and base.fusion is not None:
            c_in += base.pathways[1].stage_out_widths[i - 1] * base.fusion.conv_channel_ratio
    return c_in == p.stage_out_widths[i]


def _distinct(gammas: tuple[float, ...], size: object, keep: object = None) -> tuple[float, ...]:
    """The gammas whose sizes differ from every smaller gamma's (and pass ``keep``)."""
    seen, out = set(), []
    for g in gammas:
        s = size(g)  # type: ignore[operator]
        if s in seen or (keep is not None and not keep(s)):  # type: ignore[operator]
            continue
        seen.add(s)
        out.append(float(g))
    return tuple(out)

