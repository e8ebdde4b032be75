"""Fixed TrialConfig values shared by every family at each scale (data, model, budgets).

smoke: seconds per trial on sklearn digits (tests). cpu: ten to thirty seconds per trial on a
Fashion-MNIST subsample (a laptop sweep in minutes). paper: CIFAR-10 / ResNet-18 sizes for GPUs.
"""

from __future__ import annotations

from typing import Any

SMOKE: dict[str, Any] = {
    "dataset": "digits",
    "model": "fcn",
    "width": 32,
    "depth": 1,
    "epochs": 2,
    "batch_size": 64,
    "lr": 0.05,
    "n_eval": 32,
    "r_emp_samples": 8,
    "attack_steps": 5,
    "eps_linf": (0.02, 0.05),
    "eps_l2": (0.25, 0.5),
    # The final protocol (ensemble + CROWN) runs on the n_eval smoke samples: kept, but small.
}

# lr 0.01: rank-factorized FCNs on Fashion-MNIST diverge at 0.05 (measured; dense ones do not).
CPU: dict[str, Any] = {
    "dataset": "fashion_mnist",
    "n_train": 20000,
    "n_test": 2000,
    "model": "fcn",
    "width": 256,
    "depth": 1,
    "epochs": 10,
    "batch_size": 128,
    "lr": 0.01,
    "n_eval": 256,
    "n_eval_final": 1000,  # the final protocol's samples: a 95% interval of about +-3 points
    "r_emp_samples": 32,
    "attack_steps": 10,
    "eps_linf": (0.01, 0.02, 0.04),
    "eps_l2": (0.1, 0.25, 0.5),
}

PAPER: dict[str, Any] = {
    "dataset": "cifar10",
    "model": "resnet18",
    "width": 64,
    "epochs": 60,
    "batch_size": 128,
    "lr": 0.1,
    "n_eval": 1000,
    "r_emp_samples": 256,
    "attack_steps": 20,
    "eps_linf": (2 / 255, 4 / 255, 8 / 255),
    "eps_l2": (0.125, 0.25, 0.5),
}

SEEDS_PAPER = (0, 1, 2)
