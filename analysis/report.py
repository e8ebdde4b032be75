"""The run report: `python -m analysis.report RUN_DIR` writes RUN_DIR/report/ with index.html
(figures referenced by relative path, tables inline), report.md, figures/*.png and the CSV table
behind every figure in tables/. A figure whose data the run lacks is skipped with a sentence."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import scipy

from analysis import interactive, plots
from analysis._cli import OneLineParser, fail
from analysis._render import Section, html_page, markdown
from analysis.band import band_table, band_violations
from analysis.bound import (
    GAP_QUANTITIES,
    bound_correlations,
    bound_factors,
    factor_correlations,
    radius_comparison,
    violations,
)
from analysis.errors import ReportError
from analysis.frontier import PARAMETERS, fit_frontiers, pareto_front
from analysis.store import Tables, load
from analysis.summary import (
    CONTRADICTS,
    HOLDS,
    INCONCLUSIVE,
    LEVEL,
    REFERENCE,
    comp_measure,
    eval_count,
    headline_measure,
    knob_effect_table,
    pareto_trials,
    sentence,
)
from analysis.trend import NEAR_BEST_CLEAN, trend_table
from analysis.labels import label
from analysis.views import (
    ANALYSED_STATUSES,
    COMP_MEASURES,
    COMPRESSIBLE_DIRECTION,
    config_columns,
    final_robustness,
    seed_means,
    trial_columns,
    uap_robustness,
    varying_settings,
)
from trainables import schema
from trainables.errors import SweepError

REPORT_DIR = schema.REPORT_DIR
# The paper's compressibility at kappa: the x-axis of the figures whose fitted model is defined on
# comp in [0, 1] (frontier a - b * comp^c, alignment, UAP). The findings use the space's
# non-saturating axis (summary.headline_measure) instead.
HEADLINE_MEASURE = "spectral_comp"


@dataclass(frozen=True)
class _Output:
    root: Path

    def table(self, name: str, frame: pl.DataFrame) -> str:
        frame.write_csv(self.root / "tables" / f"{name}.csv")
        return f"tables/{name}.csv"

    def figure(self, name: str) -> tuple[Path, str]:
        return self.root / "figures" / f"{name}.png", f"figures/{name}.png"


def write_report(run_dir: str | os.PathLike[str], n_boot: int = 200, seed: int = 0) -> Path:
    """Validate the store, compute every table, draw every figure; returns report/index.html."""
    run_dir = Path(run_dir)
    tables = load(run_dir)  # raises a one-line StoreError before anything is written
    out = _Output(run_dir / REPORT_DIR)
    _check_writable(out.root)
    for sub, pattern in (("figures", "*.png"), ("tables", "*.csv")):
        (out.root / sub).mkdir(parents=True, exist_ok=True)
        for stale in (out.root / sub).glob(pattern):
            stale.unlink()
    settings = varying_settings(tables)
    final = final_robustness(tables).with_columns(_setting_label(settings)).collect()
    comp = comp_measure(tables)
    measure = headline_measure(tables)
    if final.height and not _usable(final, measure):  # a store before schema 3 lacks the ratios
        measure = comp
    sections = []
    if final.height:
        sections += _findings(tables, final, settings, measure, comp, out)
    sections.append(_summary(tables, out))
    if final.height:
        sections.append(_interactive(tables, final, settings, comp, n_boot, seed))
    if final.height == 0:
        sections.append(Section("Robustness", [
            ("No completed trial has robustness rows yet, so the accuracy, frontier, bound, "
            "trend and alignment figures are skipped.")
        ]))
    else:
        config = config_columns(tables)
        # The headline axis first: comp at kappa piles every rank <= 26 of a 256-wide layer at 1.
        sections += [_band(final, config, m, out) for m in dict.fromkeys((measure, *COMP_MEASURES))]
        sections += [_frontier(final, config, settings, m, n_boot, seed, out)
                     for m in COMP_MEASURES]
        if settings:
            sections.append(_frontier_per_setting(final, config, settings, n_boot, seed, out))
        sections += [_bound(tables, final, out), _radii(final, out),
                     _trend(final, settings, measure, out),
                     _alignment(final, config, out)]
        if tables.runs[0].spec.get("space") == "posthoc_audit":
            sections.insert(1, _posthoc(final, out))
    sections += [_layers(tables, out), _uap(tables, out)]
    title = f"Compressibility vs robustness: {', '.join(r.run_id for r in tables.runs)}"
    spec = tables.runs[0].spec
    intro = [(f"space {spec.get('space', '?')}, scale {spec.get('scale', '?')}; "
             f"run directory {run_dir}. Accuracies are fractions in [0, 1]."),
             *[provenance(run.run_id, run.spec) for run in tables.runs]]
    (out.root / "report.md").write_text(markdown(title, intro, sections))
    index = out.root / "index.html"
    head = interactive.script_tag() if final.height else ""
    index.write_text(html_page(title, intro, sections, head=head))
    return index


def provenance(run_id: str, spec: dict) -> str:
    """One sentence: the code and libraries that produced a run (run.json's "environment", written
    at launch by trainables.provenance) and those that analysed it."""
    analysed = (f"analysed with polars {pl.__version__}, numpy {np.__version__}, "
                f"scipy {scipy.__version__}")
    env = spec.get("environment")
    if not isinstance(env, dict):
        return f"Run {run_id}: its run.json records no environment (an older launch); {analysed}."
    code = env.get("code") or {}
    commit = f"code {str(code['commit'])[:12]}" if code.get("commit") else "code outside git"
    if code.get("dirty"):
        commit += " with uncommitted changes"
    packages = ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items() if v)
    return (f"Run {run_id}: {commit}, python {env.get('python', '?')}, {packages}; {analysed}.")


def _check_writable(root: Path) -> None:
    """report/ and its subfolders must be (or become) writable directories; checked before the
    first write so a bad location leaves nothing half-written."""
    for path in (root, root / "figures", root / "tables"):
        if path.exists() and not path.is_dir():
            raise ReportError(
                f"{path} is a file, not a directory; move it away so the report can be written"
            )
    probe = root
    while not probe.exists():
        probe = probe.parent
    writable = all(os.access(p, os.W_OK | os.X_OK) for p in (probe, root / "figures",
                                                           root / "tables") if p.exists())
    if not writable:
        raise ReportError(
            f"{root} is not writable; fix its permissions or copy the run to a writable place"
        )


def _setting_label(settings: list[str]) -> pl.Expr:
    if not settings:
        return pl.lit("").alias("setting")
    parts = [pl.format(f"{name}={{}}", pl.col(name).cast(pl.String)) for name in settings]
    return pl.concat_str(parts, separator=", ").fill_null("").alias("setting")


def _knob_setting_label(settings: list[str]) -> pl.Expr:
    """The per-fit label of the frontier figures: the knob, then the swept setting if any."""
    knob = pl.format("knob={}", pl.col("knob").cast(pl.String))
    if not settings:
        return knob.alias("setting")
    return pl.concat_str([knob, _setting_label(settings)], separator=", ").alias("setting")


def _usable(frame: pl.DataFrame, column: str) -> bool:
    values = frame[column]
    return values.drop_nulls().drop_nans().len() > 0 if values.dtype.is_float() else False


def _findings(tables: Tables, final: pl.DataFrame, settings: list[str], measure: str,
              comp: str, out: _Output) -> list[Section]:
    """The findings first: effect per knob x setting x norm x eps with the verdict, then the
    Pareto-optimal trials."""
    n_eval = eval_count(tables)
    effects = knob_effect_table(final, measure, config_columns(tables), settings, n_eval,
                                secondary=comp)
    def tally(column: str) -> str:
        return ", ".join(f"{effects.filter(pl.col(column) == v).height} {v}"
                         for v in (HOLDS, CONTRADICTS, INCONCLUSIVE))

    references = effects.filter(pl.col("verdict") == REFERENCE).height if effects.height else 0
    tests = effects["family_tests"][0] if effects.height else 0
    family = (f" Family-wise over the {tests} tests (Bonferroni: each rho interval at "
              f"{100 * (1 - (1 - LEVEL) / tests):.3g}%): {tally('verdict_family')}; a sentence says where the "
              "two readings differ." if tests > 1 else "")
    counted = (f"RA intervals: 95% Clopper-Pearson on {n_eval} attacked samples per trial; a "
               "configuration with several seeds shows the mean of its trials' interval ends"
               if n_eval else
               "RA intervals: none (run.json does not say how many samples were attacked)")
    if COMPRESSIBLE_DIRECTION[measure] < 0:
        axis = (f"The axis is {measure}, the {label(measure)}: a continuous count that orders "
                f"every rank, where {comp} (compressibility at kappa 0.1, shown in brackets as a "
                "secondary column) is 1 for every rank <= 10% of a layer's width. So the "
                "prediction is a POSITIVE rho between RA and it: holds when the interval lies "
                "entirely above 0, contradicts when entirely below")
    else:
        axis = (f"The axis is {measure}, the {label(measure)}; the prediction is a negative rho: "
                "holds when the interval lies entirely below 0, contradicts when entirely above")
    lead = [
        (f"The paper predicts that robust accuracy (RA) falls as compressibility rises. Tested "
         "per knob, setting, norm and eps with Spearman's rho across trials (95% Fisher-z "
         f"interval). {axis}, inconclusive otherwise. A knob of the other family is judged on "
         "its own count (spectral knobs: spectral_l1l2; neuron knobs: neuron_l1l2_l1 under "
         "L-inf, neuron_l1l2_l2 under L2; the measure column says which). Verdicts: "
         + (tally("verdict") if effects.height else "none")
         + (f"; {references} reference row(s), with one configuration (the uncompressed "
            "baseline or a single strength) and so no trend to test" if references else "")
         + f".{family} {counted}. Each line: RA of the least compressed configuration -> RA "
         "of the most compressed."),
        *[sentence(row, n_eval) for row in effects.iter_rows(named=True)],
    ]
    shown = effects.select([c for c in effects.columns if not c.endswith("_trial")
                            and c not in ("measure", "secondary", "least_seeds",
                                          "most_seeds")])
    findings = Section("Findings", lead, tables=[
        ("Effect of compression on robust accuracy", shown, out.table("findings", effects))])
    front = pareto_trials(final, measure, [*tables.hyperparameters, *settings])
    pareto = Section("Pareto-optimal trials", [
        (f"Trials no other trial beats on both compressibility ({measure} "
         f"{'lower' if COMPRESSIBLE_DIRECTION[measure] < 0 else 'higher'}) and RA (higher), per "
         "norm at its largest eps, with their settings.")],
        tables=[("Pareto-optimal trials", front, out.table("pareto_trials", front))])
    return [findings, pareto]


def _interactive(tables: Tables, final: pl.DataFrame, settings: list[str], measure: str,
                 n_boot: int, seed: int) -> Section:
    hyper = [h for h in tables.hyperparameters if h in final.columns]
    figures: list = []
    if _usable(final, measure):
        front = fit_frontiers(final.lazy(), measure, ["knob", "norm", "eps", *settings],
                              config_columns(tables), n_boot=n_boot, seed=seed)
        figures.append(("ra_vs_comp", "Robust accuracy vs compressibility per knob",
                        interactive.ra_vs_comp(final, front.curves, measure, hyper)))
        norm = final["norm"].sort()[0]
        eps = final.filter(pl.col("norm") == norm)["eps"].max()
        at = final.filter((pl.col("norm") == norm) & (pl.col("eps") == eps))
        figures.append(("parallel", "Parallel coordinates",
                        interactive.parallel(at, hyper, measure, norm, eps)))
        largest = final.filter(pl.col("eps") == pl.col("eps").max().over("norm"))
        points = pareto_front(largest.lazy(), measure, "robust_acc", ["norm", "eps"]).collect()
        figures.append(("pareto", "Pareto front", interactive.pareto(points, measure, hyper)))
    analysed = final.select("run_id", "trial_id", "knob", "seed", *hyper).unique(
        ["run_id", "trial_id"])
    history = tables.history.collect().join(analysed, on=["run_id", "trial_id"])
    figures.append(("histories", "Training histories",
                    interactive.histories(history, hyper) if history.height else None))
    bound = (interactive.bound_vs_gap(final, hyper, measure)
             if _usable(final, "measured_gap") and _usable(final, "bound_gap") else None)
    figures.append(("bound", "Loss-gap bound vs measured gap", bound))
    return Section("Interactive figures", [
        "Hover a point for its trial's hyperparameters and metrics; drag to zoom, double-click "
        "to reset. The PNG figures below are the same data for papers and docs."],
        html=interactive.figure_html(figures))


def _summary(tables: Tables, out: _Output) -> Section:
    counts = tables.trials.group_by("status").agg(pl.len().alias("trials")).sort("status").collect()
    rows = pl.DataFrame({
        "table": list(tables.frames()),
        "rows": [f.select(pl.len()).collect().item() for f in tables.frames().values()],
    })
    bound_bad = violations(tables).collect()
    band_bad = band_violations(tables).collect()
    section = Section("Invariant checks and run summary", [
        (f"Analysed: trials with status {', '.join(ANALYSED_STATUSES)}, at their "
        "last evaluated epoch; attacks at the same (trial, norm, eps) are combined by taking the "
        "strongest one's row (lowest robust accuracy, with its 95% interval and sample count; "
        "each attack is an upper bound on true robust accuracy)."),
        (f"Invariant checks over every robustness row: {bound_bad.height} row(s) with measured "
        f"CE gap above the loss-gap bound, {band_bad.height} row(s) breaking certified <= "
        "attacked <= clean. Both must be 0; a nonzero count is a bug in the trial's metrics."),
    ])
    section.tables = [
        ("Trials by status", counts, out.table("trials_by_status", counts)),
        ("Rows per table", rows, out.table("rows_per_table", rows)),
    ]
    for name, bad in (("bound_violations", bound_bad), ("band_violations", band_bad)):
        if bad.height:
            section.tables.append((name.replace("_", " "), bad, out.table(name, bad)))
    return section


def _band(final: pl.DataFrame, config: list[str], measure: str, out: _Output) -> Section:
    title = f"Robust accuracy vs {measure}"
    if not _usable(final, measure):
        return Section(title, [f"Skipped: no trial reports {measure}."])
    table = band_table(final.lazy(), config, measure).collect()
    varying = [c for c in config if c not in ("space", "compression") and c in table.columns
               and table[c].n_unique() > 1]
    if varying:  # every configuration labelled on the figure
        table = table.with_columns(pl.concat_str(
            [pl.format(f"{c}={{}}", pl.col(c).cast(pl.String)) for c in varying],
            separator=" ").fill_null("").alias("config_label"))
    path, rel = out.figure(f"robust_vs_{measure}")
    plots.draw_band(table, measure, path)
    return Section(title, [
        ("One point per configuration (mean over seeds, bars are 95% t-intervals over seeds). "
        "The grey bar spans certified robust accuracy (a lower bound on true robust accuracy: "
        "the linear relaxation where the final protocol computed it, else the global "
        "Lipschitz product) to attacked robust accuracy (an upper bound: the strongest "
        "attack); clean accuracy on the same samples is shown for reference.")
    ], rel, [("Seed means behind the figure", None, out.table(f"band_{measure}", table))])


def _frontier(final, config, settings, measure, n_boot, seed, out) -> Section:
    title = f"Frontier: robust accuracy vs {measure}"
    if not _usable(final, measure):
        return Section(title, [f"Skipped: no trial reports {measure}."])
    # one fit per knob: knobs may move compressibility in opposite directions
    front = fit_frontiers(final.lazy(), measure, ["knob", "norm", "eps", *settings], config,
                          n_boot=n_boot, seed=seed)
    points = front.points.with_columns(_knob_setting_label(settings))
    curves = front.curves.with_columns(_knob_setting_label(settings))
    path, rel = out.figure(f"frontier_{measure}")
    plots.draw_frontier(points, curves, ["norm", "eps"], path, measure)
    params = front.parameters
    shown = params.select(
        "knob", "norm", "eps", *settings, "n_trials", "n_configs", "resampled",
        *[c for p in PARAMETERS for c in (p, f"{p}_lo", f"{p}_hi")], "not_identified",
        "rmse_parametric", "rmse_isotonic",
    )
    out.table(f"frontier_points_{measure}", points)
    out.table(f"frontier_curves_{measure}", curves)
    return Section(title, [
        ("One fit per knob (never pooled across knobs). Pareto set over (compressibility up, "
        "robust accuracy up): outlined points. Isotonic "
        "fit: the least-squares non-increasing curve. Parametric fit: robust_acc = a - b * "
        "comp^c (operator norms grow with compressibility and the Lipschitz bound multiplies "
        "them over layers, so the loss is modelled as a power), fitted by bounded least squares "
        "(scipy.optimize.least_squares; a in [0, 1], b in [0, 10], c in [0.05, 50]); a "
        "parameter whose interval reaches a bound is listed under not_identified: the data do "
        "not determine it. Curves and bands are clipped to [0, 1]. Bands and parameter "
        f"intervals: "
        f"{n_boot} bootstrap refits resampling seeds within each configuration (or trials, "
        "where every configuration has one seed: column 'resampled'), 95% percentile intervals."),
    ], rel, [("Fitted parameters", shown, out.table(f"frontier_parameters_{measure}", shown))])


def _frontier_per_setting(final, config, settings, n_boot, seed, out) -> Section:
    title = "Frontier per training setting"
    norm = final["norm"].sort()[0]
    eps = final.filter(pl.col("norm") == norm)["eps"].max()
    part = final.filter((pl.col("norm") == norm) & (pl.col("eps") == eps))
    front = fit_frontiers(part.lazy(), HEADLINE_MEASURE, ["knob", "norm", "eps", *settings],
                          config, n_boot=n_boot, seed=seed)
    # a panel per training setting, a colour (and a fit) per knob
    labels = [_setting_label(settings).alias("trained with"), _knob_setting_label([])]
    points = front.points.with_columns(labels)
    curves = front.curves.with_columns(labels)
    path, rel = out.figure("frontier_per_setting")
    plots.draw_frontier(points, curves, ["trained with"], path, HEADLINE_MEASURE)
    return Section(title, [
        (f"The frontier of {HEADLINE_MEASURE} at {norm}, eps={eps:g}, one panel per value of "
        f"the swept setting(s) {', '.join(settings)}; parameters are in the frontier tables.")
    ], rel, [("Points", None, out.table("frontier_per_setting", points))])


def _bound(tables: Tables, final: pl.DataFrame, out: _Output) -> Section:
    title = "Loss-gap bound vs measured CE gap"
    if not _usable(final, "measured_gap") or not _usable(final, "bound_gap"):
        return Section(title, ["Skipped: no trial reports measured_gap and bound_gap."])
    points = final.select("run_id", "trial_id", "norm", "eps", "measured_gap", *GAP_QUANTITIES)
    corr = bound_correlations(final.lazy())
    factors = factor_correlations(bound_factors(tables))
    n_bad = violations(tables).select(pl.len()).collect().item()
    titles = {}
    for norm in sorted(points["norm"].unique().to_list()):
        eps = points.filter(pl.col("norm") == norm)["eps"].max()
        rows = corr.filter((pl.col("subset") == "all") & (pl.col("norm") == norm)
                           & (pl.col("eps") == eps))
        parts = []
        for row in rows.iter_rows(named=True):
            label = "bound" if row["kind"] == "bound" else f"{row['quantity']} (estimate)"
            parts.append(f"{label}: rho_s={row['spearman_r']:.2f} "
                         f"[{row['spearman_ci_low']:.2f}, {row['spearman_ci_high']:.2f}], "
                         f"r={row['pearson_r']:.2f}")
        titles[norm] = f"{norm}, all eps; correlations at eps={eps:g} (n={rows['n'][0]})\n" + (
            "\n".join(parts))
    path, rel = out.figure("bound_vs_measured")
    plots.draw_bound(points, titles, path)
    return Section(title, [
        ("bound_gap = G_p ||C|| Lhat_p eps is a certificate: every point must lie on or above "
        f"y = x; {n_bad} violation(s) found over all rows. align_est_gap and first_order_gap are "
        "data-dependent estimates, not bounds. Correlations are across trials at one (norm, "
        "eps), never pooled over eps (the common eps scaling would inflate them), on the "
        "rank-varied trials (compression none or rank, the paper's setting; subset rank_varied) "
        "and on all trials (subset all; the figure titles). Spearman intervals: Fisher z with "
        "the Fieller standard error; Pearson: "
        "Fisher z. ratio_* = quantity / measured gap (tightness; the bound's is >= 1)."),
        ("Which factor loses the ordering: the global bound is G_p ||C||_{p->p} * Lhat_p * eps "
         "with Lhat_p a product of layer operator norms (L-inf: max row L1 norm, which grows "
         "with width and rank unlike the measured gap). The second table correlates the "
         "measured gap with each factor alone: lip (Lhat_p), head (G_p ||C||_{p->p}) and "
         "layer<i> (one layer's p->p norm), beside the whole bound and the two estimates."),
    ], rel, [("Correlations with the measured gap", corr, out.table("bound_correlations", corr)),
             ("Correlations of the measured gap with each factor of the bound", factors,
              out.table("bound_factor_correlations", factors)),
             ("Points", None, out.table("bound_points", points))])


def _radii(final: pl.DataFrame, out: _Output) -> Section:
    title = "Scale-free theory comparison: certified vs empirical radius"
    table = radius_comparison(final)
    if table.height == 0:
        return Section(title, ["Skipped: no trial reports the final protocol's radius ratios."])
    return Section(title, [
        ("Per sample, r_cert / r_emp: the fraction of the empirical radius (strongest attack) "
        "that a certificate proves, global Lipschitz product or linear relaxation; median per "
        "trial, then median (min, max) over trials; Spearman rho across trials of the median "
        "certified radius with the median r_emp. Radii and robust accuracy are scale-free: a "
        "bias-free ReLU network's decisions, hence its radii, do not change when its weights "
        "are scaled, while the loss-gap bound and the CE gap above scale with the logits. So "
        "this table and the band, not the loss-gap section, compare theory with measurement "
        "independently of weight scale.")
    ], None, [("Certified / empirical radius per norm", table, out.table("radius_ratios", table))])


def _trend(final: pl.DataFrame, settings: list[str], measure: str, out: _Output) -> Section:
    title = "Trend test: compressibility vs robust accuracy"
    measures = list(dict.fromkeys([measure, *COMP_MEASURES]))
    table = trend_table(final.lazy(), settings, measures=measures)
    if table.height == 0:
        return Section(title, ["Skipped: no groups to correlate."])
    index = [c for c in table.columns if c not in ("metric", "n", "rho", "p_value", "ci_low",
                                                    "ci_high", "mean")]
    shown = table.pivot(on="metric", index=[*index, "n"], values=["rho", "p_value", "mean"])
    return Section(title, [
        ("Spearman correlation of compressibility with RA (robust accuracy), SA (clean accuracy "
        "on the same samples) and RA/SA, per knob (never pooled), setting, norm and "
        "eps, against the findings' axis and compressibility at kappa. The paper predicts RA and "
        "RA/SA fall as compressibility rises with SA roughly flat: rho < 0 for comp at kappa, "
        "rho > 0 for an l1/l2 ratio (lower = more compressible); column 'predicted'. Subset "
        f"'near_best_clean' keeps trials whose final clean accuracy is within "
        f"{NEAR_BEST_CLEAN * 100:g} points of the best in the group, removing the confound of "
        "clean accuracy collapsing at extreme compression. Intervals (in the CSV) are Fisher z.")
    ], None, [("Spearman rho, p-value and mean per metric", shown, out.table("trend", table))])


def _posthoc(final: pl.DataFrame, out: _Output) -> Section:
    from analysis.posthoc import draw_posthoc, posthoc_table, winners

    title = "Post-hoc compression of your model: structured vs unstructured"
    table = posthoc_table(final)
    if table.height == 0:
        return Section(title, ["Skipped: no compression / keep_frac columns in this run."])
    path, rel = out.figure("posthoc_frontier")
    draw_posthoc(table, path)
    best = winners(table)
    return Section(title, [
        ("Robust accuracy (lowest over attacks) against the kept fraction of encoder weights: "
         "structured (svd_truncate, prune_rows; solid) vs unstructured magnitude pruning "
         "(per layer, global; dashed); the black line is the uncompressed model. A positive "
         "structured_minus_unstructured means structured compression keeps more robustness "
         "at that kept fraction.")
    ], rel, [("Best structured vs best unstructured per kept fraction", best,
              out.table("posthoc_winners", best)),
             ("Every point", None, out.table("posthoc_frontier", table))])


def _alignment(final: pl.DataFrame, config: list[str], out: _Output) -> Section:
    title = "Alignment of adversarial perturbations with top directions"
    if not _usable(final, "align_top") or not _usable(final, HEADLINE_MEASURE):
        return Section(title, ["Skipped: no trial reports align_top."])
    largest = final.filter(pl.col("eps") == pl.col("eps").max().over("norm"))
    table = seed_means(largest.lazy(), [*config, "norm", "eps"],
                       [HEADLINE_MEASURE, "align_top", "align_rest"]).collect()
    path, rel = out.figure("alignment")
    plots.draw_alignment(table, HEADLINE_MEASURE, path)
    return Section(title, [
        ("Mean |<u, delta>| / ||delta||_2 of the attack's perturbations with the first layer's "
        "top direction (top right singular vector for L2, top row's sign pattern for L-inf) "
        "and, as a baseline, with the other directions; at each norm's largest eps.")
    ], rel, [("Seed means", None, out.table("alignment", table))])


def _layers(tables: Tables, out: _Output) -> Section:
    title = "Per-layer spectra of the least and most compressed trials"
    # Ordered by the spectral l1/l2 ratio where the store has it: comp at kappa ties every low rank.
    order = schema.HEADLINE_STAT[HEADLINE_MEASURE]
    trials = trial_columns(tables).collect()
    if not _usable(trials, order):
        order = HEADLINE_MEASURE
    trials = trials.filter(pl.col(order).is_finite())
    if trials.height == 0:
        return Section(title, [f"Skipped: no completed trial reports {order}."])
    ends = trials.sort(COMPRESSIBLE_DIRECTION[order] * pl.col(order))
    picks = pl.DataFrame({
        "run_id": [ends["run_id"][0], ends["run_id"][-1]],
        "trial_id": [ends["trial_id"][0], ends["trial_id"][-1]],
        "role": ["least compressed", "most compressed"],
    }).unique(["run_id", "trial_id"], keep="first")
    layers = (
        tables.layers
        .join(picks.lazy(), on=["run_id", "trial_id"])
        .filter(pl.col("iteration") == pl.col("iteration").max().over("run_id", "trial_id"))
        .sort("role", "layer_index")
        .collect()
    )
    if layers.height == 0:
        return Section(title, ["Skipped: the layers table has no rows for these trials."])
    path, rel = out.figure("layers")
    prefixes = ("spectral_comp", "neuron_comp_l1")
    plots.draw_layers(layers, schema.KAPPAS, prefixes, path)
    return Section(title, [
        ("The store keeps per-layer summaries, not raw singular values, so this figure shows "
        "what the spectra determine: compressibility comp_k at each kept fraction kappa "
        "(spectral and neuron L1) per layer, and effective / stable rank, for the trial with "
        f"the least and the most compressible by {order} (solid: least, dashed: most).")
    ], rel, [("Layer rows", None, out.table("layers", layers))])


def _uap(tables: Tables, out: _Output) -> Section:
    title = "Universal adversarial perturbations"
    rows = uap_robustness(tables).collect()
    if rows.height == 0 or not _usable(rows, "fooling_rate"):
        return Section(title, ["Skipped: this run has no UAP rows (attack == 'uap')."])
    config = config_columns(tables)
    control = "weight_scale" in rows.columns and rows["weight_scale"].n_unique() > 1
    base = rows.filter(pl.col("weight_scale") == 1.0) if control else rows
    by_comp = seed_means(base.lazy(), [*config, "norm", "eps"],
                         [HEADLINE_MEASURE, "fooling_rate"]).collect()
    by_scale = None
    if control:
        others = [c for c in config if c not in ("space", "weight_scale")]
        series = pl.concat_str([pl.format(f"{c}={{}}", pl.col(c).cast(pl.String).fill_null("none"))
                                for c in [*others, "norm", "eps"]], separator=", ")
        by_scale = seed_means(rows.lazy(), [*config, "norm", "eps"], ["fooling_rate"]).with_columns(
            series.fill_null("").alias("series")
        ).collect()
    path, rel = out.figure("uap")
    plots.draw_uap(by_comp, by_scale, HEADLINE_MEASURE, path)
    text = ("UAP fooling rate against compressibility" + (
        " (trials at weight_scale 1), next to the control: the same network family with its "
        "weights scaled, which raises operator norms without adding compressibility."
        if control else "; this sweep has no weight-scaling control (weight_scale not swept)."))
    tabs = [("Fooling rate vs compressibility", None, out.table("uap", by_comp))]
    if by_scale is not None:
        tabs.append(("Weight-scaling control", None,
                     out.table("uap_control", by_scale)))
    return Section(title, [text], rel, tabs)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m analysis.report",
        description="Write RUN_DIR/report/ (index.html, report.md, figures/, tables/).",
    )
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--n-boot", type=int, default=200,
                        help="bootstrap refits per frontier (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap random seed")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.n_boot < 0:
        return fail(f"--n-boot must be >= 0, but got {args.n_boot}")
    try:
        index = write_report(args.run_dir, n_boot=args.n_boot, seed=args.seed)
    except SweepError as err:
        return fail(err)
    except OSError as err:  # e.g. the disk filled while writing figures
        return fail(f"cannot write {Path(args.run_dir) / REPORT_DIR} "
                    f"({err.strerror or type(err).__name__}); free space or fix permissions")
    print(f"report: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
