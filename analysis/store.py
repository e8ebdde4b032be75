"""Open the Parquet result store of one or more run directories as Polars LazyFrames.

Everything that can be checked without reading data is checked here, up front: the store exists,
its _schema.json has a schema version this code reads (any up to schema.SCHEMA_VERSION) and every
contract column that version had, and every Parquet footer is readable with column types the
declared schema accepts. After that, queries scan lazily (projection and predicate pushdown happen
in Polars).

Schema growth (rule in trainables/schema.py): a contract column added after the store's version
(schema.ADDED_IN) reads as null in that store's rows, so older run directories stay readable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from analysis.errors import (
    EmptyRunError,
    MalformedStoreError,
    SchemaVersionError,
    StoreNotFoundError,
)
from trainables import schema

DTYPES: dict[str, pl.DataType] = {
    "str": pl.String(),
    "int64": pl.Int64(),
    "float64": pl.Float64(),
    "bool": pl.Boolean(),
}

_CAST = pl.ScanCastOptions(integer_cast="upcast", float_cast="upcast")


@dataclass(frozen=True)
class Run:
    """One run directory: where it is, its id, and its launch spec (run.json, {} when absent)."""

    path: Path
    run_id: str
    spec: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Tables:
    """One LazyFrame per store table. Every table carries run_id, so several runs combine safely;
    join tables on (run_id, trial_id)."""

    trials: pl.LazyFrame
    history: pl.LazyFrame
    robustness: pl.LazyFrame
    layers: pl.LazyFrame
    runs: tuple[Run, ...]
    hyperparameters: tuple[str, ...]  # swept trial columns beyond schema.TRIALS_COLUMNS (seed is not one)

    def frames(self) -> dict[str, pl.LazyFrame]:
        return {name: getattr(self, name) for name in schema.TABLES}


def load(run_dirs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> Tables:
    """Validate the store of each run directory and scan its tables lazily (several runs are
    concatenated; columns one run lacks are null in its rows)."""
    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    if not run_dirs:
        raise StoreNotFoundError("load needs at least one run directory, but got none")
    opened = [_open_run(Path(d)) for d in run_dirs]
    ids = [run.run_id for run, _, _ in opened]
    if len(set(ids)) != len(ids):
        raise MalformedStoreError(
            f"run ids must be distinct across run directories, but got {ids}; pass each run once"
        )
    frames = {}
    for table in schema.TABLES:
        parts = [tables[table] for _, tables, _ in opened]
        frames[table] = parts[0] if len(parts) == 1 else pl.concat(parts, how="diagonal_relaxed")
    hyperparameters: list[str] = []
    for _, _, hps in opened:
        hyperparameters += [h for h in hps if h not in hyperparameters]
    return Tables(
        **frames, runs=tuple(run for run, _, _ in opened), hyperparameters=tuple(hyperparameters)
    )


def _open_run(run_dir: Path) -> tuple[Run, dict[str, pl.LazyFrame], list[str]]:
    if not run_dir.is_dir():
        raise StoreNotFoundError(
            f"no run directory at {run_dir}; pass the directory sweep.launch printed"
        )
    store = run_dir / schema.STORE_DIR
    meta = _read_schema_json(store / schema.SCHEMA_FILE)
    declared = meta["tables"]
    run = Run(run_dir, *_read_run_json(run_dir, default_id=meta.get("run_id") or run_dir.name))
    frames = {}
    for table, required in schema.TABLES.items():
        columns = _table_columns(declared, table, required, store, meta["schema_version"])
        files = _parquet_files(store / table)
        _check_footers(files, columns)
        if files:
            frame = pl.scan_parquet(
                files,
                schema=columns,
                missing_columns="insert",
                extra_columns="ignore",
                cast_options=_CAST,
            )
        else:
            frame = pl.LazyFrame(schema=columns)
        if "run_id" not in columns:
            frame = frame.select(pl.lit(run.run_id).alias("run_id"), pl.all())
        frames[table] = frame
    # Checked after every table's schema, so a malformed store is reported as such.
    if frames["trials"].select(pl.len()).collect().item() == 0:
        raise EmptyRunError(
            f"run {run_dir} has no trial rows yet (store/trials is empty); "
            "wait for trials to finish, or check the sweep's log for errors"
        )
    return run, frames, _hyperparameters(meta, declared["trials"])


def _hyperparameters(meta: dict[str, Any], trials: dict[str, str]) -> list[str]:
    """The swept trial columns: _schema.json's "hyperparameters" list when the writer gives one
    (the service adds bookkeeping columns such as node_id that are not swept), else every trials
    column beyond schema.TRIALS_COLUMNS. The seed is a replicate, never a hyperparameter here."""
    listed = meta.get("hyperparameters")
    names = listed if isinstance(listed, list) else list(trials)
    return [c for c in names if c in trials and c not in schema.TRIALS_COLUMNS]


def _read_schema_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise StoreNotFoundError(
            f"{path.parent.parent} has no result store ({path} is missing); "
            "pass a run directory written by sweep.launch"
        )
    try:
        meta = json.loads(path.read_text())
        version, tables = meta["schema_version"], meta["tables"]
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise MalformedStoreError(
            f"{path} must be JSON with schema_version and tables, but reading it failed "
            f"({type(err).__name__}: {err}); re-write the store"
        ) from None
    readable = f"1..{schema.SCHEMA_VERSION}"
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SchemaVersionError(
            f"store schema_version must be {readable}, but {path} has {version!r}; "
            "re-write the store"
        )
    if version > schema.SCHEMA_VERSION:
        raise SchemaVersionError(
            f"store schema_version must be {readable} (what this code reads), but {path} has "
            f"{version!r}; analyse it with the newer project version that wrote it"
        )
    if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
        raise MalformedStoreError(f"{path}: tables must map table -> {{column: type}}")
    return meta


def _read_run_json(run_dir: Path, default_id: str) -> tuple[str, dict[str, Any]]:
    path = run_dir / schema.RUN_JSON
    if not path.is_file():
        return default_id, {}
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise MalformedStoreError(
            f"{path} must be a JSON object, but reading it failed ({err}); re-write or remove it"
        ) from None
    if not isinstance(spec, dict):
        raise MalformedStoreError(f"{path} must be a JSON object, but got {type(spec).__name__}")
    return str(spec.get("run_id") or default_id), spec


def _table_columns(
    declared: dict[str, dict[str, str]],
    table: str,
    required: dict[str, str],
    store: Path,
    version: int,
) -> dict[str, pl.DataType]:
    """The table's typed columns: the declared ones, plus contract columns newer than the store
    (null in its rows). Lacking a contract column its version already had is malformed."""
    columns = declared.get(table)
    if columns is None:
        raise MalformedStoreError(f"{store}/{schema.SCHEMA_FILE} declares no table {table!r}")
    missing = [c for c in required if c not in columns and schema.added_in(table, c) <= version]
    if missing:
        raise MalformedStoreError(
            f"table {table!r} in {store}/{schema.SCHEMA_FILE} (schema_version {version}) lacks "
            f"contract column(s) {missing}; re-write the store"
        )
    newer = {c: t for c, t in required.items() if c not in columns}
    columns = {**columns, **newer}
    unknown = {c: t for c, t in columns.items() if t not in DTYPES}
    if unknown:
        raise MalformedStoreError(
            f"column types must be one of {list(DTYPES)}, but table {table!r} has {unknown}"
        )
    return {c: DTYPES[t] for c, t in columns.items()}


def _parquet_files(folder: Path) -> list[Path]:
    # Names starting with "." or "_" are a writer's temporaries or metadata, never data.
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_")))


def _check_footers(files: list[Path], columns: dict[str, pl.DataType]) -> None:
    for path in files:
        try:
            found = pl.read_parquet_schema(path)
        except (pl.exceptions.PolarsError, OSError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise MalformedStoreError(
                f"cannot read Parquet file {path} ({reason}); delete or re-write it"
            ) from None
        for name, dtype in found.items():
            want = columns.get(name)
            if want is not None and not _castable(dtype, want):
                raise MalformedStoreError(
                    f"column {name!r} in {path} has type {dtype}, but _schema.json declares "
                    f"{want}; re-write the file"
                )


def _castable(found: pl.DataType, want: pl.DataType) -> bool:
    if found == want or found == pl.Null:
        return True
    return (found.is_integer() and want.is_integer()) or (found.is_float() and want.is_float())
