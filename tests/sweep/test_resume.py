"""Resume from our own records: never a pickle from storage; the right trials, checkpoints, ids."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from sweep.options import LaunchOptions
from sweep.preflight import prepare_launch
from sweep.resume import CHECKPOINT_EPOCH_FILE, record_started, resume_entries
from sweep.service import run_spec
from sweep.store import ResultStore
from tests.sweep.test_store import result

REPO = Path(__file__).resolve().parents[2]
EPOCHS = 3


def new_run(storage: Path):
    """A smoke run (3 grid points: rank 1, 8, 32) as a launch leaves it: run.json and a store."""
    options = LaunchOptions(space="smoke", scale="smoke", storage=str(storage), name="r",
                            metrics_port=0, report=False, trial_options={"epochs": EPOCHS})
    launch = prepare_launch(options)
    launch.lock.release()
    launch.location.write_run_json(run_spec(launch))
    store = ResultStore(launch.location.store_root, run_id="r",
                        hyperparameters=launch.plan.hyperparameters())
    store.open()
    configs = [{**launch.plan.fixed, **s} for s in launch.plan.grid_samples()]
    return launch, store, configs


def trial_row(launch, trial_id: str, status: str, config: dict) -> dict:
    return {"trial_id": trial_id, "status": status, "space": "smoke", "rank": config["rank"]}


def checkpoint(launch, tune_id: str, index: int, epoch: int | None) -> str:
    path = Path(launch.location.tune_dir) / f"trial_{tune_id}" / f"checkpoint_{index:06d}"
    path.mkdir(parents=True)
    if epoch is not None:  # None: a checkpoint whose upload never finished
        (path / CHECKPOINT_EPOCH_FILE).write_text(json.dumps({"epoch": epoch}))
    return str(path)


def test_entries_skip_ended_trials_restore_unfinished_ones_and_add_unstarted(tmp_path):
    launch, store, (c1, c8, c32) = new_run(tmp_path)
    record_started(store.layout, "t1", c1)  # completed
    for it in range(1, EPOCHS + 1):
        store.add_result("t1", result(it, 0.5))
    store.set_trial(trial_row(launch, "t1", "completed", c1))
    record_started(store.layout, "t8", c8)  # errored after epoch 2, then retried once as "u8"
    record_started(store.layout, "u8", {"_resume": {"trial_id": "t8", "config": c8}})
    for it in (1, 2):
        store.add_result("t8", result(it, 0.5))
    store.set_trial(trial_row(launch, "t8", "errored", c8))
    store.flush()
    checkpoint(launch, "t8", 0, 1)
    usable = checkpoint(launch, "u8", 0, 2)
    checkpoint(launch, "u8", 1, 3)  # newer than the store: its epoch's rows were never written
    checkpoint(launch, "u8", 2, None)  # incomplete
    entries = resume_entries(launch)
    assert [e["trial_id"] for e in entries] == ["t8", None]
    restored, fresh = entries
    assert restored["restore"] == usable and restored["config"]["rank"] == 8
    assert fresh["restore"] is None and fresh["config"]["rank"] == c32["rank"]
    assert fresh["config"]["epochs"] == EPOCHS


def test_a_trial_whose_final_epoch_is_stored_replays_its_last_epoch(tmp_path):
    """Killed after its last epoch but before its terminal row: it must report once more."""
    launch, store, (c1, c8, c32) = new_run(tmp_path)
    for tid, config in (("t1", c1), ("t8", c8), ("t32", c32)):
        record_started(store.layout, tid, config)
        for it in range(1, EPOCHS + 1):
            store.add_result(tid, result(it, 0.5))
            checkpoint(launch, tid, it - 1, it)
    for tid, config in (("t1", c1), ("t8", c8)):
        store.set_trial(trial_row(launch, tid, "completed", config))
    store.flush()
    (entry,) = resume_entries(launch)
    assert entry["trial_id"] == "t32" and entry["restore"].endswith(f"checkpoint_{EPOCHS - 2:06d}")


class Payload:
    """What an attacker with write access to the storage plants: unpickling runs code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_resume_never_unpickles_what_is_in_storage(tmp_path):
    launch, store, configs = new_run(tmp_path)
    for i, config in enumerate(configs):
        record_started(store.layout, f"t{i}", config)
        store.add_result(f"t{i}", result(1, 0.5))
        store.set_trial(trial_row(launch, f"t{i}", "completed", config))
    store.flush()  # the driver died before its final compaction
    marker = tmp_path / "marker"
    tune_dir = Path(launch.location.tune_dir)
    tune_dir.mkdir(parents=True, exist_ok=True)
    blob = pickle.dumps(Payload(marker))
    (tune_dir / "tuner.pkl").write_bytes(blob)
    (tune_dir / "searcher-state-2026.pkl").write_bytes(blob)
    fallback = {"_type": "CLOUDPICKLE_FALLBACK", "value": blob.hex()}
    (tune_dir / "experiment_state-2026.json").write_text(json.dumps({"trial_data": [fallback]}))
    # The payload is real: unpickling tuner.pkl (what Tuner.restore does) runs it.
    probe = [sys.executable, "-c", f"import pickle; pickle.load(open({str(tune_dir)!r} + "
             "'/tuner.pkl', 'rb'))"]
    subprocess.run(probe, check=True, timeout=60)
    assert marker.read_text() == "pwned"
    marker.unlink()

    done = subprocess.run(
        [sys.executable, "-m", "sweep.launch", "--resume", "--name", "r", "--storage",
         str(tmp_path), "--metrics-port", "0", "--no-report"],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "(resumed)" in done.stdout and "3 completed" in done.stdout
    assert not marker.exists()
    parts = list((tmp_path / "r" / "store" / "history").glob("*.parquet"))
    assert len(parts) == 1  # the resume finished the store: compacted


@pytest.fixture(autouse=True)
def _no_leftover_lock(tmp_path):
    yield
    assert not (tmp_path / ".r.lock").exists()
