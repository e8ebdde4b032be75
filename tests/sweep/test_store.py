"""ResultStore on hand-built rows: layout, types, exactly-once keys, resume, atomic parts."""

from __future__ import annotations

import json
import math
import os

import polars as pl
import pytest

from sweep.store import ResultStore, StoreLayout
from trainables import schema

HYPER = {"rank": "int64", "strength": "float64", "compression": "str"}


def result(iteration: int, acc: float, *, n_rob: int = 3, n_layers: int = 2) -> dict:
    """A per-epoch result as trainables.Trial yields it (values derived from the arguments)."""
    scalars = {k: 0.5 for k, t in schema.RESULT_SCALARS.items() if t == "float64"}
    scalars.update(iteration=iteration, clean_acc=acc, robust_acc=acc / 2, diverged=False)
    robustness = [
        {"norm": "linf", "eps": 0.01 * (i + 1), "attack": "pgd", "robust_acc": acc - 0.1 * i}
        for i in range(n_rob)
    ]
    layers = [
        {"layer": f"encoder.{i}", "layer_index": i, "fro_norm": 1.0 + i} for i in range(n_layers)
    ]
    return {**scalars, "robustness": robustness, "layers": layers}


def open_store(root, **kw) -> ResultStore:
    store = ResultStore(str(root / "store"), run_id="r1", hyperparameters=HYPER, **kw)
    store.open()
    return store


def scan(root, table: str) -> pl.DataFrame:
    return pl.scan_parquet(str(root / "store" / table / "*.parquet")).collect()


def test_layout_schema_json_and_typed_empty_tables(tmp_path):
    open_store(tmp_path)
    doc = json.loads((tmp_path / "store" / "_schema.json").read_text())
    assert doc["schema_version"] == schema.SCHEMA_VERSION
    assert doc["hyperparameters"] == list(HYPER)
    for table, columns in schema.TABLES.items():
        assert set(columns) <= set(doc["tables"][table])
        frame = scan(tmp_path, table)  # readable at once, before any trial reported
        assert frame.height == 0
        assert frame.schema["trial_id"] == pl.String
    assert scan(tmp_path, "trials").schema["rank"] == pl.Int64


def test_rows_are_typed_and_counted(tmp_path):
    store = open_store(tmp_path)
    for it in (1, 2, 3):
        store.add_result("t1", result(it, 0.9 - 0.1 * it, n_rob=4, n_layers=2))
    store.flush()
    history = scan(tmp_path, "history").sort("iteration")
    assert history["iteration"].to_list() == [1, 2, 3]
    assert history["clean_acc"].to_list() == pytest.approx([0.8, 0.7, 0.6])
    assert history.schema["diverged"] == pl.Boolean
    assert history.schema["iteration"] == pl.Int64
    rob = scan(tmp_path, "robustness")
    assert rob.height == 3 * 4
    assert rob.schema["eps"] == pl.Float64
    # columns the hand-built rows omit are typed nulls, not missing
    assert rob["certified_acc"].null_count() == rob.height
    assert scan(tmp_path, "layers").height == 3 * 2


def test_replayed_iteration_is_written_once(tmp_path):
    """A trial restored from an older checkpoint reports iterations 2..3 again."""
    store = open_store(tmp_path)
    for it in (1, 2, 3):
        store.add_result("t1", result(it, 0.5))
    store.flush()
    for it in (2, 3, 4):
        store.add_result("t1", result(it, 0.5))
    store.flush()  # mid-run: readers scan the parts before any compaction de-duplicates
    assert_each_key_once(tmp_path, {("t1", i) for i in (1, 2, 3, 4)})
    store.close()
    assert_each_key_once(tmp_path, {("t1", i) for i in (1, 2, 3, 4)})


def test_resumed_driver_knows_keys_written_before(tmp_path):
    first = open_store(tmp_path)
    first.add_result("t1", result(1, 0.5))
    first.add_result("t2", result(1, 0.5))
    first.flush()  # then the driver dies without closing
    second = open_store(tmp_path)
    for trial in ("t1", "t2"):
        for it in (1, 2):
            second.add_result(trial, result(it, 0.5))
    second.flush()  # before compaction: the resumed driver itself wrote no copy
    assert_each_key_once(tmp_path, {("t1", 1), ("t1", 2), ("t2", 1), ("t2", 2)})
    second.close()
    assert_each_key_once(tmp_path, {("t1", 1), ("t1", 2), ("t2", 1), ("t2", 2)})


