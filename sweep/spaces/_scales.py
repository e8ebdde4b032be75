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

# The paper's released training protocol (issue 12): AdamW with decoupled weight decay, up to 30
# epochs with a 10% validation split, the best validation-loss epoch evaluated, patience 3, and a
# bias-free head. Apply it to any space with --set (e.g. --set optimizer=adamw --set lr=0.001 ...).
# Not the cpu default (why: below). Measured on the cpu scale (one seed, Fashion-MNIST, L-inf PGD-10,
# 2 shared cores), against SGD lr 0.01 / 10 epochs:
#   none:   clean 0.851 -> 0.857, RA at 0.04 0.320 -> 0.398, 11 epochs (best 8), 125 s -> 63 s
#   rank 8: clean 0.835 -> 0.841, RA at 0.04 0.137 -> 0.148, 16 epochs (best 13), 74 s -> 98 s
#   group lasso 0.1 (proximal): neuron_comp 0.068 (SGD: 0.293 with 34% zero rows) - the proximal
#     threshold is lr * strength, 10x smaller at lr 1e-3, so the knob stops compressing
#   nuclear 0.1: clean 0.761 (SGD 0.749), spectral_comp 0.976, Frobenius 1.21
# Re-measured 2026-12-02 for the cpu default (one seed, same data, final protocol off, PGD-10 at
# 0.04 on 256 samples): with validation-loss selection and patience 3 every penalty knob stopped at
# epoch 4-6, before it had shaped the weights, at clean 0.79-0.82 against 0.859 for the dense
# model (row_sparsity 1 / 10 / 100: neuron_comp 0.19 / 0.42 / 0.18, not monotone; spectral_ratio
# 1 / 3: 0.818 / 0.806 clean), and proximal group lasso at 10x the SGD strengths (0.3 / 0.6 / 1.0,
# the same lr * strength threshold) moved neuron_comp only 0.067 -> 0.08-0.10. Rank 8 was fine
# (clean 0.841, 16 epochs). Validation-loss selection works against a penalty that trades CE for
# structure, so the cpu scale keeps SGD / 10 fixed epochs; PAPER_PROTOCOL stays an option for the
# structural knobs (rank, post-hoc), where it changes nothing about what is compressed.
PAPER_PROTOCOL: dict[str, Any] = {
    "optimizer": "adamw",
    "lr": 1e-3,
    "weight_decay": 1e-2,
    "epochs": 30,
    "val_frac": 0.1,
    "select_best": True,
    "patience": 3,
    "head_bias": False,
}
