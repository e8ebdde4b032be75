"""analysis.load: validation up front, lazy scans, several runs combined."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest

from analysis import load
from analysis.errors import (
    EmptyRunError,
    MalformedStoreError,
    SchemaVersionError,
    StoreNotFoundError,
)
from analysis.store import DTYPES
from tests.analysis.conftest import synthetic_run, write_store
from trainables import schema
from trainables.errors import SweepError


def test_load_gives_one_lazyframe_per_table_with_run_id(run_dir):
    tables = load(run_dir)
    assert set(tables.frames()) == set(schema.TABLES)
    for name, frame in tables.frames().items():
        assert isinstance(frame, pl.LazyFrame)
        columns = frame.collect_schema().names()
        assert "run_id" in columns
        assert set(schema.TABLES[name]) <= set(columns)
    trials = tables.trials.collect()
    # 2 knobs x 5 strengths x 3 seeds completed, plus one errored trial
    assert trials.height == 31
    assert trials["run_id"].unique().to_list() == [run_dir.name]
    assert tables.hyperparameters == ("compression", "strength")
    assert tables.runs[0].spec["space"] == "synthetic"


def test_filters_are_pushed_into_the_parquet_scan(run_dir):
    plan = load(run_dir).robustness.filter(pl.col("norm") == "l2").explain()
    scan = plan[plan.index("Parquet SCAN"):]
    assert "SELECTION" in scan and "l2" in scan


def test_several_runs_combine_and_keep_their_run_id(run_dir, tmp_path):
    other = synthetic_run(tmp_path / "second", knobs=("rank",), seeds=(5,))
    tables = load([run_dir, other])
    counts = dict(tables.trials.group_by("run_id").len().collect().iter_rows())
    assert counts == {run_dir.name: 31, "second": 6}
    history = tables.history.group_by("run_id").len().collect()
    assert dict(history.iter_rows()) == {run_dir.name: 31 * 3 - 3, "second": 6 * 3 - 3}


def test_same_run_twice_is_rejected(run_dir):
    with pytest.raises(MalformedStoreError, match="distinct"):
        load([run_dir, run_dir])


def test_missing_directory_and_missing_store(tmp_path):
    with pytest.raises(StoreNotFoundError, match="no run directory"):
        load(tmp_path / "nope")
    (tmp_path / "bare").mkdir()
    with pytest.raises(StoreNotFoundError, match="_schema.json"):
        load(tmp_path / "bare")


def test_wrong_schema_version(run_dir, tmp_path):
    copy = shutil.copytree(run_dir / "store", tmp_path / "r" / "store")
    meta = json.loads((copy / "_schema.json").read_text())
    (copy / "_schema.json").write_text(json.dumps(meta | {"schema_version": 99}))
    with pytest.raises(SchemaVersionError, match="schema_version must be 1.*99"):
        load(tmp_path / "r")


def test_unreadable_parquet_file_is_named(run_dir, tmp_path):
    copy = shutil.copytree(run_dir / "store", tmp_path / "r" / "store")
    broken = min((copy / "layers").glob("*.parquet"))
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(MalformedStoreError, match=broken.name):
        load(tmp_path / "r")


def test_store_lacking_a_contract_column(tmp_path):
    write_store(tmp_path / "r", {}, {})
    meta = json.loads((tmp_path / "r/store/_schema.json").read_text())
    del meta["tables"]["robustness"]["bound_gap"]
    (tmp_path / "r/store/_schema.json").write_text(json.dumps(meta))
    with pytest.raises(MalformedStoreError, match="bound_gap"):
        load(tmp_path / "r")


def test_empty_run(tmp_path):
    write_store(tmp_path / "r", {}, {})
    with pytest.raises(EmptyRunError, match="no trial rows"):
        load(tmp_path / "r")
    empty = pl.DataFrame(schema={c: DTYPES[t] for c, t in schema.TRIALS_COLUMNS.items()})
    empty.write_parquet(tmp_path / "r/store/trials/part-000.parquet")
    with pytest.raises(EmptyRunError):
        load(tmp_path / "r")


def test_a_table_without_files_is_empty_but_typed(run_dir, tmp_path):
    copy = shutil.copytree(run_dir / "store", tmp_path / "r" / "store")
    shutil.rmtree(copy / "layers")
    layers = load(tmp_path / "r").layers.collect()
    assert layers.height == 0
    assert layers.schema["spec_norm"] == pl.Float64


def test_errors_are_sweep_errors_with_one_line(tmp_path):
    with pytest.raises(SweepError) as info:
        load(tmp_path / "missing")
    assert "\n" not in str(info.value)


def test_schema_json_hyperparameter_list_wins_over_extra_columns(tmp_path):
    run = synthetic_run(tmp_path / "r", knobs=("rank",), strengths=(0.5,), seeds=(0,))
    path = run / "store" / "_schema.json"
    meta = json.loads(path.read_text())
    meta["tables"]["trials"]["node_id"] = "str"  # a service bookkeeping column, not swept
    meta["hyperparameters"] = ["strength", "compression"]
    path.write_text(json.dumps(meta))
    tables = load(run)
    assert tables.hyperparameters == ("strength", "compression")
    trials = tables.trials.collect()
    assert trials["node_id"].null_count() == trials.height == 2  # declared, absent: null


def test_the_analysis_imports_neither_torch_nor_ray_nor_sweep():
    import subprocess
    import sys

    code = ("import sys, analysis.report, analysis.query; "
            "print(sorted(m for m in ('torch', 'ray', 'sweep') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.strip() == "[]"


# The trials table exactly as schema version 1 wrote it (before neuron_comp_l2 joined it): a
# historical fact, spelled out so this test does not just echo schema.ADDED_IN back.
_TRIALS_V1 = (
    "run_id", "trial_id", "space", "status", "seed", "iterations", "clean_acc", "robust_acc",
    "neuron_comp", "spectral_comp", "wall_seconds", "error",
)


def _old_layout_store(run_dir, tmp_path, name: str, trials_columns, version: int):
    """A copy of run_dir's store rewritten as `version` with only `trials_columns` in trials."""
    copy = shutil.copytree(run_dir / "store", tmp_path / name / "store")
    meta = json.loads((copy / "_schema.json").read_text())
    trials = meta["tables"]["trials"]
    kept = {c: t for c, t in trials.items() if c in trials_columns or c not in schema.TRIALS_COLUMNS}
    meta = meta | {"schema_version": version, "tables": meta["tables"] | {"trials": kept}}
    (copy / "_schema.json").write_text(json.dumps(meta))
    for path in (copy / "trials").glob("*.parquet"):
        pl.read_parquet(path).select(list(kept)).write_parquet(path)
    return tmp_path / name


