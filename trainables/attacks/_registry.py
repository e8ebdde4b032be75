"""Attack name -> runner. Adding an attack: one module, one line in ATTACK_RUNNERS, its name in
trainables/variants.py.

Every runner takes (model, x, y, *, norm, eps, steps, restarts, seed) and returns x_adv in [0,1]
within eps of x in `norm`; tests/trainables/test_attack_contract.py checks every entry for that.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from trainables.attacks.apgd import apgd
from trainables.attacks.autoattack import autoattack
from trainables.attacks.ensemble import ensemble
from trainables.attacks.pgd import pgd
from trainables.errors import ConfigError
from trainables.variants import check_registry

AttackRunner = Callable[..., Tensor]


def _apgd(loss: str) -> AttackRunner:
    def run(model, x, y, *, norm, eps, steps, restarts, seed):
        return apgd(model, x, y, norm=norm, eps=eps, loss=loss, steps=steps, restarts=restarts,
                    seed=seed)

    return run


def _autoattack(model, x, y, *, norm, eps, steps, restarts, seed):
    del steps, restarts  # the standard ensemble has its own fixed budgets
    return autoattack(model, x, y, norm=norm, eps=eps, version="standard", seed=seed)


def _ensemble(model, x, y, *, norm, eps, steps, restarts, seed):
    del steps, restarts  # APGD-CE + APGD-T at AutoAttack's fixed budgets
    return ensemble(model, x, y, norm=norm, eps=eps, seed=seed)


ATTACK_RUNNERS: dict[str, AttackRunner] = {
    "pgd": pgd,
    "apgd-ce": _apgd("ce"),
    "apgd-dlr": _apgd("dlr"),
    "autoattack": _autoattack,
    "ensemble": _ensemble,
}

check_registry("ATTACKS", ATTACK_RUNNERS)  # the torch-free names the driver validates by

def run_attack(model: nn.Module, x: Tensor, y: Tensor, *, name: str, norm: str, eps: float,
               steps: int = 20, restarts: int = 1, seed: int = 0) -> Tensor:
    """Adversarial examples by the named attack: x_adv in [0,1], within eps of x in `norm`.

    "pgd": PGD-`steps` with `restarts` random starts; "apgd-ce" / "apgd-dlr": APGD with `steps`
    iterations and `restarts` restarts; "autoattack": the standard AutoAttack ensemble with its
    own fixed budgets (steps and restarts are ignored); "ensemble": APGD-CE then APGD-T on the
    survivors at AutoAttack's budgets (steps and restarts ignored). The model's mode is left as it was.
    """
    if name not in ATTACK_RUNNERS:
        raise ConfigError(f"attack name must be one of {list(ATTACK_RUNNERS)}, but got {name!r}")
    return ATTACK_RUNNERS[name](model, x, y, norm=norm, eps=eps, steps=steps, restarts=restarts,
                                seed=seed)
