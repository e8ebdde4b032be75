"""Derived LazyFrames the figures and tables share: the final robustness of each trial, joined to
its hyperparameters, and seed aggregation with confidence intervals."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
from scipy import stats as sps

from analysis.store import Tables
from trainables import schema

COMP_MEASURES: tuple[str, ...] = schema.HEADLINES
# Which way each measure moves as a network becomes more compressible: +1 when higher means more
# compressible (comp at kappa, in [0, 1]), -1 when lower does (the l1/l2 ratios of
# schema.HEADLINE_STAT: an effective count of singular values or rows, in [1, sqrt(rank)]).
# Anything that orders trials by compressibility or states the paper's predicted sign reads it.
COMPRESSIBLE_DIRECTION: dict[str, int] = {
    **{m: 1 for m in COMP_MEASURES},
    **{s: -1 for s in schema.HEADLINE_STAT.values()},
}
# Per-epoch network statistics taken from the history table at a trial's last iteration (the
# trials table keeps only TRIAL_METRICS): the scale-free headline axes (schema.HEADLINE_STAT), the
# first layer's alignment with the data, and the Lipschitz products the loss-gap bound multiplies.
HISTORY_STATS: tuple[str, ...] = (*schema.SCALE_FREE_KEYS, *schema.DATA_STATS, "lip_linf",
                                  "lip_l2")
# The column that names the compression method ("knob"); spaces without it use the space name.
KNOB_COLUMN = "compression"
# Hyperparameters that define a training *setting* (a frontier is fitted per setting) rather than
# a compression strength: adversarial training, the weight-scale controls (fixed Frobenius norm
# during training, rescaling at evaluation), transfer. A knob free and at fixed scale can move RA
# in opposite directions (nuclear norm, mechanism_linf), so they are never pooled.
SETTING_COLUMNS: tuple[str, ...] = (
    "at_eps",
    "at_steps",
    "at_frac",
    "at_norm",
    "weight_scale",
    "fixed_fro",
    "pretrain_epochs",
    "pretrain_classes",
    "freeze_encoder",
)
UAP_ATTACK = "uap"
ANALYSED_STATUSES: tuple[str, ...] = (schema.COMPLETED,)

_TRIAL_KEYS = ["run_id", "trial_id"]
# Taken from the strongest attack's row of a (trial, norm, eps).
_OF_STRONGEST = ("robust_acc_lo", "robust_acc_hi", "n_eval")
# Certificates and radii of the final protocol: one value per (trial, norm, eps), on every row.
_CERTIFICATES = ("certified_acc_lo", "certified_acc_hi", "certified_acc_relaxed",
                 "certified_acc_relaxed_lo", "certified_acc_relaxed_hi", "median_r_cert_relaxed",
                 "cert_ratio_global", "cert_ratio_relaxed", "exact_acc", "n_exact",
                 "exact_unknown")
_NAN_IS_NULL = ("robust_acc_lo", "robust_acc_hi", "clean_acc_lo", "clean_acc_hi",
                "certified_acc_lo", "certified_acc_hi", "certified_acc_relaxed",
                "certified_acc_relaxed_lo", "certified_acc_relaxed_hi", "median_r_cert_relaxed",
                "cert_ratio_global", "cert_ratio_relaxed", "exact_acc")


def config_columns(tables: Tables) -> list[str]:
    """Columns that identify a configuration: trials differing only in seed share them."""
    return ["space", *tables.hyperparameters]


def varying_settings(tables: Tables) -> list[str]:
    """Setting columns of this sweep that take more than one value."""
    present = [c for c in SETTING_COLUMNS if c in tables.hyperparameters]
    if not present:
        return []
    counts = tables.trials.select(pl.col(present).n_unique()).collect().row(0, named=True)
    return [c for c in present if counts[c] > 1]


def knob(tables: Tables) -> pl.Expr:
    """The compression method of a trial, as a string column named 'knob'."""
    column = KNOB_COLUMN if KNOB_COLUMN in tables.hyperparameters else "space"
    return pl.col(column).cast(pl.String).alias("knob")


def final_history(tables: Tables) -> pl.LazyFrame:
    """HISTORY_STATS of each trial at its last history row (the epoch whose weights the final
    evaluation measured); a store older than a column reads it as null."""
    return (
        tables.history
        .filter(pl.col("iteration") == pl.col("iteration").max().over(_TRIAL_KEYS))
        .select(*_TRIAL_KEYS, *HISTORY_STATS)
        .unique(_TRIAL_KEYS, keep="last")
    )


def trial_columns(tables: Tables, statuses: Sequence[str] = ANALYSED_STATUSES) -> pl.LazyFrame:
    """The analysed trials with their compressibility (at kappa, and HISTORY_STATS at the last
    epoch), final clean accuracy, knob and hyperparameters (clean_acc renamed final_clean_acc: it
    is on the whole evaluation split)."""
    return (
        tables.trials
        .filter(pl.col("status").is_in(list(statuses)))
        .select(
            *_TRIAL_KEYS,
            "space",
            "status",
            "seed",
            knob(tables),
            pl.col("clean_acc").alias("final_clean_acc"),
            *[pl.col(c) for c in tables.hyperparameters if c not in ("space", "seed")],
            *COMP_MEASURES,
        )
        .join(final_history(tables), on=_TRIAL_KEYS, how="left", maintain_order="left")
    )


def final_robustness(
    tables: Tables, statuses: Sequence[str] = ANALYSED_STATUSES
) -> pl.LazyFrame:
    """One row per (trial, norm, eps) at the trial's last evaluated iteration, attacks combined:
    robust_acc is the strongest attack's (the lowest; each is an upper bound on true robust
    accuracy), with that row's interval, sample count and name (strongest_attack); certified_acc
    and certified_acc_relaxed the highest certificates, measured_gap the largest CE gap; UAP rows
    excluded. Columns a store predates read as null (NaN "not computed" too)."""
    strongest = [pl.col("robust_acc"), pl.col("attack")]  # a tie goes to the first name, always
    return (
        tables.robustness
        .filter(pl.col("attack") != UAP_ATTACK)
        .filter(pl.col("iteration") == pl.col("iteration").max().over(_TRIAL_KEYS))
        .with_columns(pl.col(c).fill_nan(None) for c in _NAN_IS_NULL)
        .group_by([*_TRIAL_KEYS, "iteration", "norm", "eps"], maintain_order=True)
        .agg(
            pl.col("robust_acc").min(),
            *[pl.col(c).sort_by(strongest).first() for c in _OF_STRONGEST],
            pl.col("attack").sort_by(strongest).first().alias("strongest_attack"),
            *[pl.col(c).max() for c in _CERTIFICATES],
            *[pl.col(c).mean() for c in ("clean_acc_lo", "clean_acc_hi")],
            pl.col("certified_acc").max(),
            pl.col("clean_acc").mean(),
            pl.col("measured_gap").max(),
            pl.col("bound_gap").max(),
            pl.col("align_est_gap").mean(),
            pl.col("first_order_gap").mean(),
            pl.col("median_r_emp").min(),
            pl.col("median_r_cert").max(),
            pl.col("align_top").mean(),
            pl.col("align_rest").mean(),
            pl.col("attack").unique().sort().str.join(",").alias("attacks"),
        )
        .join(trial_columns(tables, statuses), on=_TRIAL_KEYS, how="inner")
        .with_columns((pl.col("robust_acc") / pl.col("clean_acc")).alias("ra_over_sa"))
        # group_by's order is arbitrary; a fixed one makes every float sum downstream, and so
        # the report, the same bytes from the same store
        .sort([*_TRIAL_KEYS, "norm", "eps"])
    )


def uap_robustness(tables: Tables, statuses: Sequence[str] = ANALYSED_STATUSES) -> pl.LazyFrame:
    """UAP rows (fooling rate per trial, norm, eps) at each trial's last iteration that has them."""
    return (
        tables.robustness
        .filter(pl.col("attack") == UAP_ATTACK)
        .filter(pl.col("iteration") == pl.col("iteration").max().over(_TRIAL_KEYS))
        .select(*_TRIAL_KEYS, "norm", "eps", "fooling_rate", "robust_acc")
        .join(trial_columns(tables, statuses), on=_TRIAL_KEYS, how="inner")
        .sort([*_TRIAL_KEYS, "norm", "eps"])  # a fixed order, as final_robustness's
    )


