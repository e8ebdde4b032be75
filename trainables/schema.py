"""Names shared by the trial, the result store and the analysis: one rename is one edit here.

Pure Python on purpose (no torch, no pyarrow), so the analysis layer can import it cheaply.

Result-store layout (a run directory, see DESIGN.md "Result store contract"):

    RUN_DIR/run.json                 the launch spec (space, scale, flags) as JSON
    RUN_DIR/store/_schema.json       {"schema_version": SCHEMA_VERSION, "tables": {name: {col: type}},
                                      "hyperparameters": [swept trials-table columns]}
    RUN_DIR/store/<table>/*.parquet  one Parquet dataset per table in TABLES (flat directory)
    RUN_DIR/report/                  written by `python -m analysis.report RUN_DIR`
    RUN_DIR/tune/                    Ray Tune's experiment directory (checkpoints, state)

Column types are written as strings: "str", "int64", "float64", "bool". Hyperparameter columns in
the trials table are added per space (typed from the space definition) on top of TRIALS_COLUMNS;
_schema.json's "hyperparameters" lists them, so readers need not guess which extra columns they are.
"""

from __future__ import annotations

import math

SCHEMA_VERSION = 1

# Kept fractions at which compressibility is reported (THEORY.md), and the one used for headlines.
KAPPAS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25)
HEADLINE_KAPPA = 0.1

NORMS: tuple[str, ...] = ("linf", "l2")
DUAL_NORM = {"linf": 1.0, "l2": 2.0}

TRIAL_STATUSES: tuple[str, ...] = ("completed", "errored", "diverged", "stopped")


def kappa_tag(kappa: float) -> str:
    """0.01 -> 'k01', 0.25 -> 'k25': a column-name suffix for a kept fraction."""
    return f"k{round(kappa * 100):02d}"


def kept_count(kappa: float, d: int) -> int:
    """k = max(1, ceil(kappa * d)) as THEORY.md defines it."""
    return max(1, math.ceil(kappa * d - 1e-9))


def comp_columns(prefix: str) -> list[str]:
    return [f"{prefix}_{kappa_tag(k)}" for k in KAPPAS]


# ---- per-epoch result dict yielded by trainables.Trial.epochs() --------------------------------
# Scalars (also what Ray Tune sees, schedules and searches on):
RESULT_SCALARS: dict[str, str] = {
    "iteration": "int64",  # epoch, 1-based
    "time": "float64",  # seconds of training + evaluation since the trial started (excl. restore)
    "epoch_seconds": "float64",
    "train_loss": "float64",
    "train_acc": "float64",
    "clean_acc": "float64",  # on the evaluation split
    "clean_loss": "float64",
    "robust_acc": "float64",  # headline: first norm in the config, largest eps, configured attack
    "neuron_comp": "float64",  # network mean (encoder layers) of neuron_comp_l1 at HEADLINE_KAPPA
    "neuron_comp_l2": "float64",  # same for the L2 flavour
    "spectral_comp": "float64",  # network mean of spectral_comp at HEADLINE_KAPPA
    "lip_linf": "float64",  # Lhat_inf (includes the input normalization)
    "lip_l2": "float64",  # Lhat_2
    "diverged": "bool",  # non-finite training loss this epoch: the trial stops with status diverged
    # Scale-free network means (encoder layers) of SCALE_FREE_STATS (THEORY.md "Scale, homogeneity
    # and what is scale-free"): continuous, they never saturate the way comp at a fixed kappa does.
    "stable_rank": "float64",
    "spectral_l1l2": "float64",
    "neuron_l1l2_l1": "float64",
    "neuron_l1l2_l2": "float64",
    "spec_fro": "float64",
    "inf_fro": "float64",
    "spectral_spread": "float64",  # sigma_1 / sigma_k at HEADLINE_KAPPA
    "val_loss": "float64",  # mean CE on the validation split (NaN without one, config val_frac)
    "selected_epoch": "int64",  # the epoch whose weights this result evaluated (select_best)
}
# Plus two list-valued keys: "robustness" (list of ROBUSTNESS rows without trial_id/iteration) and
# "layers" (list of LAYERS rows without trial_id/iteration).

# ---- store tables ------------------------------------------------------------------------------
TRIALS_COLUMNS: dict[str, str] = {
    "run_id": "str",
    "trial_id": "str",
    "space": "str",
    "status": "str",  # one of TRIAL_STATUSES
    "seed": "int64",
    "iterations": "int64",  # epochs completed
    "clean_acc": "float64",  # final
    "robust_acc": "float64",  # final headline
    "neuron_comp": "float64",
    "neuron_comp_l2": "float64",
    "spectral_comp": "float64",
    "wall_seconds": "float64",
    "error": "str",  # one line, empty when none
}

