"""ResultStore: buffers rows in the driver and writes them as Parquet, exactly once per key.

Exactly once: history / robustness / layers rows are keyed by (trial_id, iteration). The store
knows every key already accepted (loaded from disk when it opens, so a resumed driver knows what
the previous one wrote), and a re-reported iteration (a trial restored from an older checkpoint
replays it, with the same seed and the same values) is dropped. The trials table holds one row per
trial_id; a later row (a resumed errored trial that now completes) replaces the earlier one.

Cheap with thousands of trials: rows are buffered and written as one part file per table when the
buffer is old (flush_seconds) or large (flush_rows), and at the end. A driver crash loses at most
the buffer; a resume restarts each trial from a checkpoint whose epoch the store holds.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from sweep.store._layout import (
    ROW_TABLES,
    TRIALS_FILE,
    StoreLayout,
    arrow_schema,
    new_part_name,
    new_session_token,
    table_columns,
)
from trainables import schema


class ResultStore:
    def __init__(
        self,
        store_root: str,
        *,
        run_id: str,
        hyperparameters: Mapping[str, str],
        flush_seconds: float = 5.0,
        flush_rows: int = 20_000,
    ) -> None:
        self.layout = StoreLayout.at(store_root)
        self.run_id = run_id
        self.hyperparameters = dict(hyperparameters)
        self.flush_seconds = flush_seconds
        self.flush_rows = flush_rows
        columns = table_columns(self.hyperparameters)
        self._schemas = {t: arrow_schema(c) for t, c in columns.items()}
        self._session = new_session_token()
        self._seq = 0
        self._keys: dict[str, set[tuple[str, int]]] = {t: set() for t in ROW_TABLES}
        self._buffers: dict[str, list[dict[str, Any]]] = {t: [] for t in ROW_TABLES}
        self._trials: dict[str, dict[str, Any]] = {}
        self._trials_dirty = False
        self._last_flush = time.monotonic()
        self._opened = False
        self.flushes = 0  # flush() calls so far: rows added before the n-th are on disk after it

    # ---- lifecycle ----------------------------------------------------------------------------
    def open(self) -> None:
        """Create the layout (or load what a previous driver of this run wrote)."""
        if self._opened:
            return
        self.layout.write_schema(self.hyperparameters, self.run_id)
        for table in ROW_TABLES:
            self.layout.fs.create_dir(self.layout.table_dir(table), recursive=True)
            parts = self.layout.parts(table)
            for path in parts:
                keys = self.layout.read(path, columns=["trial_id", "iteration"]).to_pydict()
                self._keys[table].update(zip(keys["trial_id"], keys["iteration"]))
            if not parts:  # an empty typed part, so a scan works (and shows the schema) at once
                self._write_part(table, [])
        self.layout.fs.create_dir(self.layout.table_dir("trials"), recursive=True)
        trials_path = self._trials_path()
        if trials_path in self.layout.parts("trials"):
            for row in self.layout.read(trials_path).to_pylist():
                self._trials[row["trial_id"]] = row
        else:
            self._trials_dirty = True
            self._flush_trials()
        self._opened = True

    def close(self) -> None:
        self.flush()
        self.compact()

    # ---- input --------------------------------------------------------------------------------
    def add_result(self, trial_id: str, result: Mapping[str, Any]) -> None:
        """One per-epoch result dict (schema.RESULT_SCALARS + 'robustness' + 'layers')."""
        iteration = int(result["iteration"])
        key = (trial_id, iteration)
        ident = {"trial_id": trial_id, "iteration": iteration}
        rows = {
            "history": [{**{k: result.get(k) for k in schema.RESULT_SCALARS}, **ident}],
            "robustness": [{**r, **ident} for r in result.get("robustness") or ()],
            "layers": [{**r, **ident} for r in result.get("layers") or ()],
        }
        for table, table_rows in rows.items():
            if key in self._keys[table]:
                continue  # replayed iteration: the first write stands
            self._keys[table].add(key)
            self._buffers[table].extend(table_rows)

    def set_trial(self, row: Mapping[str, Any]) -> None:
        """Insert or replace the trials row of row['trial_id']."""
        self._trials[row["trial_id"]] = {"run_id": self.run_id, **row}
        self._trials_dirty = True

    # ---- output -------------------------------------------------------------------------------
    def buffered_rows(self) -> int:
        return sum(len(b) for b in self._buffers.values())

    def maybe_flush(self, seconds: float | None = None) -> None:
        """Flush if the buffer is large, or holds rows (or a changed trials row) and the last
        flush is older than `seconds` (flush_seconds by default)."""
        limit = self.flush_seconds if seconds is None else seconds
        old = time.monotonic() - self._last_flush >= limit
        if self.buffered_rows() >= self.flush_rows or (old and self._pending()):
            self.flush()

    def flush(self) -> None:
        for table in ROW_TABLES:
            if self._buffers[table]:
                self._write_part(table, self._buffers[table])
                self._buffers[table] = []
        self._flush_trials()
        self._last_flush = time.monotonic()
        self.flushes += 1

    def compact(self) -> None:
        """Merge each table's parts into one file (at the end of a run: fewer files to scan).

        Idempotent: a crash at any step leaves every row on disk at least once, and the next
        compaction de-duplicates, so a rerun ends with each (trial_id, iteration) exactly once.
        The merged file is complete before any part is removed, so no row is ever missing; a
        reader scanning between the two steps may see a row twice (until the rerun).
        """
        for table in ROW_TABLES:
            self._remove_temporaries(table)
            parts = self.layout.parts(table)
            if len(parts) <= 1:
                continue
            _compaction_step(f"{table}: read {len(parts)} parts")
            merged = first_part_per_key([self.layout.read(p) for p in parts]).cast(
                self._schemas[table]
            )
            self._write_part(table, merged)
            _compaction_step(f"{table}: merged part written")
            for path in parts:
                self.layout.fs.delete_file(path)
                _compaction_step(f"{table}: deleted {path.rsplit('/', 1)[-1]}")

    def _remove_temporaries(self, table: str) -> None:
        """A crash inside write_atomic leaves a *.tmp beside the parts (one writer: the lock)."""
        selector = pafs.FileSelector(self.layout.table_dir(table), allow_not_found=True)
        for info in self.layout.fs.get_file_info(selector):
            if info.type == pafs.FileType.File and info.base_name.endswith(".tmp"):
                self.layout.fs.delete_file(info.path)

    def _pending(self) -> bool:
        return self._trials_dirty or self.buffered_rows() > 0

    def _write_part(self, table: str, rows: Iterable[dict[str, Any]] | pa.Table) -> None:
        data = (
            rows
            if isinstance(rows, pa.Table)
            else pa.Table.from_pylist(list(rows), schema=self._schemas[table])
        )
        self._seq += 1
        path = f"{self.layout.table_dir(table)}/{new_part_name(self._session, self._seq)}"
        self.layout.write_atomic(path, data)

    def _flush_trials(self) -> None:
        if not self._trials_dirty:
            return
        rows = sorted(self._trials.values(), key=lambda r: r["trial_id"])
        data = pa.Table.from_pylist(rows, schema=self._schemas["trials"])
        self.layout.write_atomic(self._trials_path(), data)
        self._trials_dirty = False

    def _trials_path(self) -> str:
        return f"{self.layout.table_dir('trials')}/{TRIALS_FILE}"


def first_part_per_key(parts: list[pa.Table]) -> pa.Table:
    """Concatenate parts, keeping each (trial_id, iteration) key's rows from the first part that
    holds it. A key's rows are always written together in one part (robustness and layers hold
    several rows per key), so a key found in a later part is a copy: a replayed iteration, or a
    crashed compaction's merged part beside the parts it merged."""
    seen: set[tuple[str, int]] = set()
    kept = []
    for part in parts:
        keys = list(zip(part.column("trial_id").to_pylist(), part.column("iteration").to_pylist()))
        mask = [key not in seen for key in keys]
        seen.update(keys)
        kept.append(part.filter(pa.array(mask, type=pa.bool_())) if not all(mask) else part)
    return pa.concat_tables(kept) if kept else pa.table({})


def _compaction_step(step: str) -> None:
    """Called after each step of compact(); tests replace it to crash there (fault injection)."""
