"""The gradient strategy's compute side: search space, supernet slices, exact cost table, gates, candidates (the
supernet job: test_nas_job.py)."""

from __future__ import annotations

import itertools
import random

import pytest
import torch
import torch.nn.functional as F

from pas_models.errors import SpecError
from pas_models.flops import count_cost
from pas_models.nas.cost import CostTable, additivity_error
from pas_models.nas.gates import gates, sample, student_view
from pas_models.nas.space import SearchSpace
from pas_models.nas.supernet import Supernet, derive_state, weight_plan
from pas_models.nets import build_model
from pas_models.presets import PRESETS
from pas_models.reductions import apply_op

TINY = ("r2plus1d_tiny", "slowfast_tiny", "x3d_tiny")


def _trained_like(name: str, seed: int = 0) -> tuple[object, torch.nn.Module]:
    """A base network whose batch norms are not the identity (as a trained one's)."""
    base = PRESETS[name](6)
    torch.manual_seed(seed)
    model = build_model(base)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_()
            m.bias.data.normal_()
    return base, model


def _random_archs(space: SearchSpace, n: int, seed: int = 0) -> list[tuple[int, ...]]:
    rng = random.Random(seed)
    return [tuple(rng.randrange(len(d)) for d in space.decisions) for _ in range(n)]


@pytest.fixture(scope="module")
def tables() -> dict[str, CostTable]:
    return {name: CostTable(SearchSpace.of(PRESETS[name](6))) for name in TINY}


def test_space_of_the_presets() -> None:
    r18 = SearchSpace.of(PRESETS["r2plus1d_18"](400))
    names = [d.name for d in r18.decisions]
    assert names[:2] == ["frames", "crop"]
    assert {"stage1.main.width", "stage4.main.kt", "stage2.blocks"} <= set(names)
    assert r18.stem_follows_stage1  # 64-wide stem -> 64-wide stage 1: no projection to slice
    small = r18.derive(tuple(len(d) - 1 for d in r18.decisions))
    assert small.view.frames == 4 and small.view.crop_test == 56 and small.stage_blocks == (1, 1, 1, 1)
    assert small.pathways[0].stem_width == 22 and small.pathways[0].stage_widths == (22, 45, 91, 182)
    assert small.pathways[0].stage_temporal_kernels == (1, 1, 1, 1)
    # the base is the largest point; every choice of a decision is a different network
    assert r18.derive(r18.largest).replace(name="r2plus1d_18") == r18.base
    for space in (r18, SearchSpace.of(PRESETS["slowfast_4x16_r50"](400)), SearchSpace.of(PRESETS["slowfast_tiny"](6))):
        for i, d in enumerate(space.decisions):
            nets = set()
            for k in range(len(d)):
                arch = list(space.largest)
                arch[i] = k
                nets.add(space.derive(tuple(arch)).replace(name="x"))
            assert len(nets) == len(d), d.name
    # frames / crop follow operators t and s exactly
    t = r18.derive(tuple(1 if d.name == "frames" else 0 for d in r18.decisions))
    s = r18.derive(tuple(1 if d.name == "crop" else 0 for d in r18.decisions))
    assert t.view == apply_op(r18.base, "t").view and s.view == apply_op(r18.base, "s").view
    # slowfast_tiny's last slow stage has an identity shortcut: it and what feeds it keep their widths
    sf = SearchSpace.of(PRESETS["slowfast_tiny"](6))
    assert "stage4.slow.width" not in [d.name for d in sf.decisions]
    assert "stage3.fast.width" not in [d.name for d in sf.decisions]
    with pytest.raises(SpecError, match="reduced already"):
        SearchSpace.of(apply_op(PRESETS["r2plus1d_tiny"](6), "t"))
    assert r18.describe(r18.largest) == "the base network"
    with pytest.raises(SpecError, match="does not index"):
        r18.check((0,))


@pytest.mark.parametrize("name", TINY)
def test_supernet_slices_are_the_derived_networks(name: str) -> None:
    base, model = _trained_like(name)
    model.eval()
    space = SearchSpace.of(base)
    net = Supernet(base, model).eval()
    x = torch.randn(2, *base.input_shape())
    with torch.no_grad():  # every choice at its maximum: B itself, bit for bit
        assert torch.equal(net(x, space.derive(space.largest)), model(x))
    for arch in _random_archs(space, 8):
        child = space.derive(arch)
        derived = build_model(child).eval()
        state = derive_state(model.state_dict(), base, child)
        derived.load_state_dict(state, strict=True)
        for key, s in weight_plan(base, child).items():  # each entry is the corresponding slice
            assert torch.equal(state[key], s.take(model.state_dict()[key]))
        xc = torch.randn(2, *child.input_shape())
        with torch.no_grad():
            assert torch.allclose(net(xc, child), derived(xc), atol=1e-5), space.describe(arch)


