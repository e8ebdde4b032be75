"""run_attack: one entry point that dispatches by name (names in trainables.config.ATTACKS)."""

from __future__ import annotations

from torch import Tensor, nn

from trainables.attacks.apgd import apgd
from trainables.attacks.autoattack import autoattack
from trainables.attacks.ensemble import ensemble
from trainables.attacks.pgd import pgd
from trainables.config import ATTACKS
from trainables.errors import ConfigError


def run_attack(model: nn.Module, x: Tensor, y: Tensor, *, name: str, norm: str, eps: float,
               steps: int = 20, restarts: int = 1, seed: int = 0) -> Tensor:
    """Adversarial examples by the named attack: x_adv in [0,1], within eps of x in `norm`.

    "pgd": PGD-`steps` with `restarts` random starts; "apgd-ce" / "apgd-dlr": APGD with `steps`
    iterations and `restarts` restarts; "autoattack": the standard AutoAttack ensemble with its
    own fixed budgets (steps and restarts are ignored). The model's mode is left as it was.
    """
    if name == "pgd":
        return pgd(model, x, y, norm=norm, eps=eps, steps=steps, restarts=restarts, seed=seed)
    if name in ("apgd-ce", "apgd-dlr"):
        return apgd(model, x, y, norm=norm, eps=eps, loss=name[len("apgd-"):], steps=steps,
                    restarts=restarts, seed=seed)
    if name == "autoattack":
        return autoattack(model, x, y, norm=norm, eps=eps, version="standard", seed=seed)
    if name == "ensemble":  # APGD-CE + APGD-T at AutoAttack's fixed budgets (steps ignored)
        return ensemble(model, x, y, norm=norm, eps=eps, seed=seed)
    raise ConfigError(f"attack name must be one of {list(ATTACKS)}, but got {name!r}")
