"""The APGD-CE + APGD-T ensemble: ball and box, seeding, strength, stacked eps, survivors only."""

from __future__ import annotations

import importlib

import pytest
import torch
from pyautoattack.autopgd_base import APGDAttack_targeted

from tests.trainables.attacks_models import accuracy, digits, trained_digits_mlp
from trainables.attacks import FOOLED_BY, apgd, ensemble, ensemble_robust, pgd, run_attack
from trainables.attacks.ensemble import Ensemble, _reuse_upwards
from trainables.config import ATTACKS
from trainables.errors import ConfigError

STEPS = 20  # the tests check behaviour, not the budget: fewer iterations keep them fast
EPS = {"linf": 0.1, "l2": 0.6}


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return trained_digits_mlp()


@pytest.fixture(scope="module")
def data():
    _, _, x_test, y_test = digits()
    return x_test[:150], y_test[:150]


def _size(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


class CountingModel(torch.nn.Module):
    """Records the batch size of every forward pass that builds a graph (the attack iterations)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.grad_batches = model, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            self.grad_batches.append(len(x))
        return self.model(x)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_stays_in_ball_and_box_with_per_sample_eps(model, data, norm):
    x, y = data
    eps = torch.linspace(0, 2 * EPS[norm], len(x))
    x_adv = ensemble(model, x, y, norm=norm, eps=eps, steps=STEPS, seed=0)
    assert (_size(x_adv - x, norm) <= eps + 1e-6).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert torch.equal(x_adv[0], x[0])  # eps = 0
    with torch.no_grad():
        fooled = model(x_adv).argmax(1) != y
    # Larger budgets fool more: the second half has larger eps than the first.
    assert fooled[75:].sum() > fooled[:75].sum()


def test_seeded_and_leaves_global_rng_alone(model, data):
    x, y = data
    state = torch.get_rng_state()
    a = ensemble(model, x, y, norm="linf", eps=0.1, steps=STEPS, seed=3)
    b = ensemble(model, x, y, norm="linf", eps=0.1, steps=STEPS, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b)
    # The registry runs it at AutoAttack's budgets (100 iterations): a few samples suffice.
    assert torch.equal(run_attack(model, x[:20], y[:20], name="ensemble", norm="linf", eps=0.1,
                                  seed=3),
                       ensemble(model, x[:20], y[:20], norm="linf", eps=0.1, seed=3))
    assert "ensemble" in ATTACKS


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_never_weaker_than_its_components_or_pgd(model, data, norm):
    x, y = data
    eps = EPS[norm]
    ens = accuracy(model, ensemble(model, x, y, norm=norm, eps=eps, steps=STEPS, seed=0), y)
    # APGD-CE alone with the same seed is exactly the ensemble's first stage.
    ce_only = accuracy(model, ensemble(model, x, y, norm=norm, eps=eps, steps=STEPS, targets=0,
                                       seed=0), y)
    ce = accuracy(model, apgd(model, x, y, norm=norm, eps=eps, steps=STEPS, seed=0), y)
    pgd10 = accuracy(model, pgd(model, x, y, norm=norm, eps=eps, steps=10, seed=0), y)
    clean = accuracy(model, x, y)
    assert ens <= ce_only <= clean
    assert ens <= ce and ens <= pgd10
    assert ens < clean


@pytest.mark.parametrize(("stack_targets", "n", "stacked"), [
    (True, 150, True), (False, 150, False),
    (None, 150, False),  # the default on CPU: ~90 survivors x 9 targets, too many to stack
    (None, 20, True),  # ~10 survivors x 9 targets: stacked
])
def test_targeted_stages_attack_only_survivors(model, data, stack_targets, n, stacked):
    ensemble_module = importlib.import_module("trainables.attacks.ensemble")
    x, y = data[0][:n], data[1][:n]
    counting = CountingModel(model)
    attack = Ensemble(counting, norm="linf", steps=STEPS, seed=0, stack_targets=stack_targets)
    attack(x, y, 0.1)
    correct = int((model(x).argmax(1) == y).sum())
    ce_survivors = round(accuracy(model, ensemble(model, x, y, norm="linf", eps=0.1, steps=STEPS,
                                                  targets=0, seed=0), y) * len(x))
    sizes = [size for _, size in attack.stage_sizes]
    names = [name for name, _ in attack.stage_sizes]
    assert sizes[0] == correct > ce_survivors > 0
    if stack_targets is None:  # the default on CPU: stacked only if that run is small
        assert (9 * ce_survivors <= ensemble_module.STACK_REPLICAS_CPU) == stacked
    if stacked:
        # One stacked APGD-T run: every survivor of APGD-CE once per target (9 of 10 classes).
        assert attack.stage_sizes == [("apgd-ce", correct), ("apgd-t", 9 * ce_survivors)]
    else:
        assert names[0] == "apgd-ce" and set(names[1:]) == {"apgd-t"} and len(names) <= 10
        assert sizes[1] == ce_survivors  # the survivors of APGD-CE, no more
        assert all(a >= b for a, b in zip(sizes, sizes[1:]))
    # What the model saw: steps + 1 gradient forwards per stage, each on that stage's rows.
    expected = [size for size in sizes if size > 0 for _ in range(STEPS + 1)]
    assert counting.grad_batches == expected


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_stacked_targets_equal_sequential_targets(model, data, norm):
    """Stacking APGD-T's targets changes the cost, not the result: robust, fooled_by and x_adv
    are those of running the targets one after another, and never weaker than PGD."""
    x, y = data[0][:100], data[1][:100]
    grid = [EPS[norm] / 2, EPS[norm], 1.5 * EPS[norm]]
    stacked = ensemble_robust(model, x, y, norm, grid, seed=2, steps=STEPS, stack_targets=True)
    sequential = ensemble_robust(model, x, y, norm, grid, seed=2, steps=STEPS,
                                 stack_targets=False)
    for eps in grid:
        assert torch.equal(stacked[eps].robust, sequential[eps].robust), eps
        assert torch.equal(stacked[eps].fooled_by, sequential[eps].fooled_by), eps
        assert torch.equal(stacked[eps].x_adv, sequential[eps].x_adv), eps
        x_pgd = pgd(model, x, y, norm=norm, eps=eps, steps=10, seed=0)
        with torch.no_grad():
            pgd_robust = int((model(x_pgd).argmax(1) == y).sum())
        assert int(stacked[eps].robust.sum()) <= pgd_robust
    # The targeted stage fooled samples (so the comparison covers it) at the largest eps.
    assert (stacked[grid[-1]].fooled_by == FOOLED_BY.index("apgd-t")).sum() >= 2


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_apgd_t_replicas_are_independent_of_their_batch(model, data, norm):
    """The claim stacking rests on: in one APGD-T run, a replica's trajectory does not depend on
    the other rows of the batch (step size, momentum and checkpoints are per sample). A sample's
    9 replicas run alone give bit for bit the x_adv they get inside the full stacked batch. (The
    replicas of one sample are kept together: a batch of one row makes BLAS switch to a
    matrix-vector kernel, whose rounding differs in the last bits from a matrix product's.)"""
    x, y = data[0][:40], data[1][:40]
    attack = Ensemble(model, norm=norm, steps=STEPS, seed=0)
    with torch.no_grad():
        order = model(x).sort(dim=1)[1]
    rows = torch.arange(len(x)).repeat(9)
    target = order[rows, -(torch.arange(9).repeat_interleave(len(x)) + 2)]
    eps = torch.full((len(rows),), EPS[norm])
    gen = torch.Generator().manual_seed(5)
    start = (x[rows] + 0.5 * EPS[norm] * (2 * torch.rand(x[rows].shape, generator=gen) - 1))
    found, fooled = attack._run_stage(x[rows], y[rows], eps, start.clamp(0, 1), target)
    assert 0 < fooled.sum() < len(rows)
    for i in (0, 7, 33):
        mine = (rows == i).nonzero().squeeze(1)
        alone, alone_fooled = attack._run_stage(x[rows[mine]], y[rows[mine]], eps[mine],
                                                start[mine].clamp(0, 1), target[mine])
        assert torch.equal(alone, found[mine]), i
        assert torch.equal(alone_fooled, fooled[mine]), i


def test_stacked_targets_chunked_equal_one_run(model, data, monkeypatch):
    """A row cap on the stacked run (bounded memory) splits it into several calls and changes
    nothing else."""
    ensemble_module = importlib.import_module("trainables.attacks.ensemble")

    x, y = data[0][:60], data[1][:60]
    whole = ensemble_robust(model, x, y, "linf", [0.1], seed=4, steps=STEPS,
                            stack_targets=True)[0.1]
    counting = CountingModel(model)
    monkeypatch.setattr(ensemble_module, "MAX_STACKED_ELEMENTS", 64 * 50)  # 50 rows per call
    attack = Ensemble(counting, norm="linf", steps=STEPS, seed=4, stack_targets=True)
    x_adv = attack(x, y, 0.1)
    replicas = attack.stage_sizes[1][1]
    assert replicas > 100
    chunks = [min(50, replicas - lo) for lo in range(0, replicas, 50)]
    assert counting.grad_batches[(STEPS + 1):] == [c for c in chunks for _ in range(STEPS + 1)]
    assert torch.equal(x_adv, whole.x_adv)


def test_fooled_by_labels(model, data):
    x, y = data
    result = ensemble_robust(model, x, y, "l2", [0.6], seed=0, steps=STEPS)[0.6]
    names = [FOOLED_BY[int(c)] for c in result.fooled_by]
    with torch.no_grad():
        correct = model(x).argmax(1) == y
        adv_correct = model(result.x_adv).argmax(1) == y
    assert torch.equal(result.robust, adv_correct)
    for i, name in enumerate(names):
        assert (name == "none") == bool(result.robust[i])
        assert (name == "clean") == (not bool(correct[i]))
    assert {"apgd-ce", "apgd-t"} & set(names)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_stacked_eps_equal_separate_runs_up_to_reuse(model, data, norm):
    x, y = data[0][:100], data[1][:100]
    grid = [EPS[norm] / 2, EPS[norm], 2 * EPS[norm]]
    stacked = ensemble_robust(model, x, y, norm, grid, seed=1, steps=STEPS)
    separate = {eps: ensemble_robust(model, x, y, norm, [eps], seed=1, steps=STEPS)[eps]
                for eps in grid}
    expected = torch.ones(len(x), dtype=torch.bool)
    previous = None
    for eps in grid:
        # Documented reuse: fooled at a smaller eps means fooled here, with that example.
        expected = expected & separate[eps].robust
        assert torch.equal(stacked[eps].robust, expected), eps
        assert (_size(stacked[eps].x_adv - x, norm) <= eps + 1e-6).all()
        if previous is not None:
            assert (stacked[eps].robust <= previous).all()  # monotone per sample
        previous = stacked[eps].robust
    assert stacked[grid[-1]].robust.sum() < stacked[grid[0]].robust.sum()


def test_library_targeted_perturb_breaks_on_per_sample_eps(model, data):
    # Why we call attack_single_run ourselves: perturb subsets the batch (per target class) but
    # not a per-sample eps tensor. Two samples, the first misclassified by construction.
    x, y = data
    y2 = y[:2].clone()
    y2[0] = (model(x[:1]).argmax(1) + 1) % 10
    attack = APGDAttack_targeted(model, n_iter=2, eps=torch.full((2, 1, 1, 1), 0.1),
                                 n_target_classes=1)
    with pytest.raises(RuntimeError):
        attack.perturb(x[:2], y2)


def test_small_label_sets():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(20, 6, generator=gen)
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 3)
    y = model(x).argmax(1).detach()
    attack = Ensemble(model, norm="linf", steps=5, seed=0)
    attack(x, y, 0.3)
    assert [name for name, _ in attack.stage_sizes] == ["apgd-ce"]  # APGD-T dropped (< 4)
    with pytest.raises(ConfigError, match="needs >= 4 classes"):
        Ensemble(model, norm="linf", targets=2)(x, y, 0.3)
    with pytest.raises(ConfigError, match="distinct eps"):
        ensemble_robust(model, x, y, "linf", [0.1, 0.1])


def test_reuse_gives_larger_eps_the_smallest_fooled_example():
    # Rows 0-2: one sample at eps 0.1, 0.2, 0.3; rows 3-4: another at 0.3, 0.1. Rows 0 and 4 were
    # just fooled: every still-alive row of the same sample with a larger eps takes the example.
    x_adv = torch.arange(5.0).view(5, 1).repeat(1, 3)
    alive = torch.tensor([False, True, True, True, False])
    fooled_by = torch.tensor([2, 0, 0, 0, 3])
    eps = torch.tensor([0.1, 0.2, 0.3, 0.3, 0.1])
    sample = torch.tensor([0, 0, 0, 1, 1])
    _reuse_upwards(x_adv, alive, fooled_by, eps, sample, torch.tensor([0, 4]))
    assert not alive.any()
    assert torch.equal(x_adv[:, 0], torch.tensor([0.0, 0.0, 0.0, 4.0, 4.0]))
    assert fooled_by.tolist() == [2, 2, 2, 3, 3]
    # A fooled larger eps gives nothing to a smaller one.
    alive = torch.tensor([True, False])
    x_two = torch.tensor([[0.0], [1.0]])
    _reuse_upwards(x_two, alive, torch.tensor([0, 2]), torch.tensor([0.1, 0.2]),
                   torch.tensor([0, 0]), torch.tensor([1]))
    assert alive.tolist() == [True, False] and x_two[0, 0] == 0


def test_proven_samples_are_not_attacked_and_nothing_else_changes(model, data):
    """Skipping samples a sound certificate proves robust only saves work: every result is the
    same as attacking them (per-sample random starts), and the stages see fewer samples."""
    from trainables.metrics import certified_mask

    x, y = data[0][:100], data[1][:100]
    grid = [0.02, 0.05]
    proven = {eps: certified_mask(model, x, y, "linf", eps) for eps in grid}
    assert proven[0.02].sum() > 10  # the test needs certified samples to skip
    counting = CountingModel(model)
    plain = ensemble_robust(counting, x, y, "linf", grid, seed=3, steps=STEPS)
    plain_work = sum(counting.grad_batches)
    counting.grad_batches.clear()
    skipped = ensemble_robust(counting, x, y, "linf", grid, seed=3, steps=STEPS, proven=proven)
    for eps in grid:
        assert torch.equal(skipped[eps].robust, plain[eps].robust), eps
        assert skipped[eps].robust[proven[eps]].all()  # no attack fools a certified sample
    assert sum(counting.grad_batches) < plain_work


@pytest.mark.parametrize("stack_targets", [False, True])
def test_unreachable_targets_are_skipped(model, data, stack_targets):
    """APGD-T never runs towards a target marked unreachable: with every class marked, APGD-T
    runs on no row and the result is APGD-CE's; with none marked, nothing changes at all."""
    x, y = data[0][:60], data[1][:60]
    grid = [0.05, 0.1]
    k = 10
    kwargs = {"seed": 5, "steps": STEPS, "stack_targets": stack_targets}
    plain = ensemble_robust(model, x, y, "linf", grid, **kwargs)
    none = {eps: torch.zeros(len(x), k, dtype=torch.bool) for eps in grid}
    same = ensemble_robust(model, x, y, "linf", grid, unreachable=none, **kwargs)
    every = {eps: torch.ones(len(x), k, dtype=torch.bool) for eps in grid}
    ce_only = ensemble_robust(model, x, y, "linf", grid, targets=0, seed=5, steps=STEPS)
    counting = CountingModel(model)
    skipped = ensemble_robust(counting, x, y, "linf", grid, unreachable=every, **kwargs)
    ce_counting = CountingModel(model)
    ensemble_robust(ce_counting, x, y, "linf", grid, targets=0, seed=5, steps=STEPS)
    assert counting.grad_batches == ce_counting.grad_batches  # no APGD-T iteration at all
    for eps in grid:
        assert torch.equal(same[eps].x_adv, plain[eps].x_adv)
        assert torch.equal(same[eps].robust, plain[eps].robust)
        assert torch.equal(skipped[eps].robust, ce_only[eps].robust)
    # The check can fail: APGD-T fools samples APGD-CE left robust here.
    assert any((ce_only[eps].robust & ~plain[eps].robust).any() for eps in grid)


def test_certified_unreachable_targets_save_work_not_strength(model, data):
    """With CROWN's per-class certificate (margin bound > 0 = unreachable), APGD-T runs fewer
    (row, target) pairs and fools the same samples as the full run."""
    from trainables.metrics import margin_lower_bounds

    x, y = data[0][:100], data[1][:100]
    grid = [0.05, 0.1]
    unreachable = {eps: margin_lower_bounds(model, x, y, "linf", eps) > 0 for eps in grid}
    attack = Ensemble(model, norm="linf", seed=3, steps=STEPS, stack_targets=False)
    xs, ys = x.repeat(2, *([1] * (x.ndim - 1))), y.repeat(2)
    eps = torch.tensor(grid).repeat_interleave(len(x))
    full = attack(xs, ys, eps)
    full_t = sum(n for name, n in attack.stage_sizes if name == "apgd-t")
    attack.unreachable = torch.cat([unreachable[eps] for eps in grid])
    pruned = attack(xs, ys, eps)
    pruned_t = sum(n for name, n in attack.stage_sizes if name == "apgd-t")
    with torch.no_grad():
        assert torch.equal(model(full).argmax(1) == ys, model(pruned).argmax(1) == ys)
    assert pruned_t < full_t / 2, (pruned_t, full_t)


def test_given_examples_are_kept_and_their_samples_not_attacked(model, data):
    """A sample a given example fools keeps that example and is not attacked; every other
    sample's result is the same as without; an example outside the ball is refused."""
    x, y = data[0][:80], data[1][:80]
    grid = [0.05, 0.1]
    kwargs = {"seed": 4, "steps": STEPS}
    given = {eps: pgd(model, x, y, norm="linf", eps=eps, steps=10, seed=1) for eps in grid}
    counting = CountingModel(model)
    plain = ensemble_robust(counting, x, y, "linf", grid, **kwargs)
    plain_work = sum(counting.grad_batches)
    counting.grad_batches.clear()
    out = ensemble_robust(counting, x, y, "linf", grid, given=given, **kwargs)
    assert sum(counting.grad_batches) < plain_work
    code = FOOLED_BY.index("given")
    for eps in grid:
        with torch.no_grad():
            pgd_fooled = model(given[eps]).argmax(1) != y
        hit = out[eps].fooled_by == code
        assert hit.sum() > 0
        assert torch.equal(out[eps].x_adv[hit], given[eps][hit])
        assert not out[eps].robust[pgd_fooled].any()
        # robust = survives both: exactly the union of the plain run and the given examples
        assert torch.equal(out[eps].robust, plain[eps].robust & ~pgd_fooled), eps
    outside = {0.05: (x + 0.2).clamp(0, 1)}
    with pytest.raises(ConfigError, match="eps ball"):
        ensemble_robust(model, x, y, "linf", grid, given=outside, **kwargs)
