"""r_emp: the smallest budget at which the attack finds an adversarial example, per sample.

Bisection over eps, vectorised over the batch: every sample keeps its own bracket [lo, hi] with
"not found at lo" (or lo = 0) and "found at hi", and each round attacks all undecided samples at
once with per-sample budgets (lo + hi) / 2. The result is hi, a budget at which an adversarial
example WAS found, so r_emp >= the true minimal distance up to the attack's strength, and
r_emp - (the attack's threshold) <= eps_max / 2**bisection_steps.

attack="pgd" bisects PGD started at x (no random start): a deterministic attack whose success is
(nearly) monotone in eps, which bisection assumes, and whose r_emp can be re-checked exactly.
With random starts every round would draw new luck and r_emp would drift low and not reproduce.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from trainables.attacks._base import (
    check_batch,
    check_norm,
    check_positive_int,
    eval_mode,
    make_generator,
    predict,
)
from trainables.attacks.apgd import apgd
from trainables.attacks.pgd import pgd
from trainables.errors import ConfigError

BISECTION_ATTACKS = ("pgd", "apgd-ce", "apgd-dlr")


def minimal_eps(model: nn.Module, x: Tensor, y: Tensor, *, norm: str, eps_max: float,
                steps: int = 20, bisection_steps: int = 10, attack: str = "pgd",
                seed: int = 0) -> Tensor:
    """Per-sample r_emp (N,): 0 where x is already misclassified, inf where the attack finds no
    adversarial example at eps_max."""
    check_norm(norm)
    check_positive_int("steps", steps)
    check_positive_int("bisection_steps", bisection_steps)
    if not (0 < eps_max < math.inf):
        raise ConfigError(f"eps_max must be finite and > 0 (pixel units), but got {eps_max}")
    if attack not in BISECTION_ATTACKS:
        raise ConfigError(f"minimal_eps attack must be one of {list(BISECTION_ATTACKS)}, but got "
                          f"{attack!r}")
    x, y = check_batch(x, y)
    seeds = make_generator(seed, torch.device("cpu"))

    def fooled(idx: Tensor, eps: Tensor) -> Tensor:
        call_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=seeds))
        if attack == "pgd":
            x_adv = pgd(model, x[idx], y[idx], norm=norm, eps=eps, steps=steps,
                        random_start=False)
        else:
            x_adv = apgd(model, x[idx], y[idx], norm=norm, eps=eps, loss=attack[len("apgd-"):],
                         steps=steps, seed=call_seed)
        with eval_mode(model):
            return predict(model, x_adv) != y[idx]

    radius = torch.zeros(len(x), dtype=x.dtype, device=x.device)
    with eval_mode(model):
        correct = predict(model, x) == y
    todo = correct.nonzero().squeeze(1)
    if len(todo) == 0:
        return radius
    hi = torch.full((len(todo),), float(eps_max), dtype=x.dtype, device=x.device)
    found = fooled(todo, hi)
    radius[todo[~found]] = math.inf
    todo, hi = todo[found], hi[found]
    lo = torch.zeros_like(hi)
    for _ in range(bisection_steps):
        if len(todo) == 0:
            break
        mid = (lo + hi) / 2
        at_mid = fooled(todo, mid)
        hi = torch.where(at_mid, mid, hi)
        lo = torch.where(at_mid, lo, mid)
    radius[todo] = hi
    return radius
