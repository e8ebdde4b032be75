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

Schema growth (the store contract's rule; DESIGN.md "Result store contract"):
- Columns are only ever added: never renamed, removed or retyped. Each addition bumps SCHEMA_VERSION
  and records the column in ADDED_IN with the version that introduced it.
- A reader accepts any store with schema_version <= SCHEMA_VERSION. A contract column the store's
  _schema.json lacks reads as null when ADDED_IN says it is newer than the store (the writer never
  knew it); lacking an older contract column is a malformed store. A store newer than the reader is
  rejected (the reader cannot know what its columns mean).
- So adding one trial-level metric is: its result key in RESULT_SCALARS and in TRIAL_METRICS (this
  file) plus the code that computes it; the trial, the store callback, the Prometheus export, the
  progress line and the report derive their lists from here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# 1: first layout. 2: trials.neuron_comp_l2. 3: scale-free statistics (history, layers), the
# validation columns. 4: robustness sample counts, 95%
# intervals, linear-relaxation and exact certificates, radius ratios (the final evaluation
# protocol). 5: the time budget (history.t_*, TIME_BUDGET; see ADDED_IN). 6: the first layer's
# alignment with the data (history.data_*, DATA_STATS).
SCHEMA_VERSION = 6

# Kept fractions at which compressibility is reported (THEORY.md), and the one used for headlines.
KAPPAS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25)
HEADLINE_KAPPA = 0.1

NORMS: tuple[str, ...] = ("linf", "l2")
DUAL_NORM = {"linf": 1.0, "l2": 2.0}


def check_norm(value: str, name: str = "norm") -> None:
    """Raise ConfigError unless `value` is one of NORMS; `name` is the argument's name."""
    if value not in NORMS:
        from trainables.errors import ConfigError  # pure Python too; imported where it is used

        raise ConfigError(
            f"{name} must be one of {list(NORMS)}, but got {value!r}; pick one of those norms"
        )

# ---- run directory layout (RUN_DIR/...) ---------------------------------------------------------
RUN_JSON = "run.json"
STORE_DIR = "store"
TUNE_DIR = "tune"
REPORT_DIR = "report"
SCHEMA_FILE = "_schema.json"  # inside STORE_DIR
TRIALS_FILE = "trials.parquet"  # inside STORE_DIR/trials (rewritten whole at each flush)

# ---- trial status ------------------------------------------------------------------------------
COMPLETED, ERRORED, DIVERGED, STOPPED = "completed", "errored", "diverged", "stopped"
TRIAL_STATUSES: tuple[str, ...] = (COMPLETED, ERRORED, DIVERGED, STOPPED)


