"""The report on fixture runs: every figure is a readable PNG referenced by the page; missing
data skips a figure with a sentence; bad stores exit 2 before anything is written."""

from __future__ import annotations

import re
import subprocess
import sys

import matplotlib.image
import polars as pl
import pytest

from analysis.report import main, provenance, write_report
from tests.analysis.conftest import synthetic_run, write_store
from trainables import schema
from trainables.provenance import environment

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLAIN_FIGURES = {
    "robust_vs_spectral_l1l2",  # the headline (non-saturating) axis first
    "robust_vs_neuron_comp", "robust_vs_neuron_comp_l2", "robust_vs_spectral_comp",
    "frontier_neuron_comp", "frontier_neuron_comp_l2", "frontier_spectral_comp",
    "bound_vs_measured", "alignment", "layers",
}


def check_report(index, expected):
    root = index.parent
    html, md = index.read_text(), (root / "report.md").read_text()
    figures = {p.stem for p in (root / "figures").glob("*.png")}
    assert figures == expected
    for name in figures:
        path = root / "figures" / f"{name}.png"
        assert path.read_bytes()[:8] == PNG_MAGIC
        assert matplotlib.image.imread(path).shape[0] > 100
        assert f'src="figures/{name}.png"' in html and f"(figures/{name}.png)" in md
    # every table the page links exists, and the page needs nothing outside the report
    outside_scripts = re.sub(r"<script.*?</script>", "", html, flags=re.S)
    for link in re.findall(r'href="([^"]+)"', outside_scripts):
        assert (root / link).is_file()
    # the page needs nothing from the network: Plotly's bundle is inline, once (its text
    # mentions map-tile URLs that figures of this kind never load; the browser test checks that)
    assert html.count("<script") == 0 or html.count("plotly.js v") >= 1
    assert "http" not in outside_scripts.replace("http://www.w3.org", "")
    assert not re.search(r'<script[^>]+src=', html)
    return html


@pytest.fixture(scope="module")
def plain_report(run_dir):
    return write_report(run_dir, n_boot=20)


def test_plain_run_report(plain_report):
    html = check_report(plain_report, PLAIN_FIGURES)
    assert "Skipped: this run has no UAP rows" in html
    assert "0 row(s) with measured CE gap above the loss-gap bound" in html
    assert (plain_report.parent / "tables" / "frontier_parameters_spectral_comp.csv").is_file()
    # the bound section: per-eps correlations on both subsets, and one row per factor
    tables = plain_report.parent / "tables"
    corr = pl.read_csv(tables / "bound_correlations.csv")
    assert set(corr["subset"]) == {"rank_varied", "all"} and corr["eps"].null_count() == 0
    factors = pl.read_csv(tables / "bound_factor_correlations.csv")
    assert {"lip", "head", "layer0", "layer1", "align_est_gap"} <= set(factors["factor"])
    trend = pl.read_csv(tables / "trend.csv")
    assert set(trend.filter(pl.col("measure") == "spectral_l1l2")["predicted"]) == {1}


def test_the_report_names_the_code_and_libraries_behind_each_run(plain_report):
    # the fixture's run.json predates the record; a launch's has it (tests/sweep/test_launch.py)
    assert "its run.json records no environment" in (plain_report.parent / "report.md").read_text()
    env = environment()
    env["code"] = {"commit": "0123456789abcdef", "dirty": True}
    line = provenance("r1", {"environment": env})
    assert line.startswith("Run r1: code 0123456789ab with uncommitted changes, python ")
    assert f"torch {env['packages']['torch']}" in line
    assert f"analysed with polars {pl.__version__}" in line


def report_files(index):
    root = index.parent
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def changed_files(before, after):
    assert sorted(before) == sorted(after)
    return [str(name) for name in before if before[name] != after[name]]


def test_the_same_store_gives_the_same_report_bytes(plain_report, run_dir):
    # polars' group_by and join orders are arbitrary, and a float sum in another order differs in
    # its last bits: the views fix every order, so a report can be diffed and cited
    before = report_files(plain_report)
    assert write_report(run_dir, n_boot=20) == plain_report
    assert changed_files(before, report_files(plain_report)) == []


def test_uap_run_report_adds_settings_and_control(uap_run_dir):
    index = write_report(uap_run_dir, n_boot=10)
    before = report_files(index)
    assert changed_files(before, report_files(write_report(uap_run_dir, n_boot=10))) == []
    html = check_report(index, PLAIN_FIGURES | {"uap", "frontier_per_setting"})
    assert "weight_scale" in html and "at_eps" in html


def test_run_with_no_completed_trials_skips_with_sentences(tmp_path):
    run = synthetic_run(tmp_path / "r", knobs=("rank",), strengths=(0.5,), seeds=(0,), failed=0)
    trials = run / "store" / "trials"
    for part in trials.glob("*.parquet"):
        pl.read_parquet(part).with_columns(pl.lit("errored").alias("status")).write_parquet(part)
    html = check_report(write_report(run, n_boot=5), set())
    assert "No completed trial has robustness rows yet" in html


@pytest.mark.parametrize("case", ["missing", "no_store", "bad_version"])
def test_report_cli_exits_2_and_writes_nothing(tmp_path, case, capsys):
    run = tmp_path / "run"
    if case != "missing":
        run.mkdir()
    if case == "bad_version":
        synthetic_run(run, knobs=("rank",), strengths=(0.5,), seeds=(0,))
        schema_json = run / "store" / "_schema.json"
        text = schema_json.read_text().replace(
            f'"schema_version": {schema.SCHEMA_VERSION}', '"schema_version": 999'
        )
        schema_json.write_text(text)
    assert main([str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (run / "report").exists()


def test_report_cli_process_on_an_empty_run(tmp_path):
    write_store(tmp_path / "empty", {}, {})
    done = subprocess.run([sys.executable, "-m", "analysis.report", str(tmp_path / "empty")],
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "no trial rows" in done.stderr
    assert not (tmp_path / "empty" / "report").exists()


def test_tables_drop_rows_with_nothing_but_nan_and_scroll():
    from analysis._render import Section, html_page, markdown

    frame = pl.DataFrame({"knob": ["rank", "nuclear"], "rho": [-0.5, float("nan")],
                          "p": [0.01, None]})
    section = Section("T", tables=[("t", frame, "t.csv")])
    page, md = html_page("x", [], [section]), markdown("x", [], [section])
    assert "rank" in page and "nuclear" not in page and "nan" not in page
    assert "rank" in md and "nuclear" not in md
    assert '<div class="scroll"><table>' in page


def test_hover_text_carries_the_l1l2_count_when_the_row_has_it():
    from analysis.interactive import hover_text

    rows = pl.DataFrame({"trial_id": ["a", "b"], "knob": "rank", "spectral_comp": [1.0, 1.0],
                         "spectral_l1l2": [3.25, float("nan")]})
    first, second = hover_text(rows, [], ["spectral_comp"])
    assert "spectral_l1l2=3.25" in first and "spectral_l1l2" not in second
