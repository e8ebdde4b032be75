"""The final-evaluation ensemble in the AutoAttack manner: APGD-CE, then targeted APGD-DLR (APGD-T).

Stages, each only on the samples still robust (correct clean and not fooled by an earlier stage):
1. APGD-CE, 100 iterations, 1 restart;
2. APGD-T, 100 iterations per target class, target classes the top min(9, classes - 1) wrong
   classes of the clean logits, in order.
These are AutoAttack "standard"'s own budgets for these two attacks (Croce & Hein 2020,
pyautoattack.AutoAttack._set_version('standard') for L-inf / L2), fixed and model-independent:
they are not tuned to any model. Below 4 classes APGD-T is dropped (its loss uses the
fourth-largest logit), as in trainables.attacks.autoattack. What standard AutoAttack adds on top
(FAB-T, Square) is left out: bench/attack_strength.py measures what that costs in points.

Per-sample eps and several eps at once: `ensemble_robust` stacks every eps of a grid into one batch
(x repeated). Between stages, a sample fooled at a smaller eps counts as fooled at every larger
eps of the grid, with the same adversarial example (it lies in the larger ball too), and is not
attacked there again. So, per sample, robust[eps_j] = AND_{eps_i <= eps_j} (robust of a separate
run at eps_i): robust accuracy is monotone in eps by construction.

Randomness: random starts are drawn per sample from per-stage seeds (one private generator, as in
the shared base), indexed by the sample's first row in the batch, so a sample's trajectory does
not depend on which other samples share its batch. That is what makes the stacked run equal to
separate runs up to the reuse above. The library's start (a point on the ball's surface: a
normalized uniform / Gaussian direction, as AutoAttack draws it) is reproduced and passed as
`x_init`.

The targets stacked (`stack_targets=True`; the default None decides, see below):
AutoAttack runs APGD-T's targets sequentially, target t only on the samples targets 1..t-1 left
robust, 100 iterations per target. Where a small model's iteration costs little beside its fixed
per-iteration overhead (kernel launches, the library's Python loop) those 9 x 100 iterations
are the cost. So every row still robust after APGD-CE is replicated once per target class (replica
(row, t) for t = 1..n_targets with target order[row, -(t + 1)] and target t's own seed, i.e. the
very random start the sequential run would draw) and all replicas run as one APGD batch (a few,
chunked by MAX_STACKED_ELEMENTS to bound memory). Then the sequential order is replayed on the
replicas' outcomes: target t acts on the rows still alive after targets < t (and after their
reuse at larger eps). This is the sequential result because APGD is per sample: step size,
momentum, the best-loss point and the checkpoint test (oscillation / no improvement) are all
per-sample tensors, and the loss is a sum of per-sample losses, so each replica's trajectory is
the one it would follow alone (see the library notes below; tests check x_adv bit for bit). A
sample counts robust only if every target fails on it, as in the sequential run, and a fooled
sample takes the example of its first fooling target, as there. The only difference is cost: a
target also runs on samples an earlier target already fooled (at most n_targets times the rows of
the first target, never a weaker attack). One floating-point caveat: BLAS may round a batch of
ONE row differently from a larger batch (a matrix-vector kernel; seen on CPU for L2), so where a
sequential stage attacked exactly one row the two can differ in the last bits of that row's
trajectory; neither is the weaker attack. `stage_sizes` lists ("apgd-t", replicas) once: the
rows the model was actually run on, as for APGD-CE.

When stacking pays: on CPU an APGD iteration costs about the same per row from 64 to 6,300 rows
(FCN 784-256-10, one thread: 22-33 us per row-iteration, of which the model's forward and
backward are ~6 us and the rest the library's elementwise updates), so the per-call overhead is
already negligible at the final protocol's stage sizes, and stacking only adds the replicas of
samples an earlier target fooled: at cpu scale (~6,000 replicas per norm, identical results)
the stacked run took 1.3x the sequential one's CPU time through the library's loop and 1.05x
(L-inf) / 1.15x (L2) through the lean one (bench/final_cost.py --compare). Hence the default:
stacked on CUDA, where per-iteration launch overhead is what a small model's iteration costs (not
measured here: no GPU was available; rerun --compare on one); on CPU stacked only when the
stacked run is small (STACK_REPLICAS_CPU), where the saved runs' fixed cost dominates.

Unreachable targets (`unreachable`, set by the caller from a sound certificate): APGD-T towards
class t maximizes f_t - f_y; where a per-class margin bound proves f_y > f_t over the whole ball
(trainables.metrics.margin_lower_bounds > 0), that run cannot reach its target, and is not run.
This is the certificate's work reused by the attack, as whole certified samples are: on a 10-class
model the 9 targets are every wrong class, and most of them are far from a given sample (CROWN
leaves 0.01-2.0 of the 9 reachable per APGD-CE survivor on the FCNs of bench/attack_strength.py
at the cpu-scale eps). What it can change: a run towards an unreachable t may still end in a third
class c (which is then reachable and has its own run); bench/target_pruning.py measures it: over
six of bench/attack_strength.py's models (one foreign), both norms, the cpu-scale eps grids and
1,000 samples, no sample fooled by the full APGD-T was left robust by the pruned one (see its
docstring).

Each stage is one APGD run, `trainables.attacks._apgd_run.apgd_single_run`: pyautoattack's
`APGDAttack.attack_single_run` bit for bit (tested against the library) with fewer passes over
the data per iteration (~1.3-1.5x faster for a small model on CPU; see that module). What we rely
on in pyautoattack.autopgd_base's attack_single_run (checked against version 0.2.0):
- it is one APGD run on all of x (no subsetting) and returns (x_best, acc, loss_best,
  x_best_adv); acc[i] == 0 means x_best_adv[i] fooled the model. A run per stage rather than
  `perturb`: `perturb` (both classes) subsets the batch to the samples it sees as robust (per
  restart, and in APGDAttack_targeted per target class) without subsetting a per-sample eps
  tensor, which then no longer matches the batch; it also picks the targets itself. One run per
  stage on our own subset avoids both.
- `eps` may be a (N, 1, ..., 1) tensor (ball, step size); targeted runs read `y_target` (N,).
- per-sample independence inside attack_single_run (what stacking the targets needs): the only
  batch-level quantities are the checkpoint schedule (counter3, k: fixed iteration numbers, the
  same for every sample whatever the data), `fl_oscillation.sum() > 0` (a guard: what it guards
  is per sample), n_reduced (unused) and check_zero_gradients (a warning only). The model must
  itself be per sample, which eval mode gives (no batch statistics).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from trainables.attacks._apgd_run import apgd_single_run
from trainables.attacks._base import (
    Attack,
    batch_view,
    check_norm,
    check_positive_int,
    eval_mode,
    lp_norm,
    num_classes,
    predict,
)
from trainables.errors import ConfigError

# AutoAttack standard's budgets (L-inf and L2) for APGD-CE and APGD-T.
STEPS = 100
MAX_TARGETS = 9
MIN_CLASSES_TARGETED = 4
# fooled_by codes: which stage produced a sample's adversarial example.
# "given": an adversarial example the caller already held (e.g. the per-epoch attack's).
FOOLED_BY = ("none", "clean", "apgd-ce", "apgd-t", "given")
NONE, CLEAN, APGD_CE, APGD_T, GIVEN = range(len(FOOLED_BY))
# At most this many input elements (rows x features) per APGD-T call when the targets are stacked:
# APGD keeps about ten input-sized tensors per row besides the model's activations and their
# gradients, so a run over every replica at once can be large (CIFAR-10, 1000 samples x 3 eps x
# 9 targets = 27,000 rows of 3x32x32: ~3.3 GB per input-sized tensor). 2**24 elements is
# 64 MB per such tensor (~5,500 CIFAR-10 rows, less than twice an unchunked APGD-CE stage there;
# ~21,000 Fashion-MNIST rows); beyond a few thousand rows per call the loop's Python overhead is
# negligible anyway.
MAX_STACKED_ELEMENTS = 2**24
# By default (stack_targets=None) the targets are stacked on CPU only up to this many replicas.
# One 100-iteration APGD run costs ~50 ms of fixed overhead plus ~1.7 ms per row on one thread
# (FCN 784-256-10, loaded machine): stacking 9 targets saves ~8 x 50 ms and wastes at most
# ~1.7 ms per replica of an already-fooled sample, so at <= 256 replicas it cannot lose more
# than it saves; beyond, measured at cpu scale (~6,000 replicas), it lost 1.3x.
STACK_REPLICAS_CPU = 256


class EnsembleResult(NamedTuple):
    """Per sample: robust (bool), the adversarial example (x itself where robust or misclassified
    clean) and fooled_by (int64 codes into FOOLED_BY)."""

    robust: Tensor
    x_adv: Tensor
    fooled_by: Tensor


class Ensemble(Attack):
    """APGD-CE then APGD-T on survivors. `targets` None means AutoAttack standard's
    min(9, classes - 1) (0 below 4 classes); 0 runs APGD-CE only. `stack_targets` runs APGD-T's
    targets as one stacked batch (True) or one after another (False); None (default) stacks on
    CUDA, and on CPU up to STACK_REPLICAS_CPU replicas. The results are the same (see the module
    docstring). After a call, `fooled_by`
    holds the codes of that call and `stage_sizes` the number of rows each stage attacked:
    ("apgd-ce", n) then either one ("apgd-t", n_survivors * n_targets) when stacked or one
    ("apgd-t", n) per target."""

    def __init__(self, model: nn.Module, *, norm: str, steps: int = STEPS,
                 targets: int | None = None, seed: int | None = None,
                 stack_targets: bool | None = None) -> None:
        super().__init__(model, norm=norm, seed=seed)
        check_positive_int("steps", steps)
        if targets is not None and (not isinstance(targets, int) or isinstance(targets, bool)
                                    or targets < 0):
            raise ConfigError(f"targets must be None or an integer >= 0, but got {targets!r}")
        if stack_targets is not None and not isinstance(stack_targets, bool):
            raise ConfigError(f"stack_targets must be None, True or False, but got "
                              f"{stack_targets!r}")
        self.steps, self.targets, self.stack_targets = steps, targets, stack_targets
        self.fooled_by: Tensor | None = None
        self.stage_sizes: list[tuple[str, int]] = []
        # Rows proven robust beforehand (a sound certificate at that row's eps): attacking them
        # cannot find anything, so they are left out of every stage. Set per call by the caller.
        self.proven: Tensor | None = None
        # (rows, classes) bool: class j proven unable to overtake the label anywhere in row's
        # ball (a sound per-class margin bound > 0). APGD-T does not run towards such a target;
        # see "Unreachable targets" in the module docstring. Set per call by the caller.
        self.unreachable: Tensor | None = None
        # Adversarial examples the caller already holds, one per row (x itself where none): a row
        # one of them fools is fooled, with that example, and is not attacked. Set per call.
        self.given: Tensor | None = None

    def _n_targets(self, x: Tensor) -> int:
        classes = num_classes(self.model, x)
        if self.targets is not None:
            if self.targets > 0 and classes < MIN_CLASSES_TARGETED:
                raise ConfigError(
                    f"APGD-T needs >= {MIN_CLASSES_TARGETED} classes (its loss uses the "
                    f"fourth-largest logit), but the model has {classes}; use targets=0"
                )
            return min(self.targets, classes - 1)
        return 0 if classes < MIN_CLASSES_TARGETED else min(MAX_TARGETS, classes - 1)

    def _perturb(self, x: Tensor, y: Tensor, eps: Tensor) -> Tensor:
        n_targets = self._n_targets(x)
        # One seed per stage, drawn up front: stage k's randomness does not depend on how many
        # samples earlier stages left.
        seeds = [self.child_seed() for _ in range(1 + n_targets)]
        # Rows with equal (x, y) are one sample: one random stream (its first row) and reuse of a
        # smaller eps's adversarial example at larger eps.
        key = torch.cat([x.flatten(1), y.unsqueeze(1).to(x.dtype)], 1)
        _, sample = torch.unique(key, dim=0, return_inverse=True)
        first = torch.full((int(sample.max()) + 1,), len(x), dtype=torch.long, device=x.device)
        first = first.scatter_reduce(0, sample, torch.arange(len(x), device=x.device), "amin")
        stream = first[sample]
        n_streams = int(stream.max()) + 1

        x_adv = x.clone()
        clean_logits = _logits(self.model, x)
        fooled_by = torch.full((len(x),), NONE, dtype=torch.long, device=x.device)
        fooled_by[clean_logits.argmax(1) != y] = CLEAN
        # alive: still to attack (correct so far, eps > 0; eps = 0 rows are simply x).
        alive = (fooled_by == NONE) & (eps > 0)
        if self.proven is not None:
            alive &= ~self.proven.to(alive.device)
        if self.given is not None:
            given = self.given.to(x.device)
            hit = (alive & (_logits(self.model, given).argmax(1) != y)).nonzero().squeeze(1)
            x_adv[hit], alive[hit], fooled_by[hit] = given[hit], False, GIVEN
            _reuse_upwards(x_adv, alive, fooled_by, eps, sample, hit)
        order = clean_logits.sort(dim=1)[1]  # the library's target choice: -2, -3, ... columns
        self.stage_sizes = []
        for stage, seed in enumerate(seeds):
            todo = alive.nonzero().squeeze(1)
            if stage == 1 and self._stack(x, self._live_pairs(todo, order, n_targets)):
                self._stacked_targets(x, y, eps, x_adv, alive, fooled_by, order, seeds[1:],
                                      stream, n_streams, sample)
                break
            name = "apgd-ce" if stage == 0 else "apgd-t"
            if len(todo) == 0:
                self.stage_sizes.append((name, 0))
                break
            target = None if stage == 0 else order[todo, -(stage + 1)]
            if target is not None and self.unreachable is not None:
                live = ~self.unreachable.to(x.device)[todo, target]
                todo, target = todo[live], target[live]
            self.stage_sizes.append((name, len(todo)))
            if len(todo) == 0:
                continue  # no row can reach this target; a later one may be reachable
            start = self._starts(x, eps, stream, n_streams, seed, todo)
            found, fooled = self._run_stage(x[todo], y[todo], eps[todo], start, target)
            idx = todo[fooled]
            x_adv[idx], alive[idx] = found[fooled], False
            fooled_by[idx] = APGD_CE if stage == 0 else APGD_T
            _reuse_upwards(x_adv, alive, fooled_by, eps, sample, idx)
        self.fooled_by = fooled_by
        return x_adv

    def _live_pairs(self, todo: Tensor, order: Tensor, n_targets: int) -> int:
        """How many (row, target) pairs APGD-T will run: every alive row's n_targets targets
        less those proven unreachable."""
        if self.unreachable is None or len(todo) == 0 or n_targets == 0:
            return len(todo) * n_targets
        targets = order[todo][:, -(n_targets + 1):-1]
        return int((~self.unreachable.to(todo.device)[todo[:, None], targets]).sum())

    def _stack(self, x: Tensor, replicas: int) -> bool:
        """Whether APGD-T's targets run stacked: as set, else on CUDA, or on CPU when the
        stacked run is small enough that the runs it saves cost more than its waste."""
        if self.stack_targets is not None:
            return self.stack_targets
        return x.is_cuda or replicas <= STACK_REPLICAS_CPU

    def _stacked_targets(self, x: Tensor, y: Tensor, eps: Tensor, x_adv: Tensor, alive: Tensor,
                         fooled_by: Tensor, order: Tensor, seeds: list[int], stream: Tensor,
                         n_streams: int, sample: Tensor) -> None:
        """APGD-T's targets as one stacked run on every alive row, then the sequential order
        replayed on the outcomes (updates x_adv, alive, fooled_by in place)."""
        todo = alive.nonzero().squeeze(1)  # (M,)
        n_targets, m = len(seeds), len(todo)
        if m == 0 or n_targets == 0:
            self.stage_sizes.append(("apgd-t", 0))
            return
        # Replica k = t * M + i: row todo[i] against target t (order column -(t + 2)).
        rows = todo.repeat(n_targets)
        t_of = torch.arange(n_targets, device=x.device).repeat_interleave(m)
        target = order[rows, -(t_of + 2)]
        start = torch.cat([self._starts(x, eps, stream, n_streams, seed, todo) for seed in seeds])
        # Replicas towards an unreachable target are not run: they count as not fooling.
        live = (torch.ones_like(rows, dtype=torch.bool) if self.unreachable is None
                else ~self.unreachable.to(x.device)[rows, target])
        self.stage_sizes.append(("apgd-t", int(live.sum())))
        run = live.nonzero().squeeze(1)
        chunk = max(1, MAX_STACKED_ELEMENTS // max(1, x[0].numel()))
        examples = []  # only the fooling replicas' examples are kept, in replica order
        fooled_flat = torch.zeros(len(rows), dtype=torch.bool, device=x.device)
        for lo in range(0, len(run), chunk):
            part = run[lo:lo + chunk]
            found, ok = self._run_stage(x[rows[part]], y[rows[part]], eps[rows[part]],
                                        start[part], target[part])
            examples.append(found[ok])
            fooled_flat[part] = ok
        example = torch.cat(examples) if examples else x[:0]
        fooled_t = fooled_flat.view(n_targets, m)
        position = (fooled_t.flatten().cumsum(0) - 1).view(n_targets, m)  # row in `example`
        for t in range(n_targets):
            hit = fooled_t[t] & alive[todo]
            idx = todo[hit]
            x_adv[idx], alive[idx], fooled_by[idx] = example[position[t][hit]], False, APGD_T
            _reuse_upwards(x_adv, alive, fooled_by, eps, sample, idx)

    def _starts(self, x: Tensor, eps: Tensor, stream: Tensor, n_streams: int, seed: int,
                todo: Tensor) -> Tensor:
        """AutoAttack's random start (on the ball's surface), drawn per stream, for rows todo."""
        gen = torch.Generator(device=x.device).manual_seed(seed)
        shape = (n_streams, *x.shape[1:])
        if self.norm == "linf":
            noise = torch.rand(shape, generator=gen, device=x.device, dtype=x.dtype) * 2 - 1
            size = noise.flatten(1).abs().amax(1)
        else:
            noise = torch.randn(shape, generator=gen, device=x.device, dtype=x.dtype)
            size = noise.flatten(1).norm(dim=1)
        direction = noise / batch_view(size + 1e-12, noise)
        rows = stream[todo]
        return (x[todo] + batch_view(eps[todo], x) * direction[rows]).clamp(0, 1)

    def _run_stage(self, x: Tensor, y: Tensor, eps: Tensor, start: Tensor, target: Tensor | None,
                   ) -> tuple[Tensor, Tensor]:
        """One APGD run on (x, y) from `start` (APGD-CE, or APGD-T towards `target`); returns its
        adversarial iterates and which of them fool."""
        _, _, _, found = apgd_single_run(
            self.model, x, y, start, norm=self.norm, eps=batch_view(eps, x), n_iter=self.steps,
            loss="ce" if target is None else "dlr-targeted", y_target=target)
        found = found.detach()
        # Our own check on the point we return (the library's acc is per iterate).
        return found, predict(self.model, found) != y


def _check_in_ball(example: Tensor, x: Tensor, norm: str, eps: float) -> None:
    """A given example counts only if it is a valid one: same shape, in [0, 1], within eps."""
    if (example.shape != x.shape
            or bool((lp_norm(example - x, norm) > eps * (1 + 1e-5) + 1e-7).any())
            or bool(example.min() < 0) or bool(example.max() > 1)):
        raise ConfigError(f"given adversarial examples at eps={eps} must have x's shape and lie "
                          f"in [0, 1] within the {norm} eps ball around x")


def _logits(model: nn.Module, x: Tensor, batch_size: int = 1024) -> Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def _reuse_upwards(x_adv: Tensor, alive: Tensor, fooled_by: Tensor, eps: Tensor,
                   sample: Tensor, fooled: Tensor) -> None:
    """Rows of the same sample with eps >= a newly fooled row's eps take that row's example, in
    place: valid because x_adv[r] lies within eps[r] <= eps[r'] of the shared x. A row takes the
    example of the smallest fooled ball of its sample (the first such row on ties)."""
    if len(fooled) == 0:
        return
    n_samples = int(sample.max()) + 1
    inf = torch.full((n_samples,), float("inf"), dtype=eps.dtype, device=eps.device)
    smallest = inf.scatter_reduce(0, sample[fooled], eps[fooled], "amin")
    at_smallest = fooled[eps[fooled] == smallest[sample[fooled]]]
    source = torch.full((n_samples,), len(eps), dtype=torch.long, device=eps.device)
    source = source.scatter_reduce(0, sample[at_smallest], at_smallest, "amin")
    later = (alive & (eps >= smallest[sample])).nonzero().squeeze(1)
    src = source[sample[later]]
    x_adv[later], fooled_by[later], alive[later] = x_adv[src], fooled_by[src], False


def ensemble(model: nn.Module, x: Tensor, y: Tensor, *, norm: str, eps: float | Tensor,
             steps: int = STEPS, targets: int | None = None, seed: int | None = 0,
             stack_targets: bool | None = None) -> Tensor:
    """Adversarial examples of the APGD-CE + APGD-T ensemble; eps a number or per-sample (N,)."""
    return Ensemble(model, norm=norm, steps=steps, targets=targets, seed=seed,
                    stack_targets=stack_targets)(x, y, eps)


def ensemble_robust(model: nn.Module, x: Tensor, y: Tensor, norm: str,
                    eps_grid: tuple[float, ...] | list[float], seed: int | None = 0, *,
                    steps: int = STEPS, targets: int | None = None,
                    proven: dict[float, Tensor] | None = None,
                    unreachable: dict[float, Tensor] | None = None,
                    given: dict[float, Tensor] | None = None,
                    stack_targets: bool | None = None,
                    ) -> dict[float, EnsembleResult]:
    """Every eps of a norm's grid in one stacked pass: eps -> EnsembleResult (per sample).

    robust is evaluated on the returned (projected) x_adv, so it is exactly "correct on x_adv";
    it is non-increasing in eps per sample (see the module docstring).

    proven: eps -> bool (N,) of samples a sound certificate proves robust at that eps (e.g.
    trainables.metrics.certified_mask). They are not attacked, which changes nothing but the
    cost: no attack can fool a certified sample, and every other sample's result is the same
    because random starts are drawn per sample.

    unreachable: eps -> bool (N, classes), class j proven unable to overtake y anywhere in the
    sample's ball (e.g. trainables.metrics.margin_lower_bounds(...) > 0): APGD-T skips those
    targets (see "Unreachable targets" in the module docstring).

    given: eps -> (N, ...) adversarial examples the caller already holds within the eps ball (e.g.
    the per-epoch attack's at the same eps): a sample one of them fools is fooled, with that
    example (fooled_by "given"), and not attacked. So the result is robust only against the
    union of the given examples and the ensemble, and the ensemble spends its iterations on the
    samples the cheaper attack could not fool. Every other sample's result is the same as
    without it (per-sample random starts)."""
    check_norm(norm)
    grid = [float(e) for e in eps_grid]
    if not grid or len(set(grid)) != len(grid):
        raise ConfigError(f"eps_grid must be a non-empty list of distinct eps, but got {eps_grid}")
    n = len(x)
    stacked_eps = torch.tensor(grid, dtype=x.dtype, device=x.device).repeat_interleave(n)
    attack = Ensemble(model, norm=norm, steps=steps, targets=targets, seed=seed,
                      stack_targets=stack_targets)
    if proven is not None:
        attack.proven = torch.cat([proven.get(eps, torch.zeros(n, dtype=torch.bool)).to(x.device)
                                   for eps in grid])
    if unreachable is not None:
        classes = num_classes(model, x)
        attack.unreachable = torch.cat([
            unreachable.get(eps, torch.zeros(n, classes, dtype=torch.bool)).to(x.device)
            for eps in grid])
    if given is not None:
        for eps, example in given.items():
            _check_in_ball(example.to(x.device), x, norm, eps)
        attack.given = torch.cat([given.get(eps, x).to(x.device) for eps in grid])
    x_adv = attack(x.repeat(len(grid), *([1] * (x.ndim - 1))), y.repeat(len(grid)), stacked_eps)
    with eval_mode(model):
        correct = predict(model, x_adv) == y.repeat(len(grid)).to(x_adv.device)
    fooled_by = attack.fooled_by if attack.fooled_by is not None else torch.where(
        correct, NONE, CLEAN)
    # A projected point that is classified correctly again is robust: say so honestly.
    fooled_by = torch.where(correct, NONE, fooled_by)
    return {eps: EnsembleResult(correct[i * n:(i + 1) * n], x_adv[i * n:(i + 1) * n],
                                fooled_by[i * n:(i + 1) * n]) for i, eps in enumerate(grid)}
