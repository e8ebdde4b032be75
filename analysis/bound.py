"""The loss-gap bound against the measured CE gap (THEORY.md "Network bound"), and the two
data-dependent estimates beside it. Only bound_gap is a certificate; align_est_gap and
first_order_gap are estimates and are labelled so in every table. Correlations are per eps (never
pooled), on the rank-varied trials and on all; `factor_correlations` takes the global bound apart
(Lipschitz product, head norm, each layer's operator norm) to show which factor loses the
ordering of the measured gap."""

from __future__ import annotations

import numpy as np
import polars as pl

from analysis.stats import pearson, spearman
from analysis.store import Tables
from analysis.views import final_robustness

GAP_QUANTITIES: dict[str, str] = {
    "bound_gap": "bound",
    "align_est_gap": "estimate",
    "first_order_gap": "estimate",
}
# measured_gap > bound_gap beyond float rounding is a bug somewhere (THEORY.md invariant).
ABS_TOL = 1e-9
REL_TOL = 1e-6


def violations(tables: Tables, abs_tol: float = ABS_TOL, rel_tol: float = REL_TOL) -> pl.LazyFrame:
    """Every robustness row (any trial, iteration and attack) whose measured CE gap exceeds its
    loss-gap bound by more than the tolerance. Must be empty."""
    return (
        tables.robustness
        .filter(
            pl.col("measured_gap")
            > pl.col("bound_gap") + rel_tol * pl.col("bound_gap").abs() + abs_tol
        )
        .select("run_id", "trial_id", "iteration", "norm", "eps", "attack", "measured_gap",
                "bound_gap")
    )


# Compression values whose trials vary the network's rank directly (the paper's 0.947 setting:
# spectral rank varied), plus the uncompressed reference.
RANK_VARIED: tuple[str, ...] = ("none", "rank")
SUBSETS: tuple[str, ...] = ("rank_varied", "all")


