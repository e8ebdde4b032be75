"""The trend the paper predicts: robust accuracy falls as compressibility rises, while clean
accuracy stays roughly flat. Spearman correlations per knob, setting, norm and eps, for RA, SA and
RA/SA, over all trials and over the trials near the best clean accuracy (THEORY.md: clean accuracy
collapsing at extreme compression would otherwise confound the trend)."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from analysis.stats import spearman
from analysis.views import COMP_MEASURES, COMPRESSIBLE_DIRECTION

# Paper's names: RA robust accuracy, SA standard (clean) accuracy on the same samples.
TREND_METRICS: dict[str, str] = {"RA": "robust_acc", "SA": "clean_acc", "RA/SA": "ra_over_sa"}
NEAR_BEST_CLEAN = 0.02  # "within 2 points" of the best final clean accuracy, accuracy in [0, 1]


def near_best_clean(
    final: pl.LazyFrame, by: Sequence[str], margin: float = NEAR_BEST_CLEAN
) -> pl.LazyFrame:
    """Rows whose trial's final clean accuracy is within `margin` of the best in its group."""
    best = pl.col("final_clean_acc").max()
    best = best.over(list(by)) if by else best
    return final.filter(pl.col("final_clean_acc") >= best - margin)


def trend_table(
    final: pl.LazyFrame,
    settings: Sequence[str] = (),
    level: float = 0.95,
    margin: float = NEAR_BEST_CLEAN,
    measures: Sequence[str] = COMP_MEASURES,
) -> pl.DataFrame:
    """One row per (knob, settings, norm, eps, measure, subset, metric): n, Spearman rho, its
    p-value and confidence interval, the metric's mean, and `predicted`, the sign the paper
    predicts for RA and RA/SA (RA falls as compressibility rises: -1 for comp at kappa, +1 for
    an l1/l2 ratio, which is lower for a more compressible network). Knobs are never pooled:
    two knobs can move compressibility and robustness in opposite directions, and a pooled rho
    would average them into a number neither knob shows. Measures `final` lacks are skipped."""
    frame = final.collect()
    measures = [m for m in measures if m in frame.columns]
    group = ["knob", *settings, "norm", "eps"]
    subsets = {
        "all": frame,
        "near_best_clean": near_best_clean(frame.lazy(), group, margin).collect(),
    }
    rows = []
    for subset, data in subsets.items():
        for key, part in data.partition_by(group, as_dict=True, maintain_order=True).items():
            labels = dict(zip(group, key))
            for measure in measures:
                for metric, column in TREND_METRICS.items():
                    corr = spearman(part[measure].to_numpy(), part[column].to_numpy(), level)
                    rows.append(
                        labels
                        | {"measure": measure, "subset": subset, "metric": metric,
                           "predicted": -COMPRESSIBLE_DIRECTION.get(measure, 0)}
                        | {"n": corr.n, "rho": corr.r, "p_value": corr.p_value}
                        | {"ci_low": corr.ci_low, "ci_high": corr.ci_high}
                        | {"mean": part[column].mean()}
                    )
    if not rows:
        return pl.DataFrame()
    return pl.DataFrame(rows).sort(group + ["measure", "subset", "metric"], nulls_last=True)
