"""The single-path estimator of the supernet job (pas_models.nas.search): the sample of a step, its gates, and the
student's view of the base's clip.

The estimator (pas's choice; PV-NAS does not publish its own): straight-through Gumbel-softmax on a
single path (GDAS, Dong & Yang 2019): the sampled network alone is computed; each network decision's
one-hot sample is replaced, for the backward pass, by ``hard - soft.detach() + soft`` with soft =
softmax((logits + Gumbel) / tau), and reaches the loss through gates whose value is 1 on the sampled
network: a width choice gates the channels of every batch norm it narrows (channel c by the summed
weights of the choices that keep c, FBNetV2's masks restricted to the computed channels), a depth
choice gates each kept block's last batch norm, a temporal kernel of 3 gates the kernel's side taps
(Single-Path NAS's superkernel; a sampled kernel of 1 sends no gradient). Gates sit on batch-norm
scales and kernel taps because a uniform scale in front of a batch norm has no gradient. The view
decisions (frames, crop) have no place for such a gate: they get the score-function gradient
(loss - moving average baseline) x d log p(sample), on the same loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pas_models.nas.cost import CostTable
from pas_models.nas.space import Arch, SearchSpace
from pas_models.spec import ArchSpec


def step_generator(seed: int, step: int, what: int) -> torch.Generator:
    """The generator of step ``step``'s sample ``what`` (0: the weights', 1: the architecture's): every rank, and a
    resumed run, draws the same network."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 4 + what)


def sample(logits: list[torch.Tensor], tau: float, gen: torch.Generator) -> tuple[Arch, list[torch.Tensor]]:
    """A Gumbel-max sample of every decision, and the straight-through one-hots (value: the one-hot; gradient:
    the Gumbel-softmax at temperature ``tau``)."""
    arch, hs = [], []
    for lg in logits:
        u = torch.rand(lg.shape, generator=gen, dtype=torch.float64).clamp_(1e-12, 1 - 1e-12)
        gumbel = (-torch.log(-torch.log(u))).to(lg)
        soft = F.softmax((lg + gumbel) / tau, dim=0)
        k = int(torch.argmax(lg.detach() + gumbel))
        hard = F.one_hot(torch.tensor(k), lg.numel()).to(soft)
        arch.append(k)
        hs.append(hard - soft.detach() + soft)
    return tuple(arch), hs


def _block_keys(spec: ArchSpec, stage: int, pathway: int, block: int) -> tuple[str, list[str]]:
    """(the block's last batch norm, the block's temporal convolutions' weight keys)."""
    if spec.family == "r2plus1d":
        p = f"layer{stage + 1}.{block}"
        return f"{p}.conv2.1", [f"{p}.conv1.0.3.weight", f"{p}.conv2.0.3.weight"]
    if spec.family == "x3d":
        p = f"stages.{stage}.{block}"
        return f"{p}.bn_c", [f"{p}.conv_b.weight"]
    p = f"stages.{stage}.{pathway}.{block}"
    return f"{p}.branch.7", [f"{p}.branch.0.weight"]


def gates(space: SearchSpace, table: CostTable, arch: Arch, hs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """The gates of the sampled network ``arch`` (see the module docstring), per state-dict key."""
    decisions = space.decisions
    out: dict[str, torch.Tensor] = {}

    def gate(key: str, g: torch.Tensor) -> None:
        out[key] = out[key] * g if key in out else g

    widths = {i for i, d in enumerate(decisions) if d.kind == "width"}
    for grp in table.groups:
        ws = [pos for pos, i in enumerate(grp.deps) if i in widths]
        if not ws:
            continue
        idx = [arch[i] for i in grp.deps]
        for r, (module, kind) in enumerate(zip(grp.modules, grp.kinds, strict=True)):
            c = int(grp.channels[(r, *idx)])
            if kind != "bn" or c == 0:
                continue
            vec = None
            for pos in ws:
                i = grp.deps[pos]
                sizes = torch.stack([grp.channels[(r, *idx[:pos], k, *idx[pos + 1:])]
                                     for k in range(len(decisions[i]))])
                keeps = (sizes[:, None] > torch.arange(c)[None, :]).to(hs[i])  # (choices, channels)
                g = hs[i] @ keeps
                vec = g if vec is None else vec * g
            assert vec is not None
            gate(f"{module}.weight", vec)
            gate(f"{module}.bias", vec)
    child = space.derive(arch)
    for i, d in enumerate(decisions):
        if d.kind == "blocks":
            for b in range(1, child.stage_blocks[d.stage]):  # block 0 is always there
                g = hs[i][[k for k, v in enumerate(d.values) if v > b]].sum()
                for j in range(len(space.base.pathways)):
                    bn, _ = _block_keys(space.base, d.stage, j, b)
                    gate(f"{bn}.weight", g)
                    gate(f"{bn}.bias", g)
        elif d.kind == "kt" and d.values[arch[i]] == 3:
            h3 = hs[i][arch[i]]
            taps = torch.stack([h3, torch.ones_like(h3), h3]).view(1, 1, 3, 1, 1)
            for b in range(child.stage_blocks[d.stage]):
                for key in _block_keys(space.base, d.stage, d.pathway, b)[1]:
                    gate(key, taps)
    return out


def student_view(x: torch.Tensor, child: ArchSpec, train: bool = True) -> torch.Tensor:
    """The child's input cut from the base's input batch (B, 3, T, H, W): its first frames (operator t's
    rule), resized to its crop (bilinear, antialiased, as the data pipeline's student views)."""
    x = x[:, :, :child.input_frames]
    side = child.crop(train)
    if x.shape[-1] != side or x.shape[-2] != side:
        b, c, t, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        frames = F.interpolate(frames, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
        x = frames.reshape(b, t, c, side, side).permute(0, 2, 1, 3, 4).contiguous()
    return x
