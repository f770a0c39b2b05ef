"""The exact cost of every network of a search space, and its expectation under the search's distribution.

A network's GFLOPs (``pas_models.flops``' convention: fvcore at the test view, 1 multiply-add = 1 flop,
batch norm in train mode) is a sum over its convolutions, batch norms and classifier of

    conv:        C_in x C_out x kt x kh x kw x (output elements per channel)
    batch norm:  5 x C x (elements per channel)              (fvcore's train-mode count)
    classifier:  C_in x classes

fvcore's own formulas. Output elements per channel depend on the view alone (frames, crop): widths,
temporal kernels (odd kernels, "same" padding) and dropped blocks do not change a kept module's output
size. So ``CostTable`` holds, per module of the base network, its elements per channel at each view
(one traced forward of the base per view) and its channel/kernel product at each joint choice of the
few decisions it depends on (found by changing one decision at a time, shared within a container such
as a shortcut, which exists or not as a whole; each joint choice counted on the derived network's own
weight shapes). The cost of a network, and the expected cost under
independent categorical distributions (a differentiable function of the probabilities), are then
sums of small tensor contractions: exact, not a fit. ``additivity_error`` compares the table with
fvcore on whole derived networks.
"""

from __future__ import annotations

import functools
import itertools
import math
import string
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from pas_models.nas.space import Arch, SearchSpace
from pas_models.nets import build_model
from pas_models.spec import ArchSpec
from pas_models.weights import weight_shapes

BN_FLOPS = 5  # fvcore: batch norm in training mode, per element
VIEW = ("frames", "crop")


@functools.lru_cache(maxsize=4096)
def _module_shapes(spec: ArchSpec) -> dict[str, tuple[str, tuple[int, ...]]]:
    """(kind, weight shape) of every conv / batch norm / linear module of ``spec``'s network, read from its
    state-dict shapes (``weights.weight_shapes``: one meta-device build per spec, shared with the supernet's
    weight plans): a 5-d weight is a convolution's, a 2-d one the classifier's, a running mean a batch norm's."""
    out = {}
    for key, shape in weight_shapes(spec):
        module, _, entry = key.rpartition(".")
        if entry == "weight" and len(shape) in (5, 2):
            out[module] = ("conv" if len(shape) == 5 else "linear", shape)
        elif entry == "running_mean":
            out[module] = ("bn", shape)
    return out


def _shape_flops(kind: str, shape: tuple[int, ...]) -> float:
    """The channel / kernel part of a module's flops (times its elements per channel)."""
    if kind == "bn":
        return float(BN_FLOPS * shape[0])
    return float(math.prod(shape))  # conv: C_out C_in kt kh kw; linear: out x in


def _elements(spec: ArchSpec, model: nn.Module) -> dict[str, float]:
    """Output elements per channel (and per sample) of every conv / batch norm module at ``spec``'s test
    view; the classifier: 1."""
    sizes: dict[str, float] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv3d, nn.BatchNorm3d)):
            hooks.append(m.register_forward_hook(
                lambda mod, inp, out, name=name: sizes.__setitem__(name, out[0, 0].numel())))
        elif isinstance(m, nn.Linear):
            sizes[name] = 1.0
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *spec.input_shape(train=False)))
    finally:
        for h in hooks:
            h.remove()
    return sizes


@dataclass
class _Group:
    """Modules whose channel/kernel part depends on the same decisions."""

    deps: tuple[int, ...]  # decision indices (network decisions only)
    modules: list[str]
    table: torch.Tensor  # (M, *[len(dep) for dep in deps]): channel/kernel flops, 0 where absent
    elements: torch.Tensor  # (M, frames choices, crop choices)
    channels: torch.Tensor  # (M, *[len(dep) for dep in deps]): output channels, 0 where absent
    kinds: list[str]  # conv | bn | linear, per module


