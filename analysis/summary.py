"""What the sweep found, in the terms of the paper's prediction: per knob, setting, norm and eps,
robust accuracy (RA) of the least and of the most compressed configuration with binomial
intervals, the Spearman correlation of RA with the headline compressibility measure with its
interval, and a verdict decided by that interval alone (THEORY.md: RA falls as compressibility
rises). Then the Pareto-optimal trials. Knobs are never pooled: rank and nuclear-norm
regularisation can move compressibility in opposite directions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import polars as pl

from analysis.frontier import pareto_front
from analysis.stats import clopper_pearson, spearman
from analysis.store import Tables
from analysis.views import COMP_MEASURES

DEFAULT_MEASURE = "spectral_comp"
HOLDS, CONTRADICTS, INCONCLUSIVE = "holds", "contradicts", "inconclusive"
# Columns another part of the store may carry with a per-row interval / sample count; used when
# present, computed here otherwise.
INTERVAL_COLUMNS = ("robust_acc_lo", "robust_acc_hi")
COUNT_COLUMNS = ("n_eval", "n_samples")  # per-row sample count, preferred over run.json's


def headline_measure(tables: Tables) -> str:
    """The space's own objective when it is a compressibility measure (a neuron-pruning space
    is judged by neuron compressibility), else spectral compressibility."""
    objective = tables.runs[0].spec.get("objective")
    return objective if objective in COMP_MEASURES else DEFAULT_MEASURE


def eval_count(tables: Tables) -> int | None:
    """Samples each robust accuracy was measured on: the launch spec's fixed n_eval (run.json).
    None when the run does not say (intervals are then left empty, never guessed)."""
    counts = {_final_count(r.spec.get("fixed") or {}) for r in tables.runs}
    counts.discard(None)
    return int(counts.pop()) if len(counts) == 1 else None


def _final_count(fixed: dict) -> int | None:
    """The final rows' sample count: n_eval_final when the final protocol ran, else n_eval."""
    if fixed.get("final_attack", "ensemble") != "none" and fixed.get("n_eval_final"):
        return fixed["n_eval_final"]
    return fixed.get("n_eval")


def verdict(ci_low: float, ci_high: float) -> str:
    """The paper predicts rho(RA, compressibility) < 0. Decided by the interval: entirely below
    0 holds, entirely above contradicts, anything else (including no interval) inconclusive."""
    if math.isnan(ci_low) or math.isnan(ci_high):
        return INCONCLUSIVE
    if ci_high < 0:
        return HOLDS
    if ci_low > 0:
        return CONTRADICTS
    return INCONCLUSIVE


def effect_table(
    final: pl.DataFrame,
    measure: str,
    config: Sequence[str],
    settings: Sequence[str] = (),
    n_eval: int | None = None,
    level: float = 0.95,
) -> pl.DataFrame:
    """One row per (knob, settings, norm, eps): the least and most compressed configuration (by
    the seed mean of `measure`), the seed-pooled RA of each with a Clopper-Pearson interval (on
    n_eval samples per trial; the store's robust_acc_lo/hi averaged over seeds when it has
    them), the change, Spearman rho across trials with its Fisher-z interval, and the verdict."""
    group = ["knob", *settings, "norm", "eps"]
    frame = final.filter(pl.col(measure).is_finite() & pl.col("robust_acc").is_finite())
    rows: list[dict[str, Any]] = []
    if frame.height == 0:
        return pl.DataFrame()
    config = [c for c in config if c in frame.columns]
    for key, part in sorted(frame.partition_by(group, as_dict=True).items(),
                            key=lambda kv: [str(v) for v in kv[0]]):
        per_config = _config_means(part, config, measure, n_eval)
        least, most = per_config.row(0, named=True), per_config.row(-1, named=True)
        corr = spearman(part[measure].to_numpy(), part["robust_acc"].to_numpy(), level)
        if per_config.height < 2:  # one configuration: its seeds differ by noise, not by knob
            corr = replace(corr, r=math.nan, ci_low=math.nan, ci_high=math.nan)
        rows.append(
            dict(zip(group, key))
            | {"n_trials": part.height, "n_configs": per_config.height}
            | {f"least_{k}": v for k, v in _end(least, measure).items()}
            | {f"most_{k}": v for k, v in _end(most, measure).items()}
            | {"ra_change": most["robust_acc"] - least["robust_acc"]}
            | {"rho": corr.r, "rho_lo": corr.ci_low, "rho_hi": corr.ci_high,
               "verdict": verdict(corr.ci_low, corr.ci_high)}
        )
    return pl.DataFrame(rows).with_columns(pl.lit(measure).alias("measure"))


