"""SweepMetrics against a real Tuner on a local Ray, scraped over HTTP while it runs and after.

The trainable below lives in this importable module (Ray workers import it by name) and appends
every result it reports to a JSON-lines file: that file is the independent truth the scraped
counters are compared with. Trial outcomes are fixed by construction (one trial per kind).
"""

from __future__ import annotations

import json
import math
import pickle
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import ray
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from ray import tune

from sweep.metrics_export import TRIAL_STATES, SweepMetrics, trial_state
from trainables.errors import ConfigError

EPOCHS = 3
# kind -> final state; "flaky" fails its first attempt and is retried, "broken" fails both.
KINDS = {
    "ok_a": "completed",
    "ok_b": "completed",
    "diverge": "diverged",
    "stop": "stopped",
    "flaky": "completed",
    "broken": "errored",
}
MAX_SERIES = 3


def fake_trial(config: dict) -> None:
    log_dir = Path(config["log_dir"])
    kind = config["kind"]
    if kind == "broken":
        raise RuntimeError("broken trial: fails on every attempt")
    if kind == "flaky":
        marker = log_dir / "flaky.failed_once"
        if not marker.exists():
            marker.touch()
            raise RuntimeError("flaky trial: fails on its first attempt")
    trial_id = tune.get_context().get_trial_id()
    seed = sum(map(ord, kind))
    for epoch in range(1, EPOCHS + 1):
        start = time.perf_counter()
        time.sleep(0.2)
        result = {
            "iteration": epoch,
            "epoch_seconds": time.perf_counter() - start,
            "robust_acc": (seed % 97) / 100 + epoch / 1000,
            # NaN on odd epochs, as when evaluation runs every other epoch
            "clean_acc": math.nan if epoch % 2 else 0.5 + epoch / 100,
            "neuron_comp": (seed % 13) / 20,
            "spectral_comp": (seed % 7) / 10,
            "diverged": kind == "diverge" and epoch == 2,
            "stop_here": kind == "stop" and epoch == 2,
        }
        with (log_dir / f"{kind}.jsonl").open("a") as f:
            f.write(json.dumps({**result, "trial_id": trial_id}) + "\n")
        tune.report(result)
        if result["diverged"]:
            return


def stop_when_asked(trial_id: str, result: dict) -> bool:
    return bool(result.get("stop_here"))


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    """The one sample of `name` whose labels include `labels` (the run label may be left out)."""
    hits = [v for (n, have), v in samples.items() if n == name and set(labels.items()) <= have]
    assert len(hits) == 1, (name, labels, hits)
    return hits[0]


def series(samples: dict, name: str) -> dict[str, float]:
    """{trial_id: value} of one per-trial gauge."""
    return {dict(k[1])["trial"]: v for k, v in samples.items() if k[0] == name}


class Scraper(threading.Thread):
    """Polls the endpoint while the sweep runs and keeps every successful scrape."""

    def __init__(self, callback: SweepMetrics) -> None:
        super().__init__(daemon=True)
        self.callback = callback
        self.scrapes: list[dict] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            if self.callback.url is not None:
                try:
                    self.scrapes.append(scrape(self.callback.url))
                except (urllib.error.URLError, ConnectionError):
                    pass
            self.halt.wait(0.1)


@pytest.fixture
def local_ray():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


def read_truth(log_dir: Path) -> dict[str, list[dict]]:
    return {
        p.stem: [json.loads(line) for line in p.read_text().splitlines()]
        for p in sorted(log_dir.glob("*.jsonl"))
    }


