"""What the sweep found, in the terms of the paper's prediction: per knob, setting, norm and eps,
robust accuracy (RA) of the least and of the most compressed configuration with binomial
intervals, the Spearman correlation of RA with the headline compressibility axis with its
interval, and a verdict decided by that interval alone (THEORY.md: RA falls as compressibility
rises). Then the Pareto-optimal trials. Knobs are never pooled: rank and nuclear-norm
regularisation can move compressibility in opposite directions.

The axis is the scale-free statistic of the compressibility the space targets
(schema.HEADLINE_STAT, e.g. ||sigma||_1/||sigma||_2): comp at a fixed kappa saturates at 1 for every
rank <= kappa * width and cannot order those ranks. The statistic is LOWER for a more compressible
network, so the paper's prediction there is a POSITIVE rho; `predicted_sign` states the sign per
measure and `verdict` takes it explicitly. Comp at kappa rides along as a secondary column."""

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
from analysis.views import COMP_MEASURES, COMPRESSIBLE_DIRECTION
from trainables.schema import HEADLINE_STAT
from trainables.variants import RAISES

DEFAULT_OBJECTIVE = "spectral_comp"
HOLDS, CONTRADICTS, INCONCLUSIVE = "holds", "contradicts", "inconclusive"
# One configuration (the uncompressed baseline, or a knob swept at a single strength): a level to
# compare against, with no trend to test, so never counted as an inconclusive test.
REFERENCE = "reference"
LEVEL = 0.95  # each finding's rho interval; the family-wise ones are Bonferroni-adjusted from it
# Columns another part of the store may carry with a per-row interval / sample count; used when
# present, computed here otherwise.
INTERVAL_COLUMNS = ("robust_acc_lo", "robust_acc_hi")
COUNT_COLUMNS = ("n_eval", "n_samples")  # per-row sample count, preferred over run.json's


def comp_measure(tables: Tables) -> str:
    """The compressibility at kappa the space targets: its objective when that is a
    compressibility measure (a neuron-pruning space is judged by neuron compressibility), else
    spectral compressibility. The paper's quantity; the secondary column of the findings."""
    objective = tables.runs[0].spec.get("objective")
    return objective if objective in COMP_MEASURES else DEFAULT_OBJECTIVE


def headline_measure(tables: Tables) -> str:
    """The findings' axis: the non-saturating scale-free statistic of comp_measure's flavour
    (schema.HEADLINE_STAT; lower = more compressible)."""
    return HEADLINE_STAT[comp_measure(tables)]


def knob_axis(knob: str, norm: str, default: tuple[str, str]) -> tuple[str, str]:
    """(measure, secondary) for one knob's findings: the knob's own family (what it raises,
    trainables.variants.RAISES), in the flavour of the attack's norm (row L1 norms for L-inf, row
    L2 norms for L2), so a space mixing spectral and neuron knobs (mechanism_*) judges group lasso
    by its neuron count, not by the spectrum; `default` (the space's axis) for knobs that raise
    nothing (none) or are unknown."""
    raised = RAISES.get(knob, "")
    if raised == "spectral_comp":
        return "spectral_l1l2", "spectral_comp"
    if raised.startswith("neuron_comp"):
        return ("neuron_l1l2_l1", "neuron_comp") if norm == "linf" else (
            "neuron_l1l2_l2", "neuron_comp_l2")
    return default


def knob_effect_table(final: pl.DataFrame, measure: str, config: Sequence[str],
                      settings: Sequence[str] = (), n_eval: int | None = None,
                      secondary: str | None = None, level: float = LEVEL) -> pl.DataFrame:
    """effect_table with each (knob, norm) on knob_axis; `measure` / `secondary` for the rest.
    Knobs whose axis the store lacks (a store before schema 3) stay on `measure`.

    Every row is one test of the prediction, so the table also carries the family-wise reading:
    with m rows that have an interval (family_tests), rho_lo_family / rho_hi_family are the
    Bonferroni intervals at level 1 - (1 - level) / m and verdict_family their verdict, so a
    'holds' or 'contradicts' there is not one of the m chances for a 5% false alarm."""
    table = _knob_effects(final, measure, config, settings, n_eval, secondary, level)
    if table.height == 0:
        return table
    tests = int(table["rho_lo"].is_not_nan().sum())
    strict = (_knob_effects(final, measure, config, settings, n_eval, secondary,
                            1 - (1 - level) / tests) if tests > 1 else table)
    return table.with_columns(
        strict["rho_lo"].alias("rho_lo_family"), strict["rho_hi"].alias("rho_hi_family"),
        strict["verdict"].alias("verdict_family"), pl.lit(tests).alias("family_tests"))


def _knob_effects(final: pl.DataFrame, measure: str, config: Sequence[str],
                  settings: Sequence[str], n_eval: int | None, secondary: str | None,
                  level: float) -> pl.DataFrame:
    parts = []
    for (knob_name, norm), part in final.partition_by(["knob", "norm"], as_dict=True).items():
        axis, second = knob_axis(knob_name, norm, (measure, secondary))
        if axis not in part.columns or not part[axis].is_finite().any():
            axis, second = measure, secondary
        table = effect_table(part, axis, config, settings, n_eval, level, second)
        if table.height:
            parts.append(table)
    if not parts:
        return pl.DataFrame()
    return pl.concat(parts, how="diagonal_relaxed").sort(["knob", *settings, "norm", "eps"])


