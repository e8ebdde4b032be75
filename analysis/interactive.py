"""Interactive figures of the report, as HTML fragments for one self-contained page.

Plotly: its figures are plain JSON drawn by one JavaScript bundle that the Python package ships
(plotly.offline.get_plotlyjs), so the page embeds that bundle once and needs no network, hover
shows any per-point text, and it has the parallel-coordinates view built in. (Vega-Lite through
Altair would need three separate JS bundles embedded by hand for offline use.) Each figure is a
<div class="figure" id=...> whose points carry the trial's hyperparameters and metrics as hover
text. Like plots.py, this module only draws prepared tables; statistics happen elsewhere.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from analysis.labels import label
from trainables.schema import HEADLINE_STAT

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf")
# The l1/l2 counts (the findings' axis; comp at kappa ties low ranks) ride along on every point.
HOVER_METRICS = ("final_clean_acc", "clean_acc", "robust_acc", "certified_acc",
                 "certified_acc_relaxed", "measured_gap", "bound_gap",
                 *HEADLINE_STAT.values())
FIGURE_HEIGHT = 420


def script_tag() -> str:
    """The Plotly bundle, inline, once per page."""
    return f'<script type="text/javascript">{get_plotlyjs()}</script>'


def hover_text(frame: pl.DataFrame, hyperparameters: Sequence[str], measures: Sequence[str],
               ) -> list[str]:
    """Per row: trial id, knob and hyperparameters, then compressibility and metrics, with the
    norm and eps the robustness numbers belong to."""
    texts = []
    for row in frame.iter_rows(named=True):
        lines = [f"<b>trial {row['trial_id']}</b>"]
        settings = [f"{k}={_fmt(row[k])}" for k in ("knob", *hyperparameters, "seed")
                    if k != "compression" and k in row and row[k] is not None]
        lines.append(", ".join(dict.fromkeys(settings)))
        if "norm" in row and "eps" in row:
            lines.append(f"attack budget: {row['norm']} eps={_fmt(row['eps'])}")
        lines += [f"{m}={_fmt(row[m])}" for m in (*measures, *HOVER_METRICS)
                  if m in row and _finite(row[m])]
        texts.append("<br>".join(lines))
    return texts


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _panel_keys(frame: pl.DataFrame, keys: Sequence[str]) -> list[dict]:
    rows = frame.select(keys).unique().sort(keys).iter_rows(named=True)
    return list(rows)


def _match(frame: pl.DataFrame, labels: dict) -> pl.DataFrame:
    return frame.filter(*[pl.col(k) == v for k, v in labels.items()]) if labels else frame


def _title(labels: dict) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in labels.items())


def _div(fig: go.Figure, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def ra_vs_comp(final: pl.DataFrame, curves: pl.DataFrame | None, measure: str,
               hyperparameters: Sequence[str]) -> go.Figure:
    """One panel per (norm, eps); per knob a colour. Each trial: attacked RA (an upper bound on
    true RA) with a bar down to its certified accuracy (a lower bound), so the bar is the band
    true RA lies in; the parametric frontier per knob (clipped to [0, 1]) where fitted."""
    panels = _panel_keys(final, ["norm", "eps"])
    cols = min(2, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[_title(p) for p in panels],
                        horizontal_spacing=0.08, vertical_spacing=0.12 / max(1, rows - 1) + 0.05)
    knobs = sorted(final["knob"].unique().to_list())
    relaxed = "certified_acc_relaxed" in final.columns
    for i, labels in enumerate(panels):
        r, c = divmod(i, cols)
        part = _match(final, labels)
        for color, knob in zip(COLORS, knobs):
            sub = part.filter(pl.col("knob") == knob).sort(measure)
            if sub.height == 0:
                continue
            ra = sub["robust_acc"].to_numpy()
            # The bar's lower end: the linear-relaxation certificate where computed (tighter).
            cert = sub["certified_acc"].fill_nan(None)
            if relaxed:
                cert = sub["certified_acc_relaxed"].fill_nan(None).fill_null(cert)
            cert = cert.fill_null(strategy="zero").to_numpy()
            fig.add_trace(go.Scatter(
                x=sub[measure], y=ra, mode="markers", name=f"{knob}: attacked RA",
                legendgroup=knob, showlegend=i == 0, marker={"color": color, "size": 8},
                error_y={"type": "data", "symmetric": False, "array": np.zeros(len(ra)),
                         "arrayminus": np.clip(ra - cert, 0, None), "color": color,
                         "thickness": 1},
                text=hover_text(sub, hyperparameters, [measure]),
                hovertemplate="%{text}<extra></extra>"), row=r + 1, col=c + 1)
            if relaxed and sub["certified_acc_relaxed"].is_finite().any():
                fig.add_trace(go.Scatter(
                    x=sub[measure], y=sub["certified_acc_relaxed"], mode="markers",
                    name=f"{knob}: certified (linear relaxation)", legendgroup=knob,
                    showlegend=i == 0,
                    marker={"color": color, "symbol": "triangle-down-open", "size": 7},
                    hoverinfo="skip"), row=r + 1, col=c + 1)
            if curves is not None and curves.height:
                fit = _match(curves, labels | {"knob": knob}).filter(
                    pl.col("fit") == "parametric")
                if fit.height:
                    fig.add_trace(go.Scatter(
                        x=fit["comp"], y=fit["robust_acc"], mode="lines",
                        line={"color": color, "dash": "dash"}, legendgroup=knob,
                        name=f"{knob}: fit a - b comp^c", showlegend=i == 0,
                        hoverinfo="skip"), row=r + 1, col=c + 1)
        fig.update_xaxes(title_text=label(measure), row=r + 1, col=c + 1)
        fig.update_yaxes(title_text="accuracy (fraction)", range=[-0.02, 1.02],
                         row=r + 1, col=c + 1)
    fig.update_layout(height=FIGURE_HEIGHT * rows, margin={"t": 60},
                      title="Robust accuracy vs compressibility, per knob (bar: certified "
                            "lower bound to attacked upper bound)")
    return fig


def parallel(trials: pl.DataFrame, hyperparameters: Sequence[str], measure: str,
             norm: str, eps: float) -> go.Figure:
    """One line per trial: hyperparameters, then compressibility, then RA at (norm, eps)."""
    dims = []
    for column in ["knob", *[h for h in hyperparameters if h != "compression"], "seed", measure,
                   "robust_acc"]:
        if column not in trials.columns or trials[column].null_count() == trials.height:
            continue
        series = trials[column]
        if series.dtype == pl.String or series.dtype == pl.Boolean:
            values = series.cast(pl.String).fill_null("none")
            cats = sorted(values.unique().to_list())
            codes = [cats.index(v) for v in values]
            dims.append({"label": column, "values": codes, "tickvals": list(range(len(cats))),
                         "ticktext": cats})
        else:
            name = label(column) if column in (measure, "robust_acc") else column
            dims.append({"label": name.split(" (")[0], "values": series.fill_null(np.nan)})
    if "knob" in [d["label"] for d in dims] and len(dims[0]["tickvals"]) == 1:
        dims = dims[1:]  # one knob: an axis with a single value says nothing
    fig = go.Figure(go.Parcoords(
        line={"color": trials["robust_acc"], "colorscale": "Viridis", "showscale": True,
              "cmin": 0, "cmax": 1, "colorbar": {"title": "RA"}},
        dimensions=dims))
    fig.update_layout(height=FIGURE_HEIGHT, margin={"l": 80, "r": 80, "t": 90},
                      title=f"Hyperparameters -> {measure} -> robust accuracy "
                            f"({norm}, eps={_fmt(eps)}); drag on an axis to filter")
    return fig


def pareto(points: pl.DataFrame, measure: str, hyperparameters: Sequence[str]) -> go.Figure:
    """Per norm at its largest eps: every trial, the Pareto-optimal ones joined by a line."""
    panels = _panel_keys(points, ["norm", "eps"])
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[_title(p) for p in panels])
    for i, labels in enumerate(panels):
        part = _match(points, labels)
        rest, front = part.filter(~pl.col("pareto")), part.filter(pl.col("pareto")).sort(measure)
        fig.add_trace(go.Scatter(
            x=rest[measure], y=rest["robust_acc"], mode="markers", name="dominated trial",
            marker={"color": "#bbbbbb", "size": 7}, showlegend=i == 0,
            text=hover_text(rest, hyperparameters, [measure]),
            hovertemplate="%{text}<extra></extra>"), row=1, col=i + 1)
        fig.add_trace(go.Scatter(
            x=front[measure], y=front["robust_acc"], mode="lines+markers",
            name="Pareto-optimal trial", marker={"color": COLORS[3], "size": 9},
            line={"shape": "hv"}, showlegend=i == 0,
            text=hover_text(front, hyperparameters, [measure]),
            hovertemplate="%{text}<extra></extra>"), row=1, col=i + 1)
        fig.update_xaxes(title_text=label(measure), row=1, col=i + 1)
        fig.update_yaxes(title_text=label("robust_acc"), range=[-0.02, 1.02], row=1, col=i + 1)
    fig.update_layout(height=FIGURE_HEIGHT, title="Pareto front: compressibility up, "
                      "robust accuracy up (no other trial is better on both)")
    return fig


def histories(history: pl.DataFrame, hyperparameters: Sequence[str]) -> go.Figure:
    """Training loss, clean and (headline) robust accuracy per epoch, one line per trial."""
    metrics = [m for m in ("train_loss", "clean_acc", "robust_acc") if m in history.columns]
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[label(m) for m in metrics])
    for j, (key, part) in enumerate(sorted(history.partition_by("trial_id", as_dict=True).items())):
        part = part.sort("iteration")
        text = hover_text(part.head(1), hyperparameters, [])[0]
        for i, metric in enumerate(metrics):
            fig.add_trace(go.Scatter(
                x=part["iteration"], y=part[metric], mode="lines+markers",
                name=f"trial {key[0]}", legendgroup=key[0], showlegend=i == 0,
                line={"color": COLORS[j % len(COLORS)], "width": 1},
                hovertemplate=f"{text}<br>epoch %{{x}}: {metric}=%{{y:.4g}}<extra></extra>"),
                row=1, col=i + 1)
            fig.update_xaxes(title_text="epoch", tickformat="d", row=1, col=i + 1)
            if metric != "train_loss":
                fig.update_yaxes(range=[-0.02, 1.02], row=1, col=i + 1)
    fig.update_layout(height=FIGURE_HEIGHT, title="Training histories (click a legend entry "
                      "to hide a trial, double-click to isolate it)")
    return fig


def bound_vs_gap(final: pl.DataFrame, hyperparameters: Sequence[str],
                 measure: str) -> go.Figure | None:
    """Log-log loss-gap bound against the measured CE gap per norm; a certificate lies on or
    above y = x."""
    rows = final.filter((pl.col("measured_gap") > 0) & (pl.col("bound_gap") > 0))
    if rows.height == 0:
        return None
    norms = sorted(rows["norm"].unique().to_list())
    fig = make_subplots(rows=1, cols=len(norms), subplot_titles=norms)
    for i, norm in enumerate(norms):
        part = rows.filter(pl.col("norm") == norm)
        eps_values = sorted(part["eps"].unique().to_list())
        for color, eps in zip(COLORS, eps_values):
            sub = part.filter(pl.col("eps") == eps)
            fig.add_trace(go.Scatter(
                x=sub["measured_gap"], y=sub["bound_gap"], mode="markers",
                name=f"{norm} eps={_fmt(eps)}", marker={"color": color, "size": 7},
                text=hover_text(sub, hyperparameters, [measure]),
                hovertemplate="%{text}<extra></extra>"), row=1, col=i + 1)
        lo, hi = float(part["measured_gap"].min()), float(part["bound_gap"].max())
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x",
                                 line={"color": "black", "width": 1}, showlegend=i == 0,
                                 hoverinfo="skip"), row=1, col=i + 1)
        fig.update_xaxes(type="log", title_text=label("measured_gap"), row=1, col=i + 1)
        fig.update_yaxes(type="log", title_text=label("bound_gap"), row=1, col=i + 1)
    fig.update_layout(height=FIGURE_HEIGHT, title="Loss-gap bound vs measured CE gap "
                      "(every point must lie on or above y = x)")
    return fig


def figure_html(figures: Sequence[tuple[str, str, go.Figure | None]]) -> str:
    """The figures as <div>s, each after a heading; a skipped figure gets a sentence."""
    out = []
    for div_id, caption, fig in figures:
        out.append(f"<h3>{html.escape(caption)}</h3>")
        if fig is None:
            out.append(f"<p>Skipped: the run has no data for {html.escape(caption)}.</p>")
        else:
            out.append(f'<div class="figure" id="fig-{div_id}">{_div(fig, div_id)}</div>')
    return "\n".join(out)
