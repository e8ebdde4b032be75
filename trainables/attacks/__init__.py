"""Attacks in pixel space [0,1]: PGD, APGD, AutoAttack, minimal budgets, UAPs, adversarial training.

Every attack shares one base (`_base.Attack`) that handles model mode, the eps ball, the [0,1] box
and seeding; each module holds only its attack's math.
"""

from trainables.attacks._registry import run_attack
from trainables.attacks.apgd import apgd
from trainables.attacks.autoattack import autoattack
from trainables.attacks.ensemble import FOOLED_BY, EnsembleResult, ensemble, ensemble_robust
from trainables.attacks.minimal import minimal_eps
from trainables.attacks.pgd import pgd
from trainables.attacks.training import adversarial_training_batch
from trainables.attacks.uap import fooling_rate, universal_perturbation

__all__ = [
    "FOOLED_BY",
    "EnsembleResult",
    "adversarial_training_batch",
    "apgd",
    "autoattack",
    "ensemble",
    "ensemble_robust",
    "fooling_rate",
    "minimal_eps",
    "pgd",
    "run_attack",
    "universal_perturbation",
]