HISTORY_COLUMNS: dict[str, str] = {
    "trial_id": "str",
    **{k: v for k, v in RESULT_SCALARS.items()},
}

ROBUSTNESS_COLUMNS: dict[str, str] = {
    "trial_id": "str",
    "iteration": "int64",
    "norm": "str",  # "linf" / "l2"
    "eps": "float64",  # pixel units
    "attack": "str",  # "pgd", "apgd-ce", "apgd-dlr", "autoattack", "uap"
    "robust_acc": "float64",  # accuracy under the attack (upper bound on true robust accuracy)
    "adv_loss": "float64",  # mean CE under the attack
    "clean_loss": "float64",  # mean clean CE on the same samples
    "clean_acc": "float64",  # clean accuracy on the same samples
    "certified_acc": "float64",  # fraction with r_cert > eps (lower bound)
    "measured_gap": "float64",  # adv_loss - clean_loss
    "bound_gap": "float64",  # G_p * ||C||_{p->p} * Lhat_p * eps (a certificate)
    "align_est_gap": "float64",  # G_p * mean_x ||J(x)||_{p->p} * eps (estimate, not a bound)
    "first_order_gap": "float64",  # eps * mean_x ||grad_x CE||_q (estimate, not a bound)
    "median_r_emp": "float64",  # median minimal adversarial eps found by bisection (this norm)
    "median_r_cert": "float64",  # median certified radius (this norm)
    "align_top": "float64",  # mean |<u_top, delta>|/||delta||_2 for the first layer's top direction
    "align_rest": "float64",  # same, mean over the other directions (the baseline)
    "fooling_rate": "float64",  # UAP rows only (NaN otherwise)
}

LAYERS_COLUMNS: dict[str, str] = {
    "trial_id": "str",
    "iteration": "int64",
    "layer": "str",  # module name, e.g. "encoder.0"; the head is not reported
    "layer_index": "int64",
    "fro_norm": "float64",
    "spec_norm": "float64",  # sigma_1 of the (reshaped) weight matrix
    "op_norm_l2": "float64",  # ||layer||_{2->2} upper bound used by the bound (conv: see THEORY)
    "inf_norm": "float64",  # max row L1 norm (= ||layer||_{inf->inf})
    **{c: "float64" for c in comp_columns("neuron_comp_l1")},
    **{c: "float64" for c in comp_columns("neuron_comp_l2")},
    **{c: "float64" for c in comp_columns("spectral_comp")},
    "entropy": "float64",  # H(p), p_i = sigma_i / sum sigma
    "effective_rank": "float64",  # exp(H)
    "stable_rank": "float64",
    "zero_row_frac": "float64",
    # Scale-free statistics (THEORY.md "Scale, homogeneity and what is scale-free"):
    "spectral_l1l2": "float64",  # ||sigma||_1 / ||sigma||_2, in [1, sqrt(rank)]; 0 for a zero layer
    "neuron_l1l2_l1": "float64",  # ||r1||_1 / ||r1||_2, r1 = row L1 norms (the L-inf flavour)
    "neuron_l1l2_l2": "float64",  # ||r2||_1 / ||r2||_2, r2 = row L2 norms
    "spec_fro": "float64",  # sigma_1 / ||W||_F >= spectral_comp_k / sqrt(k)
    "inf_fro": "float64",  # ||W||_inf / ||W||_F >= neuron_comp_l1_k / sqrt(k)
    # sigma_1 / sigma_k, the spread of the kept spectrum (inf when sigma_k is numerically zero)
    **{c: "float64" for c in comp_columns("spectral_spread")},
}

# Trial-level scale-free statistics: network key -> the layers column it is the mean of.
SCALE_FREE_STATS: dict[str, str] = {
    "stable_rank": "stable_rank",
    "spectral_l1l2": "spectral_l1l2",
    "neuron_l1l2_l1": "neuron_l1l2_l1",
    "neuron_l1l2_l2": "neuron_l1l2_l2",
    "spec_fro": "spec_fro",
    "inf_fro": "inf_fro",
    "spectral_spread": f"spectral_spread_{kappa_tag(HEADLINE_KAPPA)}",
}
# The headline scale-free measure of a space, by the compressibility it targets (its objective):
# each one is lower for a more compressible network and separates every knob level (comp at
# HEADLINE_KAPPA is 1.000 for every rank <= 26 of a 256-wide layer).
HEADLINE_STAT: dict[str, str] = {
    "spectral_comp": "spectral_l1l2",
    "neuron_comp": "neuron_l1l2_l1",
    "neuron_comp_l2": "neuron_l1l2_l2",
}

TABLES: dict[str, dict[str, str]] = {
    "trials": TRIALS_COLUMNS,
    "history": HISTORY_COLUMNS,
    "robustness": ROBUSTNESS_COLUMNS,
    "layers": LAYERS_COLUMNS,
}