def test_slices_by_hand() -> None:
    base, model = _trained_like("slowfast_tiny")
    space = SearchSpace.of(base)
    arch = list(space.largest)
    arch[space.index("stage2.slow.width")] = 2  # / 2
    arch[space.index("stage1.fast.width")] = 1  # / 1.4
    arch[space.index("stage3.slow.kt")] = 1  # the centre tap
    child = space.derive(tuple(arch))
    state = derive_state(model.state_dict(), base, child)
    full = model.state_dict()
    # slow stage-2 block 0 (inner 12 -> 6): input = slow stage-1 output (16) + fused fast stage-1 output
    # (2 x 4 in B, 2 x 2 after /1.4): the first 16 and the first 4 of the 8 fused channels
    w = full["stages.1.0.0.branch.0.weight"]
    assert w.shape[:2] == (12, 24)
    assert torch.equal(state["stages.1.0.0.branch.0.weight"], torch.cat([w[:6, :16], w[:6, 16:20]], dim=1))
    k = full["stages.2.0.0.branch.0.weight"]
    # slow stage-3 block 0, temporal kernel 1: the centre tap; its input: slow stage-2 output 24 -> 12 and the
    # fused fast stage-2 output (12, unchanged)
    assert k.shape[:3] == (16, 36, 3)
    assert torch.equal(state["stages.2.0.0.branch.0.weight"], torch.cat([k[:, :12, 1:2], k[:, 24:36, 1:2]], dim=1))
    assert "stages.0.0.1.branch.0.weight" in state  # stage 1 keeps its 3 blocks


def test_train_mode_updates_the_base_statistics_in_place() -> None:
    base, model = _trained_like("r2plus1d_tiny")
    space = SearchSpace.of(base)
    net = Supernet(base, model).train()
    arch = list(space.largest)
    arch[space.index("stage2.main.width")] = 2  # 12 -> 6 channels
    child = space.derive(tuple(arch))
    before = model.layer2[0].conv1[1].running_mean.clone()
    net(torch.randn(2, *child.input_shape(train=True)), child)
    after = model.layer2[0].conv1[1].running_mean
    assert not torch.equal(after[:6], before[:6]) and torch.equal(after[6:], before[6:])


@pytest.mark.parametrize("name", TINY)
def test_cost_table_is_exact(name: str, tables: dict[str, CostTable]) -> None:
    table = tables[name]
    space = table.space
    archs = [space.largest, tuple(len(d) - 1 for d in space.decisions), *_random_archs(space, 6, seed=3)]
    assert additivity_error(table, archs) < 1e-9
    assert table.gflops(space.largest) == pytest.approx(count_cost(space.base).gflops, rel=1e-12)
    # the expectation: one-hot distributions give each network's cost; a distribution, the mean cost
    arch = archs[2]
    onehot = [F.one_hot(torch.tensor(k), len(d)).double() for k, d in zip(arch, space.decisions, strict=True)]
    assert float(table.expected_gflops(onehot)) == pytest.approx(table.gflops(arch), rel=1e-12)
    gen = torch.Generator().manual_seed(0)
    logits = [torch.randn(len(d), generator=gen, dtype=torch.float64) for d in space.decisions]
    probs = [lg.softmax(0) for lg in logits]
    mean = sum(table.gflops(a) * float(torch.prod(torch.stack([p[k] for p, k in zip(probs, a, strict=True)])))
               for a in space.all_archs()) if space.count() < 10_000 else None
    if mean is not None:
        assert float(table.expected_gflops(probs)) == pytest.approx(mean, rel=1e-9)
    # differentiable: more weight on the smaller crop lowers the expected cost
    lg = [x.clone().requires_grad_(True) for x in logits]
    table.expected_gflops([x.softmax(0) for x in lg]).backward()
    crop = space.index("crop")
    assert lg[crop].grad[-1] < 0 < lg[crop].grad[0]


def test_expected_cost_on_a_small_space_by_enumeration() -> None:
    """All networks enumerated where the space is small enough: the expectation is the probability-weighted sum."""
    base = PRESETS["r2plus1d_tiny"](6).replace(stage_blocks=(1, 1, 1, 2))
    space = SearchSpace.of(base)
    keep = {"crop", "stage4.blocks", "stage3.main.width", "stage4.main.width", "stage4.main.kt"}
    table = CostTable(space)
    gen = torch.Generator().manual_seed(1)
    probs = []
    for d in space.decisions:
        p = torch.rand(len(d), generator=gen, dtype=torch.float64) if d.name in keep else torch.zeros(len(d))
        if d.name not in keep:
            p[0] = 1.0
        probs.append((p / p.sum()).double())
    mean = 0.0
    for arch in space.all_archs():
        w = float(torch.prod(torch.stack([p[k] for p, k in zip(probs, arch, strict=True)])))
        if w > 0:
            mean += w * table.gflops(arch)
    assert float(table.expected_gflops(probs)) == pytest.approx(mean, rel=1e-12)


