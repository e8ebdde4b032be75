"""deploy/prometheus and deploy/grafana agree with what the code exports."""

from __future__ import annotations

import json
import re

import yaml
from ray._private.ray_constants import PROMETHEUS_SERVICE_DISCOVERY_FILE
from ray.dashboard.modules.reporter.reporter_agent import METRICS_GAUGES

from sweep.metrics_export import DEFAULT_PORT, RUN_LABEL, SweepMetrics
from tests.deploy.conftest import DEPLOY

_NAME = re.compile(r"\b(sweep_[a-z0-9_]+|ray_[a-z0-9_]+)\b")


def prometheus() -> dict:
    return yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())


def dashboard() -> dict:
    return json.loads((DEPLOY / "grafana" / "sweep-dashboard.json").read_text())


def test_prometheus_scrapes_ray_through_its_service_discovery_file():
    jobs = {j["job_name"]: j for j in prometheus()["scrape_configs"]}
    files = [f for sd in jobs["ray"]["file_sd_configs"] for f in sd["files"]]
    assert files == [f"/tmp/ray/{PROMETHEUS_SERVICE_DISCOVERY_FILE}"]


def test_prometheus_scrapes_the_sweep_endpoint_at_its_default_port():
    from sweep.options import DEFAULT_METRICS_PORT

    jobs = {j["job_name"]: j for j in prometheus()["scrape_configs"]}
    targets = [t for sc in jobs["sweep"]["static_configs"] for t in sc["targets"]]
    assert DEFAULT_PORT == DEFAULT_METRICS_PORT  # the launcher's default is the callback's
    assert f"127.0.0.1:{DEFAULT_PORT}" in targets


def panel_exprs() -> dict[str, list[str]]:
    return {p["title"]: [t["expr"] for t in p["targets"]] for p in dashboard()["panels"]}


def test_dashboard_queries_only_metrics_that_exist():
    exported = set(SweepMetrics(space="smoke", run_id="r", port=None).metric_names())
    ray_exported = {f"ray_{name}" for name in METRICS_GAUGES}
    used = {n for exprs in panel_exprs().values() for e in exprs for n in _NAME.findall(e)}
    assert used, "no metric names found in the dashboard"
    assert {n for n in used if n.startswith("sweep_")} <= exported
    assert {n for n in used if n.startswith("ray_")} <= ray_exported


def test_dashboard_shows_states_throughput_epochs_frontier_and_failures():
    panels = panel_exprs()
    used_by = {n: t for t, exprs in panels.items() for e in exprs for n in _NAME.findall(e)}
    for name in (
        "sweep_trials",
        "sweep_results_per_second",
        "sweep_results_total",
        "sweep_epoch_seconds_bucket",
        "sweep_trial_robust_acc",
        "sweep_trial_spectral_comp",
        "sweep_trial_neuron_comp",
        "sweep_trial_failures_total",
        "sweep_trial_retries_total",
    ):
        assert name in used_by, f"no panel shows {name}"
    quantiles = [e for e in panels["Epoch duration quantiles"] if "histogram_quantile" in e]
    assert len(quantiles) >= 2
    xy = next(p for p in dashboard()["panels"] if p["type"] == "xychart")
    assert {"sweep_trial_robust_acc", "sweep_trial_spectral_comp"} <= {
        n for t in xy["targets"] for n in _NAME.findall(t["expr"])
    }


def test_dashboard_panels_use_the_datasource_variable_and_have_unique_ids():
    board = dashboard()
    assert [v["name"] for v in board["templating"]["list"]] == ["datasource", "run"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    assert all(p["datasource"]["uid"] == "${datasource}" for p in board["panels"])


def test_every_sweep_query_selects_the_run_variable_and_the_variable_lists_runs():
    """Two sweeps on one Prometheus stay apart only if each panel picks one run: every sweep_
    selector in every panel carries run="$run", and $run's values come from the run label."""
    board = dashboard()
    run_var = next(v for v in board["templating"]["list"] if v["name"] == "run")
    assert run_var["query"]["query"] == f"label_values(sweep_info, {RUN_LABEL})"
    assert run_var["datasource"]["uid"] == "${datasource}"
    selector = re.compile(r"\b(sweep_[a-z0-9_]+)(\{[^}]*\})?")
    checked = 0
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            for name, labels in selector.findall(target["expr"]):
                assert f'{RUN_LABEL}="$run"' in labels, (panel["title"], target["expr"])
                checked += 1
    assert checked >= 15
    # and the run label is on every series the code exports (the variable can list each run)
    metrics = SweepMetrics(space="smoke", run_id="r", port=None)
    samples = [s for family in metrics.registry.collect() for s in family.samples]
    assert samples and all(s.labels.get(RUN_LABEL) == "r" for s in samples)