def predicted_sign(measure: str) -> int:
    """The sign of Spearman(measure, RA) the paper predicts: RA falls as compressibility rises, so
    -1 for comp at kappa and +1 for an l1/l2 ratio (lower = more compressible)."""
    if measure not in COMPRESSIBLE_DIRECTION:
        raise ValueError(f"measure must be one of {sorted(COMPRESSIBLE_DIRECTION)}, but got "
                         f"{measure!r}; its direction of compressibility is not known")
    return -COMPRESSIBLE_DIRECTION[measure]


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


def verdict(ci_low: float, ci_high: float, predicted: int) -> str:
    """Decided by the interval of rho(measure, RA) against the predicted sign (predicted_sign;
    required, so no caller gets a meaning it did not ask for): an interval entirely on the
    predicted side of 0 holds, entirely on the other side contradicts, anything else (including
    no interval) is inconclusive."""
    if predicted not in (-1, 1):
        raise ValueError(f"predicted must be -1 or +1, but got {predicted!r}")
    if math.isnan(ci_low) or math.isnan(ci_high):
        return INCONCLUSIVE
    if ci_low * predicted > 0 and ci_high * predicted > 0:
        return HOLDS
    if ci_low * predicted < 0 and ci_high * predicted < 0:
        return CONTRADICTS
    return INCONCLUSIVE


def effect_table(
    final: pl.DataFrame,
    measure: str,
    config: Sequence[str],
    settings: Sequence[str] = (),
    n_eval: int | None = None,
    level: float = 0.95,
    secondary: str | None = None,
) -> pl.DataFrame:
    """One row per (knob, settings, norm, eps): the least and most compressed configuration (by
    the seed mean of `measure`, in its COMPRESSIBLE_DIRECTION), the seed-pooled RA of each with a
    Clopper-Pearson interval (on n_eval samples per trial; the store's robust_acc_lo/hi averaged
    over seeds when it has them), the change, Spearman rho across trials with its Fisher-z
    interval, the predicted sign and the verdict (REFERENCE for a group with one configuration).
    `secondary` (e.g. comp at kappa) is reported at both ends as least_/most_secondary when given
    and present."""
    predicted = predicted_sign(measure)
    if secondary == measure or (secondary is not None and secondary not in final.columns):
        secondary = None
    group = ["knob", *settings, "norm", "eps"]
    frame = final.filter(pl.col(measure).is_finite() & pl.col("robust_acc").is_finite())
    rows: list[dict[str, Any]] = []
    if frame.height == 0:
        return pl.DataFrame()
    config = [c for c in config if c in frame.columns]
    for key, part in sorted(frame.partition_by(group, as_dict=True).items(),
                            key=lambda kv: [str(v) for v in kv[0]]):
        per_config = _config_means(part, config, measure, n_eval, secondary)
        least, most = per_config.row(0, named=True), per_config.row(-1, named=True)
        corr = spearman(part[measure].to_numpy(), part["robust_acc"].to_numpy(), level)
        single = per_config.height < 2  # one configuration: its seeds differ by noise, not knob
        if single:
            corr = replace(corr, r=math.nan, ci_low=math.nan, ci_high=math.nan)
        rows.append(
            dict(zip(group, key))
            | {"n_trials": part.height, "n_configs": per_config.height}
            | {f"least_{k}": v for k, v in _end(least, measure, secondary).items()}
            | {f"most_{k}": v for k, v in _end(most, measure, secondary).items()}
            | {"ra_change": most["robust_acc"] - least["robust_acc"]}
            | {"rho": corr.r, "rho_lo": corr.ci_low, "rho_hi": corr.ci_high,
               "predicted": predicted,
               "verdict": REFERENCE if single else verdict(corr.ci_low, corr.ci_high, predicted)}
        )
    return pl.DataFrame(rows).with_columns(
        pl.lit(measure).alias("measure"), pl.lit(secondary, dtype=pl.String).alias("secondary"))


