"""The report in a real browser (headless Chromium over the DevTools protocol): no console errors,
no network requests, the findings first, every interactive figure drawn, and hovering a known
trial shows its hyperparameters and metrics. Keeps a screenshot of the first screen."""

from __future__ import annotations

import json

import polars as pl
import pytest

from analysis.report import write_report
from tests.analysis.browser import find_browser, open_page

pytestmark = pytest.mark.skipif(find_browser() is None,
                                reason="chromium not installed (scripts/setup.sh installs it)")

FIGURES = ("ra_vs_comp", "parallel", "pareto", "histories", "bound")
KNOWN_TRIAL = "t0003"

DRAWN = """(() => Object.fromEntries(%s.map(id => {
    const gd = document.getElementById(id);
    return [id, gd ? {plotly: gd.classList.contains('js-plotly-plot'),
                      svgs: gd.querySelectorAll('svg.main-svg').length,
                      traces: (gd.data || []).length} : null];
})))()""" % json.dumps(list(FIGURES))

# Hover the known trial's point in the RA-vs-compressibility figure the way a mouse would
# (Plotly.Fx.hover on its curve / point), then read the hover label Plotly drew.
HOVER = """(async () => {
    await new Promise(r => setTimeout(r, 300));
    const gd = document.getElementById('ra_vs_comp');
    for (const [c, trace] of gd.data.entries()) {
        const p = (trace.text || []).findIndex(t => t.includes('trial %s<'));
        if (p < 0) continue;
        const subplot = (trace.xaxis || 'x') + (trace.yaxis || 'y');
        Plotly.Fx.hover(gd, [{curveNumber: c, pointNumber: p}], subplot);
        await new Promise(r => setTimeout(r, 300));
        return gd.querySelector('.hoverlayer').textContent;
    }
    return null;
})()""" % KNOWN_TRIAL

HEADINGS = "[...document.querySelectorAll('h2')].map(h => h.textContent)"
FIRST_SCREEN = """(() => { const f = [...document.querySelectorAll('h2')]
    .find(h => h.textContent === 'Findings'); return f.getBoundingClientRect().top; })()"""


def test_report_in_headless_chromium(run_dir, tmp_path):
    index = write_report(run_dir, n_boot=5)
    page = open_page(index.as_uri(), {"headings": HEADINGS, "drawn": DRAWN, "hover": HOVER,
                                      "findings_top": FIRST_SCREEN})
    shot = tmp_path / "report_first_screen.png"
    shot.write_bytes(page.screenshot)
    print(f"screenshot of the report's first screen: {shot}")
    assert page.screenshot[:8] == b"\x89PNG\r\n\x1a\n"
    assert page.console_errors == []
    # self-contained: nothing but the page itself (and inline data) is requested
    assert all(u.startswith(("file://", "data:", "about:")) for u in page.requests), page.requests
    headings = page.results["headings"]
    assert headings[0] == "Findings" and headings.index("Pareto-optimal trials") == 1
    assert page.results["findings_top"] < 900  # on the first screen
    for figure in FIGURES:
        drawn = page.results["drawn"][figure]
        assert drawn and drawn["plotly"] and drawn["svgs"] > 0 and drawn["traces"] > 0, figure
    trials = pl.read_parquet(run_dir / "store" / "trials" / "*.parquet")
    known = trials.filter(pl.col("trial_id") == KNOWN_TRIAL).row(0, named=True)
    hover = page.results["hover"]
    assert hover is not None and f"trial {KNOWN_TRIAL}" in hover
    assert f"knob={known['compression']}" in hover and f"strength={known['strength']:.4g}" in hover
    assert f"seed={known['seed']}" in hover and "robust_acc=" in hover
