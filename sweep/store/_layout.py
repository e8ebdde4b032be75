"""Where the store's files live and what their columns are (contract: trainables/schema.py).

    RUN_DIR/store/_schema.json          schema_version, every table's typed columns, hyperparameters
    RUN_DIR/store/trials/trials.parquet one row per trial, rewritten atomically at each flush
    RUN_DIR/store/<table>/part-*.parquet append-only parts for history / robustness / layers

Paths go through pyarrow.fs so the same code writes a local directory or an object store URI.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from trainables import schema
from trainables.errors import SweepError

# Trials-table columns the service adds on top of schema.TRIALS_COLUMNS and the hyperparameters.
TRIALS_EXTRA_COLUMNS: dict[str, str] = {
    "node_id": "str",  # Ray node the trial's last result came from
    "config": "str",  # the full TrialConfig as JSON
    "failures": "int64",  # times the trial failed and was retried from its checkpoint
    "resumed_from": "int64",  # epoch of the checkpoint its last run resumed from (0: none)
}
ROW_TABLES: tuple[str, ...] = ("history", "robustness", "layers")  # keyed by (trial_id, iteration)
TRIALS_FILE = schema.TRIALS_FILE
SCHEMA_FILE = schema.SCHEMA_FILE

_ARROW = {"str": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_()}


def trials_columns(hyperparameters: dict[str, str]) -> dict[str, str]:
    return {**schema.TRIALS_COLUMNS, **TRIALS_EXTRA_COLUMNS, **hyperparameters}


def table_columns(hyperparameters: dict[str, str]) -> dict[str, dict[str, str]]:
    return {**schema.TABLES, "trials": trials_columns(hyperparameters)}


def arrow_schema(columns: dict[str, str]) -> pa.Schema:
    return pa.schema([(name, _ARROW[kind]) for name, kind in columns.items()])


def resolve_fs(root: str) -> tuple[pafs.FileSystem, str]:
    """A local absolute path or a URI (file://, s3://, gs://, ...) -> (filesystem, path in it)."""
    if "://" in root:
        try:
            return pafs.FileSystem.from_uri(root)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as err:
            raise SweepError(f"storage URI {root!r} is not usable: {err}; check it") from None
    if not os.path.isabs(root):
        raise SweepError(f"storage path must be absolute, but got {root!r}")
    return pafs.LocalFileSystem(), root


@dataclass(frozen=True)
class StoreLayout:
    fs: pafs.FileSystem
    root: str  # RUN_DIR/store inside fs

    @classmethod
    def at(cls, store_root: str) -> StoreLayout:
        fs, path = resolve_fs(store_root)
        return cls(fs, path.rstrip("/"))

    def table_dir(self, table: str) -> str:
        return f"{self.root}/{table}"

    def schema_path(self) -> str:
        return f"{self.root}/{SCHEMA_FILE}"

    def parts(self, table: str) -> list[str]:
        selector = pafs.FileSelector(self.table_dir(table), allow_not_found=True)
        infos = self.fs.get_file_info(selector)
        return sorted(
            i.path
            for i in infos
            if i.type == pafs.FileType.File and i.base_name.endswith(".parquet")
        )

    def write_atomic(self, path: str, table: pa.Table) -> None:
        """Readers never see a half-written file: write beside it, then rename over it."""
        if isinstance(self.fs, pafs.LocalFileSystem):
            tmp = f"{path}.{secrets.token_hex(4)}.tmp"
            pq.write_table(table, tmp, filesystem=self.fs)
            self.fs.move(tmp, path)
        else:  # object stores publish an object whole when its upload completes
            pq.write_table(table, path, filesystem=self.fs)

    def read(self, path: str, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(path, columns=columns, filesystem=self.fs)

    def write_schema(self, hyperparameters: dict[str, str], run_id: str) -> None:
        doc = {
            "schema_version": schema.SCHEMA_VERSION,
            "run_id": run_id,
            "hyperparameters": list(hyperparameters),
            "tables": table_columns(hyperparameters),
        }
        self.fs.create_dir(self.root, recursive=True)
        path = self.schema_path()
        if self.fs.get_file_info(path).type == pafs.FileType.File:
            existing = self.read_schema()
            if existing.get("schema_version") != schema.SCHEMA_VERSION:
                raise SweepError(
                    f"store at {self.root} has schema_version {existing.get('schema_version')}, "
                    f"this code writes {schema.SCHEMA_VERSION}; resume it with a matching version"
                )
            return
        data = json.dumps(doc, indent=2).encode()
        tmp = f"{path}.{secrets.token_hex(4)}.tmp"
        with self.fs.open_output_stream(tmp) as out:
            out.write(data)
        self.fs.move(tmp, path)

    def read_schema(self) -> dict:
        with self.fs.open_input_stream(self.schema_path()) as f:
            return json.loads(f.read())


def new_part_name(session: str, seq: int) -> str:
    return f"part-{session}-{seq:06d}.parquet"


def new_session_token() -> str:
    """Sortable by start time, unique across driver restarts of the same run."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(2)}"