def test_trials_row_is_replaced_not_duplicated(tmp_path):
    store = open_store(tmp_path)
    store.set_trial(
        {
            "trial_id": "t1",
            "status": "errored",
            "error": "RuntimeError: boom",
            "rank": 4,
            "strength": 0,
            "compression": "rank",
        }
    )
    store.set_trial(
        {
            "trial_id": "t2",
            "status": "completed",
            "rank": None,
            "strength": 1e-3,
            "compression": "nuclear",
        }
    )
    store.flush()
    again = open_store(tmp_path)  # resume, and t1 now completes
    again.set_trial(
        {
            "trial_id": "t1",
            "status": "completed",
            "error": "",
            "rank": 4,
            "strength": 0.0,
            "compression": "rank",
        }
    )
    again.close()
    trials = scan(tmp_path, "trials").sort("trial_id")
    assert trials["trial_id"].to_list() == ["t1", "t2"]
    assert trials["status"].to_list() == ["completed", "completed"]
    assert trials["run_id"].to_list() == ["r1", "r1"]
    assert trials["rank"].to_list() == [4, None]
    assert trials.schema["strength"] == pl.Float64


def test_buffer_flushes_on_row_threshold_and_compacts_at_close(tmp_path):
    store = open_store(tmp_path, flush_rows=10, flush_seconds=3600)
    for it in range(1, 7):  # 6 results x (1 + 3 + 2) rows
        store.add_result("t1", result(it, 0.5))
        store.maybe_flush()
    assert store.buffered_rows() < 10
    parts_before = len(StoreLayout.at(str(tmp_path / "store")).parts("robustness"))
    assert parts_before >= 2
    readable_mid_run = scan(tmp_path, "history").height
    assert 0 < readable_mid_run <= 6
    store.close()
    layout = StoreLayout.at(str(tmp_path / "store"))
    for table in ("history", "robustness", "layers"):
        assert len(layout.parts(table)) == 1
    assert scan(tmp_path, "history").height == 6
    leftovers = [f for _, _, files in os.walk(tmp_path) for f in files if f.endswith(".tmp")]
    assert leftovers == []


def test_nan_metrics_survive_the_round_trip(tmp_path):
    store = open_store(tmp_path)
    r = result(1, 0.5)
    r["robustness"][0]["median_r_emp"] = math.inf
    r["robustness"][1]["median_r_emp"] = math.nan
    store.add_result("t1", r)
    store.close()
    values = scan(tmp_path, "robustness").sort("eps")["median_r_emp"].to_list()
    assert values[0] == math.inf and math.isnan(values[1])


def test_store_refuses_another_schema_version(tmp_path):
    open_store(tmp_path)
    path = tmp_path / "store" / "_schema.json"
    doc = json.loads(path.read_text())
    doc["schema_version"] = schema.SCHEMA_VERSION + 1
    path.write_text(json.dumps(doc))
    from trainables.errors import SweepError

    with pytest.raises(SweepError, match="schema_version"):
        open_store(tmp_path)


def test_store_writes_through_a_file_uri(tmp_path):
    """Storage given as a URI goes through pyarrow.fs (object stores take the same path)."""
    store = ResultStore(f"file://{tmp_path}/store", run_id="r1", hyperparameters=HYPER)
    store.open()
    store.add_result("t1", result(1, 0.5))
    store.set_trial({"trial_id": "t1", "status": "completed", "rank": 2})
    store.close()
    assert scan(tmp_path, "history")["trial_id"].to_list() == ["t1"]
    assert scan(tmp_path, "trials")["rank"].to_list() == [2]


# ---- crashes inside the store's own writes ----------------------------------------------------
ROWS_PER_KEY = {"history": 1, "robustness": 3, "layers": 2}  # result()'s defaults
IDENTITY = {"history": [], "robustness": ["norm", "eps", "attack"], "layers": ["layer"]}


def assert_each_key_once(root, keys: set[tuple[str, int]]) -> None:
    """Every table holds exactly the given (trial_id, iteration) keys, each with its own rows
    once: the row count per key is the expected count AND the rows of a key are distinct, so a
    duplicate is caught even when every key is duplicated alike (uniform duplicates)."""
    for table, per_key in ROWS_PER_KEY.items():
        frame = scan(root, table)
        counts = frame.group_by("trial_id", "iteration").len()
        assert set(counts.select("trial_id", "iteration").rows()) == keys, table
        assert counts["len"].to_list() == [per_key] * len(keys), table
        distinct = frame.unique(["trial_id", "iteration", *IDENTITY[table]]).height
        assert distinct == frame.height == per_key * len(keys), table


