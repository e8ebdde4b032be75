"""Axis titles in words, with units, for the columns the figures plot (static and interactive)."""

from __future__ import annotations

# THEORY.md: comp_k = 1 - err_k at kept fraction kappa; the trials table reports kappa = 0.1.
# The l1/l2 ratios (schema.HEADLINE_STAT) are effective counts: ||v||_1/||v||_2 is in
# [1, sqrt(nonzeros)], so a network with fewer significant singular values (rows) scores lower.
LABELS: dict[str, str] = {
    "spectral_comp": "spectral compressibility comp_0.1 (0-1, higher = more compressible)",
    "neuron_comp": "neuron compressibility, row L1 norms, comp_0.1 (0-1, higher = more "
                   "compressible)",
    "neuron_comp_l2": "neuron compressibility, row L2 norms, comp_0.1 (0-1, higher = more "
                      "compressible)",
    "spectral_l1l2": "effective spectral count ||sigma||_1/||sigma||_2 (lower = more compressible)",
    "neuron_l1l2_l1": "effective neuron count ||r1||_1/||r1||_2, row L1 norms (lower = more "
                      "compressible)",
    "neuron_l1l2_l2": "effective neuron count ||r2||_1/||r2||_2, row L2 norms (lower = more "
                      "compressible)",
    "robust_acc": "robust accuracy under attack (fraction of samples)",
    "clean_acc": "clean accuracy (fraction of samples)",
    "certified_acc": "certified accuracy (fraction of samples)",
    "train_loss": "training loss (cross-entropy, nats)",
    "iteration": "epoch",
    "measured_gap": "measured CE gap, adversarial - clean (nats)",
    "bound_gap": "loss-gap bound (nats)",
    "fooling_rate": "UAP fooling rate (fraction of samples)",
    "weight_scale": "weight scale factor (x)",
}


def label(column: str) -> str:
    """The words for a column; the column name with spaces when there are none."""
    return LABELS.get(column, column.replace("_", " "))
