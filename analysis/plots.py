"""Figures of the report. Each function takes prepared tables (the ones written beside the
figure as CSV) and only draws; no statistics happen here. Uses the Agg backend through
matplotlib.figure.Figure, so no display and no pyplot global state are involved."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from analysis.band import RELAXED
from analysis.labels import label

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
          "tab:pink", "tab:olive", "tab:cyan", "tab:gray")
PANEL_W, PANEL_H = 4.2, 3.3


def _panels(n: int, max_cols: int = 4, title_lines: int = 1) -> tuple[Figure, list[Axes]]:
    cols = max(1, min(n, max_cols))
    rows = max(1, math.ceil(n / cols))
    title_h = 0.18 * title_lines + 0.1  # inches above each panel
    width, height = PANEL_W * cols, (PANEL_H + title_h) * rows
    fig = Figure(figsize=(width, height))
    # Fixed margins in inches: a layout engine costs seconds per figure on a busy machine.
    fig.subplots_adjust(left=0.75 / width, right=1 - 0.15 / width, bottom=0.5 / height,
                        top=1 - title_h / height, wspace=0.9 / (PANEL_W - 0.9),
                        hspace=(0.55 + title_h) / (PANEL_H - 0.55))
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _save(fig: Figure, path: Path) -> None:
    # readable when a paper or docs page scales it down; tight: wrapped axis titles stay inside
    fig.savefig(path, dpi=150, bbox_inches="tight", pad_inches=0.05)


def _groups(frame: pl.DataFrame, keys: Sequence[str]) -> list[tuple[dict, pl.DataFrame]]:
    if not keys:
        return [({}, frame)]
    parts = frame.partition_by(list(keys), as_dict=True, maintain_order=True)
    return sorted(((dict(zip(keys, k)), part) for k, part in parts.items()),
                  key=lambda kv: [str(v) for v in kv[0].values()])


def _wrapped(column: str) -> str:
    """An axis title in words, wrapped so side-by-side panels do not overprint each other."""
    return textwrap.fill(label(column), 42)


def _title(labels: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in labels.items())


def _err(frame: pl.DataFrame, column: str) -> np.ndarray | None:
    """Asymmetric error bars from column_lo / column_hi (None when no interval exists)."""
    mid = frame[column].to_numpy()
    lo, hi = frame[f"{column}_lo"].to_numpy(), frame[f"{column}_hi"].to_numpy()
    if np.all(np.isnan(lo.astype(float))):
        return None
    return np.vstack([np.nan_to_num(mid - lo), np.nan_to_num(hi - mid)])


def draw_band(table: pl.DataFrame, measure: str, path: Path) -> None:
    """Robust accuracy vs compressibility per (norm, eps): attacked (upper bound, per knob colour)
    joined by a vertical bar to certified (lower bound), clean accuracy in grey; one point per
    configuration, seed means with confidence intervals."""
    panels = _groups(table, ["norm", "eps"])
    fig, axes = _panels(len(panels))
    knobs = sorted(table["knob"].unique().to_list())
    for ax, (labels, part) in zip(axes, panels):
        x = part[measure].to_numpy()
        xerr = _err(part, measure)
        # The band's lower edge: the linear-relaxation certificate where computed (tighter).
        lower = part[RELAXED].fill_nan(None).fill_null(part["certified_acc"]) \
            if RELAXED in part.columns else part["certified_acc"]
        ax.vlines(x, lower, part["robust_acc"], color="0.75", lw=3, zorder=1,
                  label="band (certified, relaxed where computed, to attacked)")
        if RELAXED in part.columns and part[RELAXED].fill_nan(None).is_not_null().any():
            ax.errorbar(x, part[RELAXED], yerr=_err(part, RELAXED), fmt="^", color="0.2",
                        mfc="none", ms=4, label="certified (linear relaxation)", zorder=2)
        ax.errorbar(x, part["clean_acc"], yerr=_err(part, "clean_acc"), xerr=xerr, fmt="s",
                    color="0.45", ms=4, label="clean", zorder=2)
        ax.errorbar(x, part["certified_acc"], yerr=_err(part, "certified_acc"), fmt="v",
                    color="0.2", ms=4, label="certified (global Lipschitz)", zorder=2)
        for color, name in zip(COLORS, knobs):
            sub = part.filter(pl.col("knob") == name)
            ax.errorbar(sub[measure], sub["robust_acc"], yerr=_err(sub, "robust_acc"),
                        xerr=_err(sub, measure), fmt="o", color=color, ms=5, zorder=3,
                        label=f"attacked (upper), {name}")
            if "config_label" in sub.columns:
                for xi, yi, text in zip(sub[measure], sub["robust_acc"], sub["config_label"]):
                    ax.annotate(text, (xi, yi), xytext=(3, 3), textcoords="offset points",
                                fontsize=5, color=color)
        ax.set(title=_title(labels), xlabel=_wrapped(measure), ylabel="accuracy (fraction)",
               ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower left")
    _save(fig, path)


def draw_frontier(
    points: pl.DataFrame,
    curves: pl.DataFrame,
    panel_keys: Sequence[str],
    path: Path,
    xlabel: str,
) -> None:
    """Trials (Pareto set outlined), isotonic fit (linear between its knots) and parametric fit
    with its bootstrap band, one colour per value of the 'setting' column."""
    panels = _groups(points, panel_keys)
    fig, axes = _panels(len(panels))
    settings = sorted(points["setting"].unique().to_list())
    for ax, (labels, part) in zip(axes, panels):
        match = [pl.col(k) == v for k, v in labels.items()]
        fits = curves.filter(*match) if match else curves
        for color, setting in zip(COLORS, settings):
            pts = part.filter(pl.col("setting") == setting).sort("comp")
            if pts.height == 0:
                continue
            suffix = f" ({setting})" if setting else ""
            ax.scatter(pts["comp"], pts["robust_acc"], s=14, color=color, alpha=0.5,
                       label=f"trials{suffix}")
            front = pts.filter(pl.col("pareto"))
            ax.plot(front["comp"], front["robust_acc"], "o", mfc="none", mec="k", ms=7,
                    label="Pareto set" if color == COLORS[0] else None)
            fit = fits.filter(pl.col("setting") == setting)
            iso = fit.filter(pl.col("fit") == "isotonic")
            ax.plot(iso["comp"], iso["robust_acc"], "-", color=color, lw=1.2,
                    label=f"isotonic{suffix}")
            par = fit.filter(pl.col("fit") == "parametric")
            if par.height:
                ax.plot(par["comp"], par["robust_acc"], "--", color=color, lw=1.5,
                        label=f"a - b comp^c{suffix}")
                ax.fill_between(par["comp"].to_numpy(), par["band_lo"].to_numpy(),
                                par["band_hi"].to_numpy(), color=color, alpha=0.2,
                                label="bootstrap band" if color == COLORS[0] else None)
        ax.set(title=_title(labels), xlabel=_wrapped(xlabel),
               ylabel="robust accuracy (attacked, fraction)", ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower left")
    _save(fig, path)


GAP_STYLES = {
    "bound_gap": ("o", "bound (certificate)"),
    "align_est_gap": ("x", "alignment-aware estimate"),
    "first_order_gap": ("+", "first-order estimate"),
}


def draw_bound(table: pl.DataFrame, titles: dict[str, str], path: Path) -> None:
    """Log-log: each gap quantity against the measured CE gap, per norm; y = x for reference
    (a bound must lie on or above it)."""
    panels = _groups(table, ["norm"])
    lines = max((t.count("\n") + 1 for t in titles.values()), default=1)
    fig, axes = _panels(len(panels), max_cols=2, title_lines=lines)
    for ax, (labels, part) in zip(axes, panels):
        positive = part.filter(pl.col("measured_gap") > 0)
        measured = positive["measured_gap"].to_numpy()
        for (column, (marker, name)), color in zip(GAP_STYLES.items(), COLORS):
            values = positive[column].to_numpy()
            ok = np.isfinite(values) & (values > 0)
            ax.scatter(measured[ok], values[ok], marker=marker, s=18, color=color, label=name)
        if measured.size:
            span = np.array([measured.min(), measured.max()])
            ax.plot(span, span, "k-", lw=0.8, label="y = measured")
        ax.set(xscale="log", yscale="log", xlabel="measured CE gap (adv - clean)",
               ylabel="predicted gap")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap on short spans
        ax.set_title(titles.get(labels["norm"], labels["norm"]), fontsize=8)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    _save(fig, path)


def draw_alignment(table: pl.DataFrame, measure: str, path: Path) -> None:
    """Alignment of adversarial perturbations with the first layer's top direction vs the mean
    over other directions, against compressibility; one panel per norm (its largest eps)."""
    panels = _groups(table, ["norm", "eps"])
    fig, axes = _panels(len(panels), max_cols=2)
    for ax, (labels, part) in zip(axes, panels):
        x, xerr = part[measure], _err(part, measure)
        ax.errorbar(x, part["align_top"], yerr=_err(part, "align_top"), xerr=xerr, fmt="o",
                    color=COLORS[3], label="top direction")
        ax.errorbar(x, part["align_rest"], yerr=_err(part, "align_rest"), xerr=xerr, fmt="s",
                    color="0.5", label="other directions (baseline)")
        ax.set(title=_title(labels), xlabel=_wrapped(measure), ylabel="|<u, delta>| / ||delta||_2")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, path)


def draw_layers(table: pl.DataFrame, kappas: Sequence[float], prefixes: Sequence[str],
                path: Path) -> None:
    """Per-layer compressibility curves (value at each kept fraction kappa) and effective /
    stable rank, for the least and the most compressed trial ('role' column)."""
    fig, axes = _panels(len(prefixes) + 1)
    roles = sorted(table["role"].unique().to_list())
    styles = dict(zip(roles, ("-", "--", ":")))
    for ax, prefix in zip(axes, prefixes):
        for (labels, part), color in zip(_groups(table, ["layer_index", "layer"]), COLORS):
            for role in roles:
                row = part.filter(pl.col("role") == role)
                if row.height:
                    values = [row[f"{prefix}_k{round(k * 100):02d}"][0] for k in kappas]
                    ax.plot(kappas, values, styles[role], marker="o", color=color,
                            label=f"{labels['layer']} ({role})")
        ax.set(title=prefix, xlabel="kept fraction kappa", ylabel="comp_k", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6)
    ax = axes[-1]
    layers = sorted(table["layer_index"].unique().to_list())
    width = 0.8 / max(1, 2 * len(roles))
    for j, role in enumerate(roles):
        part = table.filter(pl.col("role") == role).sort("layer_index")
        index = np.array(part["layer_index"].to_list(), dtype=float)
        for k, (column, hatch) in enumerate((("effective_rank", ""), ("stable_rank", "//"))):
            offset = (2 * j + k - len(roles) + 0.5) * width
            ax.bar(index + offset, part[column], width, hatch=hatch, color=COLORS[j],
                   alpha=0.7, label=f"{column} ({role})")
    ax.set(title="effective and stable rank", xlabel="layer index", xticks=layers)
    ax.legend(fontsize=6)
    _save(fig, path)


def draw_uap(by_comp: pl.DataFrame, by_scale: pl.DataFrame | None, measure: str,
             path: Path) -> None:
    """UAP fooling rate vs compressibility (one colour per norm, eps) next to the
    weight-scaling control: fooling rate vs weight_scale, one line per 'series' (the same
    configuration apart from its weight scale)."""
    fig, axes = _panels(2 if by_scale is not None else 1, max_cols=2)
    for color, (labels, part) in zip(COLORS, _groups(by_comp, ["norm", "eps"])):
        axes[0].errorbar(part[measure], part["fooling_rate"], yerr=_err(part, "fooling_rate"),
                         xerr=_err(part, measure), fmt="o", color=color, label=_title(labels))
    axes[0].set(title="UAP fooling rate vs compressibility", xlabel=_wrapped(measure),
                ylabel="fooling rate", ylim=(-0.02, 1.02))
    axes[0].legend(fontsize=7)
    axes[0].grid(alpha=0.3)
    if by_scale is not None:
        series = _groups(by_scale, ["series"])
        for j, (labels, part) in enumerate(series):
            part = part.sort("weight_scale")
            axes[1].errorbar(part["weight_scale"], part["fooling_rate"],
                             yerr=_err(part, "fooling_rate"), fmt="o-",
                             color=COLORS[j % len(COLORS)],
                             label=labels["series"] if j < len(COLORS) else None)
        axes[1].set(title="control: weight scaling", xlabel="weight_scale",
                    ylabel="fooling rate", ylim=(-0.02, 1.02))
        axes[1].legend(fontsize=6)
        axes[1].grid(alpha=0.3)
    _save(fig, path)