def two_sessions_of_parts(root) -> set[tuple[str, int]]:
    """A driver that flushed several parts and died, and a resumed one that replays an epoch."""
    first = open_store(root, flush_rows=1, flush_seconds=3600)
    for it in (1, 2, 3):
        first.add_result("t1", result(it, 0.5))
        first.add_result("t2", result(it, 0.6))
        first.maybe_flush()
    second = open_store(root, flush_rows=1, flush_seconds=3600)
    for it in (3, 4):
        second.add_result("t1", result(it, 0.5))
        second.maybe_flush()
    second.flush()
    return {("t1", i) for i in (1, 2, 3, 4)} | {("t2", i) for i in (1, 2, 3)}


class Crash(Exception):
    pass


def compaction_steps(tmp_path, monkeypatch) -> list[str]:
    import sweep.store._writer as writer

    seen: list[str] = []
    monkeypatch.setattr(writer, "_compaction_step", seen.append)
    keys = two_sessions_of_parts(tmp_path)
    open_store(tmp_path).compact()
    assert_each_key_once(tmp_path, keys)
    monkeypatch.undo()
    return seen


def test_crash_at_every_compaction_step_then_rerun_is_exactly_once(tmp_path, monkeypatch):
    import sweep.store._writer as writer

    steps = compaction_steps(tmp_path / "probe", monkeypatch)
    assert len(steps) > 6  # read, merged, a delete per part, for each of three tables
    left_duplicates = 0
    for i, step in enumerate(steps):
        root = tmp_path / f"crash{i}"
        keys = two_sessions_of_parts(root)

        calls = iter(range(len(steps)))

        def crash(at, _i=i, _calls=calls):  # part names differ per run: crash at the i-th step
            if next(_calls) == _i:
                raise Crash(at)

        monkeypatch.setattr(writer, "_compaction_step", crash)
        with pytest.raises(Crash):
            open_store(root).close()
        monkeypatch.undo()
        left_duplicates += scan(root, "history").height > len(keys)
        rerun = open_store(root)  # the resumed driver ends with close(): flush, then compact
        rerun.close()
        assert_each_key_once(root, keys)
        for table in ROWS_PER_KEY:
            assert len(StoreLayout.at(str(root / "store")).parts(table)) == 1, (step, table)
    assert left_duplicates > 0  # the crashes did leave duplicates for the rerun to remove


def test_crash_while_writing_a_file_leaves_every_file_readable(tmp_path, monkeypatch):
    """A writer dying mid-file (full disk, kill) must never leave a half Parquet file where a
    reader looks: parts and trials.parquet are written beside and renamed over."""
    import pyarrow.parquet as pq

    import sweep.store._layout as layout_module

    store = open_store(tmp_path)
    store.add_result("t1", result(1, 0.5))
    store.set_trial({"trial_id": "t1", "status": "errored", "rank": 2})
    store.flush()
    real_write = pq.write_table

    def dying_write(table, where, **kw):
        real_write(table, where, **kw)
        with open(where, "r+b") as f:  # the process dies with half the bytes on disk
            f.truncate(os.path.getsize(where) // 2)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(layout_module.pq, "write_table", dying_write)
    store.add_result("t1", result(2, 0.5))
    store.set_trial({"trial_id": "t1", "status": "completed", "rank": 2})
    with pytest.raises(OSError):
        store.flush()
    monkeypatch.undo()
    for table in (*ROWS_PER_KEY, "trials"):
        files = sorted((tmp_path / "store" / table).glob("*.parquet"))
        for path in files:
            pq.read_table(path)  # raises on a truncated file
    assert scan(tmp_path, "history")["iteration"].to_list() == [1]
    assert scan(tmp_path, "trials")["status"].to_list() == ["errored"]


def test_a_finished_trial_is_flushed_promptly_at_most_once_a_second(tmp_path):
    """on_trial_complete flushes the trials row when the last flush is >= COMPLETE_FLUSH_S old
    (long before flush_seconds), and not again within that second."""
    from types import SimpleNamespace

    from sweep.store._callback import COMPLETE_FLUSH_S, StoreCallback

    callback = StoreCallback(str(tmp_path / "store"), run_id="r", space="s", hyperparameters={},
                             flush_seconds=3600)
    callback.setup()
    store = callback.store

    def finish(trial_id: str) -> None:
        trial = SimpleNamespace(trial_id=trial_id, config={"epochs": 1, "dataset": "digits"},
                                last_result={"iteration": 1}, num_failures=0)
        callback.on_trial_complete(0, [], trial)

    store._last_flush -= COMPLETE_FLUSH_S  # the last flush was a second ago
    finish("t1")
    assert store.flushes == 1 and list((tmp_path / "store").glob("trials/*.parquet"))
    finish("t2")  # right after: waits for the regular flush
    assert store.flushes == 1
    callback.on_experiment_end([])
    assert store.flushes >= 2
