"""The run directory: where a run's files go, the checks made before writing any, run.json.

RUN_DIR = <storage>/<run name>      a local absolute path or a URI (pyarrow fs)
RUN_DIR/run.json  RUN_DIR/store/  RUN_DIR/tune/  RUN_DIR/report/   (see trainables/schema.py)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs

from sweep.store import StoreLayout
from sweep.store._layout import resolve_fs
from trainables.errors import ConfigError, SweepError
from trainables.schema import REPORT_DIR, RUN_JSON, STORE_DIR, TUNE_DIR


@dataclass(frozen=True)
class RunLocation:
    storage: str
    name: str

    @property
    def run_dir(self) -> str:
        return f"{self.storage.rstrip('/')}/{self.name}"

    @property
    def store_root(self) -> str:
        return f"{self.run_dir}/{STORE_DIR}"

    @property
    def tune_dir(self) -> str:
        return f"{self.run_dir}/{TUNE_DIR}"

    @property
    def report_dir(self) -> str:
        return f"{self.run_dir}/{REPORT_DIR}"

    @property
    def is_local(self) -> bool:
        return "://" not in self.storage or self.storage.startswith("file://")

    def local_run_dir(self) -> str | None:
        if not self.is_local:
            return None
        return self.run_dir.removeprefix("file://")

    # ---- checks (read only) -------------------------------------------------------------------
    def check_new(self) -> None:
        """A fresh run: the run directory must not exist and its parent must be writable."""
        fs, path = resolve_fs(self.run_dir)
        if fs.get_file_info(path).type != pafs.FileType.NotFound:
            raise ConfigError(
                f"run {self.run_dir} already exists; pass --resume to continue it "
                "or choose another --name"
            )
        if isinstance(fs, pafs.LocalFileSystem):
            _check_local_writable(os.path.dirname(path))
        else:
            storage_fs, storage_path = resolve_fs(self.storage)
            try:
                storage_fs.get_file_info(storage_path)
            except OSError as err:
                raise SweepError(f"storage {self.storage} is not reachable: {err}") from None

    def check_resumable(self) -> None:
        fs, path = resolve_fs(self.run_dir)
        for need in (RUN_JSON,):  # a resume reads run.json and the store, never Tune's pickles
            if fs.get_file_info(f"{path}/{need}").type != pafs.FileType.File:
                raise ConfigError(
                    f"cannot resume {self.run_dir}: {need} is missing; check --storage and --name "
                    "(runs are <storage>/<name>)"
                )
        if isinstance(fs, pafs.LocalFileSystem):
            _check_local_writable(path)
        StoreLayout.at(self.store_root)  # a URI that cannot be opened fails here

    # ---- run.json -----------------------------------------------------------------------------
    def write_run_json(self, spec: dict[str, Any]) -> None:
        fs, path = resolve_fs(self.run_dir)
        fs.create_dir(path, recursive=True)
        with fs.open_output_stream(f"{path}/{RUN_JSON}") as out:
            out.write(json.dumps(spec, indent=2, default=str).encode())

    def read_run_json(self) -> dict[str, Any]:
        fs, path = resolve_fs(self.run_dir)
        with fs.open_input_stream(f"{path}/{RUN_JSON}") as f:
            return json.loads(f.read())


def _check_local_writable(directory: str) -> None:
    """The nearest existing ancestor must be a writable directory (nothing is created here)."""
    probe = directory
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(
            f"storage {directory} is not writable ({probe} is not a writable directory); "
            "pass --storage DIR that you can write to"
        )