def test_a_store_written_before_a_column_existed_loads_with_nulls(run_dir, tmp_path):
    old = _old_layout_store(run_dir, tmp_path, "v1", _TRIALS_V1, version=1)
    assert "neuron_comp_l2" not in pl.read_parquet_schema(min((old / "store/trials").glob("*")))
    trials = load(old).trials.collect()
    today = load(run_dir).trials.collect()
    assert trials.height == today.height
    assert trials["neuron_comp_l2"].dtype == pl.Float64
    assert trials["neuron_comp_l2"].null_count() == trials.height
    assert trials["neuron_comp"].null_count() < trials.height  # older columns still read
    # An old run and a new one combine: only the old one's rows are null in the new column.
    both = load([old, run_dir]).trials.collect()
    assert both.height == 2 * today.height
    assert both["neuron_comp_l2"].null_count() == trials.height + today["neuron_comp_l2"].null_count()


def test_a_store_lacking_a_column_its_version_had_is_malformed(run_dir, tmp_path):
    # Version 2 stores have neuron_comp_l2: its absence is damage, not age.
    bad = _old_layout_store(run_dir, tmp_path, "v2", _TRIALS_V1, version=2)
    with pytest.raises(MalformedStoreError, match="neuron_comp_l2"):
        load(bad)
    older = [c for c in _TRIALS_V1 if c != "spectral_comp"]
    bad = _old_layout_store(run_dir, tmp_path, "v1bad", older, version=1)
    with pytest.raises(MalformedStoreError, match="spectral_comp"):
        load(bad)


# The robustness columns schema version 3 added (the final evaluation protocol), spelled out: a
# store written before them (version 2) must still load, and the final view must still work.
_ROBUSTNESS_V3 = (
    "n_eval", "robust_acc_lo", "robust_acc_hi", "clean_acc_lo", "clean_acc_hi",
    "certified_acc_lo", "certified_acc_hi", "certified_acc_relaxed", "certified_acc_relaxed_lo",
    "certified_acc_relaxed_hi", "certified_method", "median_r_cert_relaxed", "cert_ratio_global",
    "cert_ratio_relaxed", "n_exact", "exact_acc", "exact_unknown",
)


def test_a_store_before_the_final_protocol_loads_and_analyses(run_dir, tmp_path):
    from analysis.band import band_violations
    from analysis.bound import radius_comparison
    from analysis.views import final_robustness

    copy = shutil.copytree(run_dir / "store", tmp_path / "v2" / "store")
    shutil.copy(run_dir / "run.json", tmp_path / "v2" / "run.json")  # the same run, older layout
    meta = json.loads((copy / "_schema.json").read_text())
    kept = {c: t for c, t in meta["tables"]["robustness"].items() if c not in _ROBUSTNESS_V3}
    meta = meta | {"schema_version": 2, "tables": meta["tables"] | {"robustness": kept}}
    (copy / "_schema.json").write_text(json.dumps(meta))
    for path in (copy / "robustness").glob("*.parquet"):
        pl.read_parquet(path).select(list(kept)).write_parquet(path)
    old = load(tmp_path / "v2")
    rows = old.robustness.collect()
    assert set(_ROBUSTNESS_V3) <= set(rows.columns)
    assert all(rows[c].null_count() == rows.height for c in _ROBUSTNESS_V3)
    final = final_robustness(old).collect()
    today = final_robustness(load(run_dir)).collect()
    assert final.height == today.height > 0
    assert final["robust_acc"].sort().equals(today["robust_acc"].sort())
    assert final["certified_acc_relaxed"].null_count() == final.height
    assert band_violations(old).collect().height == 0
    assert radius_comparison(final).height == 0  # nothing to compare: skipped, not guessed