def _config_means(part: pl.DataFrame, config: list[str], measure: str,
                  n_eval: int | None, secondary: str | None = None) -> pl.DataFrame:
    """Seed means per configuration, least compressed first."""
    has_interval = all(c in part.columns for c in INTERVAL_COLUMNS) and part[
        INTERVAL_COLUMNS[0]].is_not_null().any()
    aggs = [pl.len().alias("seeds"), pl.col(measure).mean(), pl.col("robust_acc").mean(),
            pl.col("trial_id").sort().first().alias("trial_id")]
    if secondary is not None:
        aggs.append(pl.col(secondary).mean())
    if has_interval:
        aggs += [pl.col(c).mean() for c in INTERVAL_COLUMNS]
    count = next((c for c in COUNT_COLUMNS if c in part.columns
                  and part[c].is_not_null().all()), None)
    samples = pl.col(count).cast(pl.Float64) if count else pl.lit(float(n_eval or "nan"))
    part = part.with_columns(samples.alias("_samples"))
    aggs += [(pl.col("robust_acc") * pl.col("_samples")).sum().alias("_k"),
             pl.col("_samples").sum().alias("_n")]
    by = config or ["knob"]
    least_first = COMPRESSIBLE_DIRECTION[measure] < 0  # a ratio: the largest is least compressed
    table = (part.group_by(by, maintain_order=True).agg(aggs)
             .sort([measure, *by], descending=[least_first] + [False] * len(by)))
    if has_interval:
        table = table.rename(dict(zip(INTERVAL_COLUMNS, ("ra_lo", "ra_hi"))))
        return table.drop("_k", "_n")
    bounds = [clopper_pearson(k, n) for k, n in zip(table["_k"], table["_n"])]
    table = table.drop("_k", "_n")
    return table.with_columns(
        pl.Series("ra_lo", [b[0] for b in bounds], dtype=pl.Float64),
        pl.Series("ra_hi", [b[1] for b in bounds], dtype=pl.Float64),
    )


def _end(row: dict[str, Any], measure: str, secondary: str | None) -> dict[str, Any]:
    end = {"axis": row[measure], "ra": row["robust_acc"], "ra_lo": row["ra_lo"],
           "ra_hi": row["ra_hi"], "seeds": row["seeds"], "trial": row["trial_id"]}
    if secondary is not None:
        end["secondary"] = row[secondary]
    return end


def pareto_trials(final: pl.DataFrame, measure: str, columns: Sequence[str]) -> pl.DataFrame:
    """Trials no other trial beats on both compressibility (in the measure's
    COMPRESSIBLE_DIRECTION) and RA, per norm at its largest eps (the hardest budget, where the
    trade-off is widest), with their settings."""
    largest = final.filter(pl.col("eps") == pl.col("eps").max().over("norm"))
    if largest.height == 0:
        return pl.DataFrame()
    up = largest.with_columns((COMPRESSIBLE_DIRECTION[measure] * pl.col(measure)).alias("_up"))
    front = pareto_front(up.lazy(), "_up", "robust_acc", ["norm", "eps"]).collect()
    keep = [c for c in ["norm", "eps", "trial_id", "knob", *columns, "seed", measure,
                        "robust_acc", "certified_acc", "clean_acc"] if c in front.columns]
    keep = list(dict.fromkeys(keep))
    return front.filter(pl.col("pareto")).sort(["norm", "_up"]).select(keep)


def sentence(row: dict[str, Any], n_eval: int | None) -> str:
    """One line a reader can act on, e.g. 'rank, linf eps=0.04: RA 0.62 [0.56, 0.68] at
    spectral_l1l2 9.1 (spectral_comp 0.55) -> 0.31 [0.25, 0.37] at 1.4 (spectral_comp 1); rho
    0.71 [0.47, 0.86], predicted > 0 (n=30): holds'."""
    where = ", ".join(f"{k}={_fmt(v)}" for k, v in row.items()
                      if k not in _NOT_KEYS and not k.startswith(("least_", "most_")))
    secondary = row.get("secondary")
    ends = []
    for end in ("least", "most"):
        text = (f"{_fmt(row[f'{end}_ra'])} {_interval(row[f'{end}_ra_lo'], row[f'{end}_ra_hi'])}"
                f" at {row['measure']} {_fmt(row[f'{end}_axis'])}")
        if secondary:
            text += f" ({secondary} {_fmt(row[f'{end}_secondary'])})"
        ends.append(text)
    if row["verdict"] == REFERENCE:
        return (f"{where}: RA {ends[0]}; one configuration, nothing varies to correlate "
                f"(n={row['n_trials']}): {REFERENCE}")
    rho_interval = _interval(row["rho_lo"], row["rho_hi"])
    if row["n_trials"] < 4 and rho_interval == "[no interval]":
        rho_interval = "[no interval: an interval needs at least 4 trials]"
    side = ">" if row["predicted"] > 0 else "<"
    rho = f"rho {_fmt(row['rho'])} {rho_interval}, predicted {side} 0"
    text = f"{where}: RA {ends[0]} -> {ends[1]}; {rho} (n={row['n_trials']}): {row['verdict']}"
    family = row.get("verdict_family")
    if family is not None and family != row["verdict"]:
        text += (f", but {family} family-wise (Bonferroni over {row['family_tests']} tests: "
                 f"{_interval(row['rho_lo_family'], row['rho_hi_family'])})")
    return text


_NOT_KEYS = {"n_trials", "n_configs", "ra_change", "rho", "rho_lo", "rho_hi", "verdict",
             "measure", "secondary", "predicted", "rho_lo_family", "rho_hi_family",
             "verdict_family", "family_tests"}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.3g}"
    return str(value)


def _interval(lo: float, hi: float) -> str:
    if lo is None or hi is None or np.isnan(lo) or np.isnan(hi):
        return "[no interval]"
    return f"[{lo:.3g}, {hi:.3g}]"