def test_scraped_counts_match_what_the_trials_reported(local_ray, tmp_path):
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    callback = SweepMetrics(
        space="smoke", run_id="run-test", port=None, max_trial_series=MAX_SERIES, linger_s=60
    )
    tuner = tune.Tuner(
        fake_trial,
        param_space={
            "kind": tune.grid_search(list(KINDS)),
            "epochs": EPOCHS,
            "log_dir": str(log_dir),
        },
        tune_config=tune.TuneConfig(max_concurrent_trials=2),
        run_config=tune.RunConfig(
            name="metrics_test",
            storage_path=str(tmp_path / "tune"),
            callbacks=[callback],
            stop=stop_when_asked,
            failure_config=tune.FailureConfig(max_failures=1),
            verbose=0,
        ),
    )
    scraper = Scraper(callback)
    scraper.start()
    try:
        grid = tuner.fit()
    finally:
        scraper.halt.set()
        scraper.join()
    final = scrape(callback.url)  # still served: linger_s keeps it up after the experiment
    callback.close()

    truth = read_truth(log_dir)
    n_results = sum(len(rows) for rows in truth.values())
    assert n_results == 3 + 3 + 2 + 2 + 3  # ok_a, ok_b, diverge, stop, flaky (second attempt)

    # Live: scraped while trials were running, counters never went backwards.
    live = scraper.scrapes
    assert any(value(s, "sweep_trials", state="running") >= 1 for s in live)
    seen = [value(s, "sweep_results_total") for s in live]
    assert seen == sorted(seen)
    assert any(0 < v < n_results for v in seen), "no scrape caught the sweep half-way"

    # After: counts equal the independent truth.
    assert value(final, "sweep_results_total") == n_results
    assert value(final, "sweep_epoch_seconds_count") == n_results
    truth_seconds = sum(r["epoch_seconds"] for rows in truth.values() for r in rows)
    assert value(final, "sweep_epoch_seconds_sum") == pytest.approx(truth_seconds, rel=1e-9)
    assert value(final, "sweep_epoch_seconds_bucket", le="0.25") == sum(
        r["epoch_seconds"] <= 0.25 for rows in truth.values() for r in rows
    )
    expected_states = {s: list(KINDS.values()).count(s) for s in TRIAL_STATES}
    assert {s: value(final, "sweep_trials", state=s) for s in TRIAL_STATES} == expected_states
    errored = sum(r.error is not None for r in grid)
    assert value(final, "sweep_trial_failures_total") == errored == 1
    assert value(final, "sweep_trial_retries_total") == 2  # flaky once, broken once
    assert value(final, "sweep_info", run_id="run-test", space="smoke") == 1

    # Per-trial gauges: at most MAX_SERIES trials, each showing its latest finite value.
    robust = series(final, "sweep_trial_robust_acc")
    trials_with_results = len(truth)
    assert len(robust) == MAX_SERIES
    assert value(final, "sweep_trial_series_evicted_total") == trials_with_results - MAX_SERIES
    last_by_trial = {rows[-1]["trial_id"]: rows for rows in truth.values()}
    for trial_id, got in robust.items():
        rows = last_by_trial[trial_id]
        assert got == pytest.approx(rows[-1]["robust_acc"])
        finite_clean = [r["clean_acc"] for r in rows if not math.isnan(r["clean_acc"])]
        assert series(final, "sweep_trial_clean_acc")[trial_id] == pytest.approx(finite_clean[-1])
    assert all(dict(k[1])["space"] == "smoke" for k in final if k[0] == "sweep_trial_robust_acc")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_several_sweeps_in_one_process_share_a_port():
    port = free_port()
    first = SweepMetrics(space="smoke", run_id="a", port=port)  # default linger_s
    assert first.start() == f"http://127.0.0.1:{port}/metrics"
    first.on_experiment_end(trials=[])
    # Lingering: the final counts stay up for a last scrape ...
    assert value(scrape(first.url), "sweep_info", run_id="a", space="smoke") == 1
    # ... until the next sweep wants the port.
    second = SweepMetrics(space="smoke", run_id="b", port=port, linger_s=0)
    second.start()
    samples = scrape(second.url)
    assert value(samples, "sweep_info", run_id="b", space="smoke") == 1
    assert ("sweep_info", frozenset({"run_id": "a", "space": "smoke"}.items())) not in samples
    second.on_experiment_end(trials=[])  # linger_s=0: closed at once
    with pytest.raises(urllib.error.URLError):
        scrape(second.url)