def _config_means(part: pl.DataFrame, config: list[str], measure: str,
                  n_eval: int | None) -> pl.DataFrame:
    has_interval = all(c in part.columns for c in INTERVAL_COLUMNS) and part[
        INTERVAL_COLUMNS[0]].is_not_null().any()
    aggs = [pl.len().alias("seeds"), pl.col(measure).mean(), pl.col("robust_acc").mean(),
            pl.col("trial_id").sort().first().alias("trial_id")]
    if has_interval:
        aggs += [pl.col(c).mean() for c in INTERVAL_COLUMNS]
    count = next((c for c in COUNT_COLUMNS if c in part.columns
                  and part[c].is_not_null().all()), None)
    samples = pl.col(count).cast(pl.Float64) if count else pl.lit(float(n_eval or "nan"))
    part = part.with_columns(samples.alias("_samples"))
    aggs += [(pl.col("robust_acc") * pl.col("_samples")).sum().alias("_k"),
             pl.col("_samples").sum().alias("_n")]
    by = config or ["knob"]
    table = part.group_by(by).agg(aggs).sort(measure)
    if has_interval:
        table = table.rename(dict(zip(INTERVAL_COLUMNS, ("ra_lo", "ra_hi"))))
        return table.drop("_k", "_n")
    bounds = [clopper_pearson(k, n) for k, n in zip(table["_k"], table["_n"])]
    table = table.drop("_k", "_n")
    return table.with_columns(
        pl.Series("ra_lo", [b[0] for b in bounds], dtype=pl.Float64),
        pl.Series("ra_hi", [b[1] for b in bounds], dtype=pl.Float64),
    )


def _end(row: dict[str, Any], measure: str) -> dict[str, Any]:
    return {"comp": row[measure], "ra": row["robust_acc"], "ra_lo": row["ra_lo"],
            "ra_hi": row["ra_hi"], "seeds": row["seeds"], "trial": row["trial_id"]}


def pareto_trials(final: pl.DataFrame, measure: str, columns: Sequence[str]) -> pl.DataFrame:
    """Trials no other trial beats on both compressibility and RA, per norm at its largest eps
    (the hardest budget, where the trade-off is widest), with their settings."""
    largest = final.filter(pl.col("eps") == pl.col("eps").max().over("norm"))
    if largest.height == 0:
        return pl.DataFrame()
    front = pareto_front(largest.lazy(), measure, "robust_acc", ["norm", "eps"]).collect()
    keep = [c for c in ["norm", "eps", "trial_id", "knob", *columns, "seed", measure,
                        "robust_acc", "certified_acc", "clean_acc"] if c in front.columns]
    keep = list(dict.fromkeys(keep))
    return front.filter(pl.col("pareto")).select(keep).sort(["norm", measure])


def sentence(row: dict[str, Any], n_eval: int | None) -> str:
    """One line a reader can act on, e.g. 'rank, linf eps=0.04: RA 0.62 [0.56, 0.68] at
    spectral_comp 0.21 -> 0.31 [0.25, 0.37] at 0.83; rho -0.71 [-0.86, -0.47]: holds'."""
    where = ", ".join(f"{k}={_fmt(v)}" for k, v in row.items()
                      if k not in _NOT_KEYS and not k.startswith(("least_", "most_")))
    ends = [f"{_fmt(row[f'{end}_ra'])} {_interval(row[f'{end}_ra_lo'], row[f'{end}_ra_hi'])}"
            f" at {row['measure']} {_fmt(row[f'{end}_comp'])}" for end in ("least", "most")]
    rho_interval = _interval(row["rho_lo"], row["rho_hi"])
    if row["n_trials"] < 4 and rho_interval == "[no interval]":
        rho_interval = "[no interval: an interval needs at least 4 trials]"
    rho = f"rho {_fmt(row['rho'])} {rho_interval}"
    return f"{where}: RA {ends[0]} -> {ends[1]}; {rho} (n={row['n_trials']}): {row['verdict']}"


_NOT_KEYS = {"n_trials", "n_configs", "ra_change", "rho", "rho_lo", "rho_hi", "verdict",
             "measure"}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.3g}"
    return str(value)


def _interval(lo: float, hi: float) -> str:
    if lo is None or hi is None or np.isnan(lo) or np.isnan(hi):
        return "[no interval]"
    return f"[{lo:.3g}, {hi:.3g}]"