def trial_status(
    last_result: Mapping[str, Any] | None, epochs: int | None, *, errored: bool = False
) -> str:
    """The final status of a trial (one of TRIAL_STATUSES): the one rule the store and the metrics
    export share. `epochs` is the trial's configured epoch budget (None: unknown, never "stopped").

    errored: the trial raised for good. Otherwise "diverged" when its last result says so,
    "stopped" when it ended before `epochs` (a scheduler or stopper ended it), else "completed".
    """
    if errored:
        return ERRORED
    last_result = last_result or {}
    if last_result.get("diverged"):
        return DIVERGED
    # A trial that ended before reporting any epoch did not complete either.
    done = last_result.get("iteration", last_result.get("training_iteration")) or 0
    # A trial that stopped itself (patience: early_stopped) is complete with fewer epochs.
    if (isinstance(epochs, int) and isinstance(done, int) and done < epochs
            and not last_result.get("early_stopped")):
        return STOPPED
    return COMPLETED


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
    # headline: first norm in the config, largest eps; the per-epoch attack, except at the final
    # epoch, where it is the final protocol's (every attack run on a sample must fail on it)
    "robust_acc": "float64",
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
    # The first layer's sensitive directions against the data (metrics.data_alignment; NaN for a
    # conv first layer): candidates for the pooled predictor of robust accuracy (issue 12).
    "data_align": "float64",  # share of the data's variance along the top right singular vector
    "data_gain_l2": "float64",  # sigma_1 / the layer's RMS gain on the (centred) data
    "data_gain_linf": "float64",  # ||W||_inf / (sqrt(d) * that gain)
    "val_loss": "float64",  # mean CE on the validation split (NaN without one, config val_frac)
    "selected_epoch": "int64",  # the epoch whose weights this result evaluated (select_best)
    # The time budget (trainables/timing.py): wall seconds per phase, cumulative over the trial
    # (resumes included), disjoint (nested work counts in the innermost phase only).
    "t_data": "float64",  # loading and preparing the dataset
    "t_build": "float64",  # building the model, compression and optimizer
    "t_train": "float64",  # training epochs (incl. pretraining and the validation loss)
    "t_eval": "float64",  # per-epoch evaluation (attacks, certificates), less t_metrics
    "t_final": "float64",  # the last epoch's evaluation, less t_metrics
    "t_metrics": "float64",  # layer metrics, network summary, Lipschitz estimates
    "t_checkpoint": "float64",  # checkpoints written, reports handed over (to the previous epoch)
}
# The time-budget keys of RESULT_SCALARS, in order.
TIME_BUDGET: tuple[str, ...] = (
    "t_data", "t_build", "t_train", "t_eval", "t_final", "t_metrics", "t_checkpoint",
)
# Headline compressibility scalars -> the LAYERS_COLUMNS prefix each is the network mean of (encoder
# layers, at HEADLINE_KAPPA).
HEADLINE_PREFIXES: dict[str, str] = {
    "neuron_comp": "neuron_comp_l1",
    "neuron_comp_l2": "neuron_comp_l2",
    "spectral_comp": "spectral_comp",
}
HEADLINES: tuple[str, ...] = tuple(HEADLINE_PREFIXES)
SCALE_FREE_KEYS: tuple[str, ...] = (
    "stable_rank", "spectral_l1l2", "neuron_l1l2_l1", "neuron_l1l2_l2", "spec_fro", "inf_fro",
    "spectral_spread",
)  # the network means of SCALE_FREE_STATS (below), in RESULT_SCALARS
DATA_STATS: tuple[str, ...] = ("data_align", "data_gain_l2", "data_gain_linf")
# Per-epoch scalars the trial reports as NaN when it did not evaluate (diverged, or nothing yet).
EVALUATED_SCALARS: tuple[str, ...] = (
    "robust_acc", *HEADLINES, "lip_linf", "lip_l2", *SCALE_FREE_KEYS, *DATA_STATS
)
# Final values copied into the trials table, exported per trial to Prometheus, printed per trial.
TRIAL_METRICS: tuple[str, ...] = ("clean_acc", "robust_acc", *HEADLINES)
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
    **{m: RESULT_SCALARS[m] for m in TRIAL_METRICS},  # final values (robust_acc: the headline)
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
    "attack": "str",  # "pgd", "apgd-ce", "apgd-dlr", "autoattack", "ensemble", "uap"
    "robust_acc": "float64",  # accuracy under the attack (upper bound on true robust accuracy)
    "adv_loss": "float64",  # mean CE under the attack
    "clean_loss": "float64",  # mean clean CE on the same samples
    "clean_acc": "float64",  # clean accuracy on the same samples
    "certified_acc": "float64",  # fraction with r_cert > eps (lower bound)
    "measured_gap": "float64",  # adv_loss - clean_loss
    "bound_gap": "float64",  # G_p * ||C||_{p->p} * Lhat_p * eps (a certificate)
    "align_est_gap": "float64",  # G_p * mean_x ||J(x)||_{p->p} * eps (estimate, not a bound)
    "first_order_gap": "float64",  # eps * mean_x ||grad_x CE||_q (estimate, not a bound)
    # median minimal adversarial eps found by bisection (this norm); at the final epoch also
    # capped per sample by the smallest grid eps at which the final attack fooled it
    "median_r_emp": "float64",
    "median_r_cert": "float64",  # median certified radius (this norm)
    "align_top": "float64",  # mean |<u_top, delta>|/||delta||_2 for the first layer's top direction
    "align_rest": "float64",  # same, mean over the other directions (the baseline)
    "fooling_rate": "float64",  # UAP rows only (NaN otherwise)
    # -- added in 3: the final evaluation protocol (trainables/trial.py). Intervals: Clopper-
    # Pearson 95% over the row's n_eval samples. Columns not computed for a row are NaN.
    "n_eval": "int64",  # samples every accuracy of this row is measured on
    "robust_acc_lo": "float64",
    "robust_acc_hi": "float64",
    "clean_acc_lo": "float64",
    "clean_acc_hi": "float64",
    "certified_acc_lo": "float64",
    "certified_acc_hi": "float64",
    # Linear relaxation (best of CROWN / IBP / global product per sample, or IBP alone), united
    # with the global certificate; final epoch only. certified_acc <= this <= robust_acc.
    "certified_acc_relaxed": "float64",
    "certified_acc_relaxed_lo": "float64",
    "certified_acc_relaxed_hi": "float64",
    "certified_method": "str",  # the relaxation asked for: "crown", "ibp"; "" when not computed
    "median_r_cert_relaxed": "float64",  # over the r_emp samples (final epoch)
    # Median over the r_emp samples (correct, finite r_emp > 0) of r_cert / r_emp per sample:
    # scale-free, in [0, 1] for a sound certificate. Final epoch only.
    "cert_ratio_global": "float64",
    "cert_ratio_relaxed": "float64",
    # MILP exact verification (one-hidden-layer FCNs, L-inf) on the first n_exact samples.
    "n_exact": "int64",  # 0: not computed
    "exact_acc": "float64",  # proven-robust fraction of the n_exact samples (unknown not counted)
    "exact_unknown": "int64",  # samples the solver's time limit left undecided
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
SCALE_FREE_STATS: dict[str, str] = {  # keys: SCALE_FREE_KEYS
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

# (table, column) -> the SCHEMA_VERSION that added it; every other contract column is in version 1.
ADDED_IN: dict[tuple[str, str], int] = {
    ("trials", "neuron_comp_l2"): 2,
    **{("history", key): 3 for key in (*SCALE_FREE_KEYS, "val_loss", "selected_epoch")},
    **{("history", key): 5 for key in TIME_BUDGET},
    **{("history", key): 6 for key in DATA_STATS},
    **{("layers", column): 3 for column in (
        "spectral_l1l2", "neuron_l1l2_l1", "neuron_l1l2_l2", "spec_fro", "inf_fro",
        *comp_columns("spectral_spread"),
    )},
    **{("robustness", c): 4 for c in (
        "n_eval", "robust_acc_lo", "robust_acc_hi", "clean_acc_lo", "clean_acc_hi",
        "certified_acc_lo", "certified_acc_hi", "certified_acc_relaxed",
        "certified_acc_relaxed_lo", "certified_acc_relaxed_hi", "certified_method",
        "median_r_cert_relaxed", "cert_ratio_global", "cert_ratio_relaxed", "n_exact",
        "exact_acc", "exact_unknown")},
}


def added_in(table: str, column: str) -> int:
    """The schema version that introduced a contract column (1 for the original layout)."""
    return ADDED_IN.get((table, column), 1)