def test_each_joint_choice_is_what_its_own_network_has() -> None:
    """The table reads several groups' joint choices from one derived network: each entry equals the one
    read from the network that makes only that choice (the rest of the space at its largest)."""
    from pas_models.nas.cost import _module_shapes, _shape_flops

    space = SearchSpace.of(PRESETS["r2plus1d_tiny"](6).replace(stage_blocks=(1, 1, 1, 2)))
    table = CostTable(space)
    checked = 0
    for g in table.groups:
        for combo in itertools.product(*(range(len(space.decisions[i])) for i in g.deps)):
            arch = list(space.largest)
            for i, k in zip(g.deps, combo, strict=True):
                arch[i] = k
            shapes = _module_shapes(space.derive(tuple(arch)))
            for r, m in enumerate(g.modules):
                want = (_shape_flops(*shapes[m]), shapes[m][1][0]) if m in shapes else (0.0, 0)
                assert (float(g.table[(r, *combo)]), int(g.channels[(r, *combo)])) == want, (m, combo)
                checked += 1
    assert checked > 500


@pytest.mark.parametrize("name", TINY)
def test_gates_are_one_forward_and_carry_gradients(name: str, tables: dict[str, CostTable]) -> None:
    base, model = _trained_like(name)
    table = tables[name]
    space = table.space
    net = Supernet(base, model).train()
    logits = [torch.zeros(len(d), requires_grad=True) for d in space.decisions]
    gen = torch.Generator().manual_seed(5)
    seen: set[str] = set()
    for step in range(6):
        arch, hs = sample(logits, 1.0, gen)
        child = space.derive(arch)
        x = torch.randn(4, *child.input_shape(train=True), generator=gen)
        torch.manual_seed(step)
        plain = net(x, child)
        g = gates(space, table, arch, hs)
        assert g, "a sampled network has gates"
        torch.manual_seed(step)
        gated = net(x, child, g)
        assert torch.allclose(plain, gated, atol=1e-6)  # every gate is 1 on the sampled network
        loss = F.cross_entropy(gated, torch.arange(4) % 6)
        grads = torch.autograd.grad(loss, logits, allow_unused=True)
        for d, gr in zip(space.decisions, grads, strict=True):
            if gr is not None and gr.abs().sum() > 0:
                seen.add(d.kind)
    assert {"width", "blocks", "kt"} <= seen


def test_student_view_follows_t_and_s() -> None:
    base = PRESETS["r2plus1d_tiny"](6)
    space = SearchSpace.of(base)
    arch = list(space.largest)
    arch[space.index("frames")] = 1
    arch[space.index("crop")] = 2
    child = space.derive(tuple(arch))
    x = torch.randn(2, *base.input_shape(train=True))
    v = student_view(x, child)
    assert v.shape == (2, *child.input_shape(train=True))
    assert torch.equal(student_view(x, space.derive(space.largest)), x)


def test_the_candidate_is_the_most_likely_network_within_the_target(tables: dict[str, CostTable]) -> None:
    from pas_models.nas.candidates import most_likely_within

    table = tables["r2plus1d_tiny"]
    space = table.space
    gen = torch.Generator().manual_seed(2)
    probs = [torch.softmax(3 * torch.randn(len(d), generator=gen, dtype=torch.float64), 0) for d in space.decisions]
    argmax = tuple(int(torch.argmax(p)) for p in probs)
    g = table.gflops(argmax)
    assert most_likely_within(probs, table, g) == argmax  # in the band: the most likely network of all
    target = table.gflops(space.largest) * 0.3
    arch = most_likely_within(probs, table, target)
    assert 0.8 * target <= table.gflops(arch) <= target
    assert most_likely_within(probs, table, target) == arch  # seeded
    smallest = tuple(len(d) - 1 for d in space.decisions)
    assert most_likely_within(probs, table, table.gflops(smallest) / 2) == smallest  # below the space: the smallest


@pytest.mark.parametrize("name", TINY)
def test_a_candidate_that_only_cuts_temporal_kernels_starts_from_b_centre_taps(name: str) -> None:
    """candidate_init pas: B's weights where shapes allow; kt 1 takes the centre tap (= the supernet's slice of
    B); a width or depth cut is not a slice of B's shapes and starts from random weights."""
    from pas_models.inherit import can_init_from_parent, centre_taps_of, init_from_parent

    base, model = _trained_like(name)
    space = SearchSpace.of(base)
    kts = [i for i, d in enumerate(space.decisions) if d.kind == "kt"]
    arch = list(space.largest)
    for i in kts[:2]:
        arch[i] = 1
    arch[space.index("crop")] = 1  # a view choice changes no weight
    child = space.derive(tuple(arch))
    assert centre_taps_of(base, child) and can_init_from_parent(base, child)
    net = build_model(child)
    assert init_from_parent(net, model.state_dict(), base, child) == "centre taps"
    expected = derive_state(model.state_dict(), base, child)
    assert all(torch.equal(v, expected[k]) for k, v in net.state_dict().items())
    narrow = list(space.largest)
    narrow[next(i for i, d in enumerate(space.decisions) if d.kind == "width")] = 1
    narrow[kts[0]] = 1
    assert not centre_taps_of(base, space.derive(tuple(narrow)))
    assert not can_init_from_parent(base, space.derive(tuple(narrow)))
    assert not centre_taps_of(base, base)  # equal shapes: copied, not this