class CostTable:
    """Exact GFLOPs of every network of ``space`` (see the module docstring)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        decisions = space.decisions
        self.view_index = tuple(space.index(n) if n in [d.name for d in decisions] else -1 for n in VIEW)
        elements = self._view_elements()
        base_modules = _module_shapes(space.derive(space.largest))
        by_deps = self._groups_by_decisions(base_modules)
        tables = self._tables(by_deps)
        self.groups = [_Group(dep, modules, tables[dep][0], torch.stack([elements[m] for m in modules]),
                              tables[dep][1], [base_modules[m][0] for m in modules])
                       for dep, modules in by_deps.items()]

    def _view_elements(self) -> dict[str, torch.Tensor]:
        """Each module's output elements for every (frames, crop) choice of the view decisions."""
        space = self.space
        base_net = build_model(space.base)
        n_f = len(space.decisions[self.view_index[0]]) if self.view_index[0] >= 0 else 1
        n_c = len(space.decisions[self.view_index[1]]) if self.view_index[1] >= 0 else 1
        elements: dict[str, torch.Tensor] = {}
        for f, c in itertools.product(range(n_f), range(n_c)):
            arch = list(space.largest)
            if self.view_index[0] >= 0:
                arch[self.view_index[0]] = f
            if self.view_index[1] >= 0:
                arch[self.view_index[1]] = c
            for name, n in _elements(space.derive(tuple(arch)), base_net).items():
                elements.setdefault(name, torch.zeros(n_f, n_c, dtype=torch.float64))[f, c] = n
        return elements

    def _groups_by_decisions(self, base_modules: dict[str, tuple[str, tuple[int, ...]]]
                             ) -> dict[tuple[int, ...], list[str]]:
        """The modules grouped by the network decisions their shapes follow (probed one decision at a time)."""
        space, decisions = self.space, self.space.decisions
        deps: dict[str, set[int]] = {m: set() for m in base_modules}
        for i in (i for i, d in enumerate(decisions) if d.name not in VIEW):
            for k in range(1, len(decisions[i])):
                arch = list(space.largest)
                arch[i] = k
                changed = _module_shapes(space.derive(tuple(arch)))
                for m, ks in base_modules.items():
                    if changed.get(m) != ks:
                        deps[m].add(i)
        # a module exists with its container (a shortcut whose convolution's input and output widths
        # become equal disappears, batch norm included): every module takes its container's decisions
        unit: dict[str, set[int]] = {}
        for m in base_modules:
            unit.setdefault(m.rsplit(".", 1)[0], set()).update(deps[m])
        by_deps: dict[tuple[int, ...], list[str]] = {}
        for m in base_modules:
            by_deps.setdefault(tuple(sorted(unit[m.rsplit(".", 1)[0]])), []).append(m)
        return by_deps

    def _tables(self, by_deps: dict[tuple[int, ...], list[str]]) -> dict[tuple[int, ...], tuple[torch.Tensor,
                                                                                                  torch.Tensor]]:
        """Each group's GFLOPs and output channels per module and joint choice of its decisions.

        Every joint choice of every group's decisions, read from as few derived networks as hold them all: a
        module's shapes follow its own decisions alone (what the probe found, and what the table's exactness
        rests on: ``additivity_error``), so one network serves the choices of several groups wherever they agree
        on the decisions they share (r2plus1d_tiny: 32 networks for its 265 joint choices, where one network each
        built 103; the whole table 2.3 -> 0.7 CPU-s, slowfast_4x16_r50's 32 -> 14)."""
        space, decisions = self.space, self.space.decisions
        combos = [(dep, combo) for dep in by_deps for combo in itertools.product(*(range(len(decisions[i]))
                                                                                  for i in dep))]
        packs: list[dict[int, int]] = []
        where: list[int] = []
        for dep, combo in combos:
            want = dict(zip(dep, combo, strict=True))
            at = next((j for j, pack in enumerate(packs) if all(pack.get(i, k) == k for i, k in want.items())),
                      len(packs))
            if at == len(packs):
                packs.append({})
            packs[at].update(want)
            where.append(at)
        built = [_module_shapes(space.derive(tuple(pack.get(i, k) for i, k in enumerate(space.largest))))
                 for pack in packs]
        tables = {dep: (torch.zeros(len(ms), *(len(decisions[i]) for i in dep), dtype=torch.float64),
                        torch.zeros(len(ms), *(len(decisions[i]) for i in dep), dtype=torch.long))
                  for dep, ms in by_deps.items()}
        for (dep, combo), at in zip(combos, where, strict=True):
            shapes = built[at]
            table, channels = tables[dep]
            for r, m in enumerate(by_deps[dep]):
                if m in shapes:
                    table[(r, *combo)] = _shape_flops(*shapes[m])
                    channels[(r, *combo)] = shapes[m][1][0]
        return tables

    # ---- one network -------------------------------------------------------------------------
    def gflops(self, arch: Arch) -> float:
        """GFLOPs per view of ``arch``'s network (fvcore's convention, exact)."""
        return self.gflops_of([arch])[0]

    def gflops_of(self, archs: Sequence[Arch]) -> list[float]:
        """``gflops`` of each of ``archs``, in one pass over the table (a candidate scores 4,096 networks)."""
        if not archs:
            return []
        a = torch.tensor([self.space.check(arch) for arch in archs], dtype=torch.long)  # (N, decisions)
        zero = torch.zeros(len(archs), dtype=torch.long)
        f = a[:, self.view_index[0]] if self.view_index[0] >= 0 else zero
        c = a[:, self.view_index[1]] if self.view_index[1] >= 0 else zero
        total = torch.zeros(len(archs), dtype=torch.float64)
        for g in self.groups:
            per_module = g.table[(slice(None), *(a[:, i] for i in g.deps))] if g.deps else g.table[:, None]
            total += (per_module * g.elements[:, f, c]).sum(0)
        return (total / 1e9).tolist()

    # ---- a distribution ----------------------------------------------------------------------
    def expected_gflops(self, probs: Sequence[torch.Tensor]) -> torch.Tensor:
        """E[GFLOPs] when decision i takes choice k with probability ``probs[i][k]``, independently
        (differentiable in ``probs``)."""
        if len(probs) != len(self.space.decisions):
            raise ValueError(f"{len(probs)} distributions for {len(self.space.decisions)} decisions")
        dtype = probs[0].dtype
        one = torch.ones(1, dtype=dtype, device=probs[0].device)
        pf = probs[self.view_index[0]] if self.view_index[0] >= 0 else one
        pc = probs[self.view_index[1]] if self.view_index[1] >= 0 else one
        total = torch.zeros((), dtype=dtype, device=pf.device)
        letters = string.ascii_letters[2:]
        for g in self.groups:
            n = torch.einsum("mfc,f,c->m", g.elements.to(pf), pf, pc)  # expected elements per module
            subs = "m" + letters[:len(g.deps)]
            spec = ",".join([subs, *letters[:len(g.deps)]]) + "->m"
            part = torch.einsum(spec, g.table.to(pf), *(probs[i] for i in g.deps))
            total = total + (n * part).sum()
        return total / 1e9


def additivity_error(table: CostTable, archs: Sequence[Arch]) -> float:
    """The largest relative difference between the table's GFLOPs and fvcore's (``count_cost``) over
    ``archs``' whole derived networks."""
    from pas_models.flops import count_cost

    worst = 0.0
    for arch in archs:
        exact = count_cost(table.space.derive(arch)).gflops
        worst = max(worst, abs(table.gflops(arch) - exact) / exact)
    return worst