def seed_means(
    frame: pl.LazyFrame, by: Sequence[str], values: Sequence[str], level: float = 0.95
) -> pl.LazyFrame:
    """Mean of each value column over the trials of a group (the seeds of one configuration), with
    a Student-t confidence interval (null when the group has one trial), and n_seeds."""
    by = list(by)
    return (
        frame
        .group_by(by, maintain_order=True)
        .agg(
            pl.len().alias("n_seeds"),
            *[pl.col(v).mean().alias(v) for v in values],
            *[pl.col(v).std().alias(f"{v}_sd") for v in values],
        )
        .with_columns(
            pl.col("n_seeds")
            .map_batches(
                lambda n: pl.Series(sps.t.ppf(0.5 + level / 2, (n - 1).clip(1).to_numpy())),
                return_dtype=pl.Float64,
            )
            .alias("_t")
        )
        .with_columns(
            *[
                (pl.col(v) - pl.col("_t") * pl.col(f"{v}_sd") / pl.col("n_seeds").sqrt())
                .alias(f"{v}_lo")
                for v in values
            ],
            *[
                (pl.col(v) + pl.col("_t") * pl.col(f"{v}_sd") / pl.col("n_seeds").sqrt())
                .alias(f"{v}_hi")
                for v in values
            ],
        )
        .drop("_t", *[f"{v}_sd" for v in values])
        .sort(by, nulls_last=True)
    )