def test_busy_port_is_a_config_error_and_pickling_keeps_only_settings():
    first = SweepMetrics(space="smoke", run_id="a", port=None)
    first.start()
    busy = int(first.url.rsplit(":", 1)[1].split("/")[0])
    try:
        with pytest.raises(ConfigError, match="cannot bind"):
            SweepMetrics(space="smoke", run_id="b", port=busy).start()
        copy = pickle.loads(pickle.dumps(first))
        assert (copy.space, copy.run_id, copy.port, copy.url) == ("smoke", "a", None, None)
    finally:
        first.close()


@pytest.mark.parametrize(
    "kwargs",
    [{"port": 0}, {"port": 70000}, {"port": "9500"}, {"max_trial_series": 0}, {"linger_s": -1}],
)
def test_bad_settings_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        SweepMetrics(space="smoke", run_id="r", **kwargs)


def test_trial_state_reads_status_result_and_config():
    cfg = {"epochs": 4}
    assert trial_state("PENDING", None, cfg) == "pending"
    assert trial_state("RUNNING", {"iteration": 1}, cfg) == "running"
    assert trial_state("ERROR", {"iteration": 1}, cfg) == "errored"
    assert trial_state("TERMINATED", {"iteration": 4}, cfg) == "completed"
    resumed = {"_resume": {"trial_id": "t", "config": cfg, "restore": None}}
    assert trial_state("TERMINATED", {"iteration": 2}, resumed) == "stopped"
    assert trial_state("TERMINATED", {"iteration": 4}, resumed) == "completed"
    assert trial_state("TERMINATED", {"iteration": 2}, cfg) == "stopped"
    assert trial_state("TERMINATED", {"iteration": 2, "early_stopped": True}, cfg) == "completed"
    assert trial_state("TERMINATED", {"iteration": 2, "diverged": True}, cfg) == "diverged"


# ---- end to end: the launcher's endpoint against its Parquet store ---------------------------
def test_launcher_endpoint_counts_match_the_parquet_store(tmp_path):
    import subprocess
    import sys

    import polars as pl

    port = free_port()
    argv = [
        "--space",
        "smoke",
        "--scale",
        "smoke",
        "--metrics-port",
        str(port),
        "--storage",
        str(tmp_path),
        "--name",
        "e2e",
        "--no-report",
        "--no-dashboard",
    ]
    # `python -m sweep.launch ARGV` exactly (runpy), then the process waits for a line on stdin,
    # so the endpoint (lingering after the experiment) can be scraped once more.
    hold = (
        "import runpy, sys\n"
        "sys.argv = ['sweep.launch', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('sweep.launch', run_name='__main__')\n"
        "except SystemExit as e:\n    code = e.code or 0\nelse:\n    code = 0\n"
        "print('LAUNCH-EXIT', code, flush=True)\nsys.stdin.readline()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", hold, *argv], cwd=Path(__file__).resolve().parents[2], text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/metrics"
    scrapes, lines = [], []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 240
        while not any(line.startswith("LAUNCH-EXIT") for line in lines):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)[-2000:]
            try:
                scrapes.append(scrape(url))
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        exit_line = next(line for line in lines if line.startswith("LAUNCH-EXIT"))
        assert exit_line.split()[1] == "0", "".join(lines)[-2000:]
        final = scrape(url)  # after the launcher returned: the lingering endpoint
    finally:
        proc.communicate(input="\n", timeout=30)

    store = tmp_path / "e2e" / "store"
    trials = pl.scan_parquet(f"{store}/trials/*.parquet").collect()
    history = pl.scan_parquet(f"{store}/history/*.parquet").collect()
    n_trials = trials.height

    # While it ran: counters only grew, never past what the store holds in the end.
    results = [value(s, "sweep_results_total") for s in scrapes]
    assert any(0 < r < history.height for r in results), "no scrape caught the sweep half-way"
    assert results == sorted(results) and results[-1] <= history.height
    assert any(value(s, "sweep_trials", state="running") >= 1 for s in scrapes)

    # After: the endpoint's counts are the store's.
    last = final
    assert value(last, "sweep_info", run_id="e2e", space="smoke") == 1
    assert sum(value(last, "sweep_trials", state=st) for st in TRIAL_STATES) == n_trials
    assert value(last, "sweep_results_total") == history.height
    assert value(last, "sweep_epoch_seconds_count") == history.height
    store_states = dict(trials.group_by("status").len().iter_rows())
    for state in TRIAL_STATES:
        assert value(last, "sweep_trials", state=state) == store_states.get(state, 0)
    latest = (
        history.filter(pl.col("robust_acc").is_not_nan())
        .sort("iteration")
        .group_by("trial_id")
        .agg(pl.col("robust_acc").last())
    )
    assert series(last, "sweep_trial_robust_acc") == pytest.approx(dict(latest.iter_rows()))