def gap_subsets(final: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The trials each correlation is computed on: rank-varied (compression in RANK_VARIED; absent
    when the run has no compression column or no such trial) and all."""
    subsets = {}
    if "compression" in final.columns:
        ranked = final.filter(pl.col("compression").cast(pl.String).is_in(list(RANK_VARIED)))
        if ranked.height:
            subsets["rank_varied"] = ranked
    return subsets | {"all": final}


def bound_correlations(
    final: pl.LazyFrame | pl.DataFrame, level: float = 0.95
) -> pl.DataFrame:
    """Per subset (gap_subsets), norm and eps: Spearman and Pearson correlation of each gap
    quantity with the measured gap across trials, with confidence intervals, and the ratio
    quantity / measured (the bound's tightness) over trials with a positive measured gap. Never
    pooled over eps: the gap and every quantity scale with eps, so a pooled correlation would
    reward the eps axis, not the theory."""
    frame = final.collect() if isinstance(final, pl.LazyFrame) else final
    rows = []
    for subset, part in gap_subsets(frame).items():
        groups = part.partition_by(["norm", "eps"], as_dict=True)
        for (norm, eps), group in sorted(groups.items()):
            measured = group["measured_gap"].to_numpy()
            for quantity, kind in GAP_QUANTITIES.items():
                values = group[quantity].to_numpy()
                rows.append(
                    {"subset": subset, "norm": norm, "eps": float(eps), "quantity": quantity,
                     "kind": kind}
                    | spearman(values, measured, level).as_dict("spearman_")
                    | pearson(values, measured, level).as_dict("pearson_")
                    | _ratio_summary(values, measured)
                )
    return pl.DataFrame(rows).with_columns(pl.col("spearman_n").alias("n")).drop(
        "spearman_n", "pearson_n"
    )


# The global L-inf / L2 bound's factors at one eps: G_p ||C||_{p->p} * Lhat_p * eps, with Lhat_p
# = ||N|| * prod_l ||W_l||_{p->p} (inf->inf: max row L1 norm; 2->2: sigma_1, conv upper bound).
LIPSCHITZ_COLUMN = {"linf": "lip_linf", "l2": "lip_l2"}
LAYER_NORM_COLUMN = {"linf": "inf_norm", "l2": "op_norm_l2"}


def bound_factors(tables: Tables) -> pl.DataFrame:
    """One row per analysed (trial, norm, eps) at the last evaluated iteration: the measured gap,
    the gap quantities, and the bound's factors separately: lip (Lhat_p), head (G_p ||C||_{p->p},
    recovered as bound_gap / (lip * eps); G_p is a constant per norm, so correlations do not
    see it) and layer<i> (each encoder layer's p->p operator norm at the trial's last layers
    iteration)."""
    final = final_robustness(tables).collect()
    lip = pl.when(pl.col("norm") == "linf").then(pl.col("lip_linf")).otherwise(pl.col("lip_l2"))
    final = final.with_columns(lip.alias("lip")).with_columns(
        (pl.col("bound_gap") / (pl.col("lip") * pl.col("eps"))).alias("head"))
    layers = (
        tables.layers
        .filter(pl.col("iteration") == pl.col("iteration").max().over("run_id", "trial_id"))
        .select("run_id", "trial_id", "layer_index", *LAYER_NORM_COLUMN.values())
        .collect()
    )
    norms = []
    for norm, column in LAYER_NORM_COLUMN.items():
        if layers.height == 0:
            break
        wide = (layers.with_columns(pl.format("layer{}", pl.col("layer_index")).alias("_layer"))
                .pivot(on="_layer", index=["run_id", "trial_id"], values=column,
                       aggregate_function="first")
                .with_columns(pl.lit(norm).alias("norm")))
        norms.append(wide)
    if norms:
        final = final.join(pl.concat(norms, how="diagonal"), on=["run_id", "trial_id", "norm"],
                           how="left")
    return final


def factor_correlations(factors: pl.DataFrame, level: float = 0.95) -> pl.DataFrame:
    """Why the global bound does or does not order the measured gap: per subset, norm and eps,
    Spearman and Pearson of the measured gap with each factor of the bound alone (lip, head,
    layer<i>), beside the whole bound and the two estimates. A factor whose rho falls well below
    the alignment estimate's is the one that loses the ordering."""
    layer_columns = sorted((c for c in factors.columns if c.startswith("layer")
                            and c[5:].isdigit()), key=lambda c: int(c[5:]))
    candidates = [*GAP_QUANTITIES, "lip", "head", *layer_columns]
    rows = []
    for subset, part in gap_subsets(factors).items():
        for (norm, eps), group in sorted(part.partition_by(["norm", "eps"], as_dict=True).items()):
            measured = group["measured_gap"].to_numpy()
            for factor in candidates:
                values = group[factor].cast(pl.Float64).to_numpy()
                rho, r = spearman(values, measured, level), pearson(values, measured, level)
                rows.append({"subset": subset, "norm": norm, "eps": float(eps), "factor": factor,
                             "n": rho.n, "spearman": rho.r, "spearman_ci_low": rho.ci_low,
                             "spearman_ci_high": rho.ci_high, "pearson": r.r})
    return pl.DataFrame(rows)


def _ratio_summary(values: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    keep = np.isfinite(values) & np.isfinite(measured) & (measured > 0)
    if not keep.any():
        return {"ratio_median": np.nan, "ratio_min": np.nan, "ratio_max": np.nan}
    ratio = values[keep] / measured[keep]
    return {
        "ratio_median": float(np.median(ratio)),
        "ratio_min": float(ratio.min()),
        "ratio_max": float(ratio.max()),
    }


# Radii per (trial, norm) of the final protocol: (certified radius column, its ratio column).
RADII: dict[str, tuple[str, str]] = {
    "global": ("median_r_cert", "cert_ratio_global"),
    "relaxed": ("median_r_cert_relaxed", "cert_ratio_relaxed"),
}


def radius_comparison(final: pl.LazyFrame, level: float = 0.95) -> pl.DataFrame:
    """The scale-free theory comparison, per norm and certificate (global Lipschitz product,
    linear relaxation): the median over trials of each trial's median per-sample r_cert / r_emp
    (r_emp from the strongest attack), and the Spearman correlation across trials of the median
    certified radius with the median r_emp. Radii and accuracies are scale-free (a bias-free ReLU
    network's decisions do not change when its weights are scaled); the loss-gap bound and the
    CE gap are not. Empty when no trial has the columns."""
    needed = ["median_r_emp", *[c for pair in RADII.values() for c in pair]]
    frame = final.collect() if isinstance(final, pl.LazyFrame) else final
    if not all(c in frame.columns for c in needed):
        return pl.DataFrame()
    # Radii are per (trial, norm): the same on every eps row.
    per_trial = (frame.group_by("run_id", "trial_id", "norm", maintain_order=True)
                 .agg(pl.col(needed).fill_nan(None).max()))
    rows = []
    for norm in sorted(per_trial["norm"].unique().to_list()):
        part = per_trial.filter(pl.col("norm") == norm)
        for certificate, (radius, ratio) in RADII.items():
            ratios = part[ratio].drop_nulls()
            if ratios.len() == 0:
                continue
            pairs = part.select(radius, "median_r_emp").drop_nulls().filter(
                pl.col("median_r_emp").is_finite() & pl.col(radius).is_finite())
            corr = spearman(pairs[radius].to_numpy(), pairs["median_r_emp"].to_numpy(), level)
            rows.append({"norm": norm, "certificate": certificate, "n_trials": ratios.len(),
                         "median_ratio": float(ratios.median()),
                         "ratio_min": float(ratios.min()), "ratio_max": float(ratios.max()),
                         "spearman_r": corr.r, "spearman_ci_low": corr.ci_low,
                         "spearman_ci_high": corr.ci_high})
    return pl.DataFrame(rows)