# ---- the run label: two sweeps scraped into one Prometheus stay apart --------------------------
class _FakeTrial:
    def __init__(self, trial_id: str, status: str = "RUNNING") -> None:
        self.trial_id, self.status, self.last_result, self.config = trial_id, status, {}, {}


def test_two_runs_on_one_prometheus_keep_their_series_apart():
    runs = {"run-a": 3, "run-b": 5}  # results reported per run, same trial id in both
    merged: dict = {}
    for run_id, n in runs.items():
        cb = SweepMetrics(space="smoke", run_id=run_id, port=None, linger_s=0)
        trial = _FakeTrial("t0001")
        for i in range(n):
            cb.on_trial_result(0, [trial], trial, {"robust_acc": i / 10, "epoch_seconds": 0.1})
        cb.on_step_end(0, [trial])
        cb.on_trial_error(0, [trial], trial)
        text = generate_latest(cb.registry).decode()
        samples = {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        assert all(dict(k[1]).get("run") == run_id for k in samples), "a series without run"
        assert not set(samples) & set(merged), "two runs wrote the same series"
        merged.update(samples)  # what one Prometheus holds after scraping both endpoints
    for run_id, n in runs.items():
        assert value(merged, "sweep_results_total", run=run_id) == n
        assert value(merged, "sweep_epoch_seconds_count", run=run_id) == n
        assert value(merged, "sweep_trial_robust_acc", run=run_id, trial="t0001") == (n - 1) / 10
        assert value(merged, "sweep_trial_failures_total", run=run_id) == 1
        assert value(merged, "sweep_trials", run=run_id, state="errored") == 1


# ---- state counts: each trial event walks the live trials only --------------------------------
class _Finished:
    """Stands for a finished trial in Tune's list: counting must not read it (a 10,000-trial sweep
    walked them all at every event)."""

    def __getattr__(self, name: str):
        raise AssertionError(f"count_states read {name} of a finished trial")


def test_state_counts_come_from_the_hooks_and_the_live_trials():
    from sweep.metrics_model import SweepMetricModel

    model = SweepMetricModel("smoke", "r", max_trial_series=10, rate_window_s=60)
    for i in range(3):
        model.started(_FakeTrial(f"done{i}"))
        model.finished(f"done{i}", "completed" if i else "diverged")
    running, retried = _FakeTrial("run"), _FakeTrial("retried")
    model.started(running)
    model.started(retried)
    model.finished("retried", "errored")
    model.started(retried)  # restarted after its error: live again, not errored
    retried.status = "PENDING"
    trials = [_Finished(), _Finished(), _Finished(), running, retried, _FakeTrial("new", "PENDING")]
    model.count_states(trials)
    counts = {
        s: model.registry.get_sample_value("sweep_trials", {"run": "r", "state": s})
        for s in TRIAL_STATES
    }
    assert counts == {s: 0 for s in TRIAL_STATES} | {
        "completed": 2, "diverged": 1, "running": 1, "pending": 2
    }
