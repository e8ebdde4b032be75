"""StoreCallback: Ray Tune events in the driver -> ResultStore rows.

Tune pickles its callbacks with the experiment (tuner.pkl), so this object pickles as its
constructor arguments only; the store (buffers, known keys) is rebuilt from disk in `setup`, which
is what makes a resumed driver exactly-once. A resume never unpickles tuner.pkl: it starts a new
experiment from run.json and the records written here (sweep/resume.py), and a resumed trial keeps
its first store trial_id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from ray.tune import Callback

from sweep._pickling import PicklesAsArguments
from sweep.resume import record_started, store_trial_id
from sweep.spaces import column_value, configured_epochs, trial_options
from sweep.store._writer import ResultStore
from trainables import schema
from trainables.config import TrialConfig

log = logging.getLogger(__name__)

_MAX_ERROR_CHARS = 500


# Seconds between two flushes triggered by finished trials (the regular ones: flush_seconds).
COMPLETE_FLUSH_S = 1.0


class StoreCallback(PicklesAsArguments, Callback):
    def __init__(
        self,
        store_root: str,
        *,
        run_id: str,
        space: str,
        hyperparameters: Mapping[str, str],
        flush_seconds: float = 5.0,
        flush_rows: int = 20_000,
    ) -> None:
        self._args = {
            "store_root": store_root,
            "run_id": run_id,
            "space": space,
            "hyperparameters": dict(hyperparameters),
            "flush_seconds": flush_seconds,
            "flush_rows": flush_rows,
        }
        self.space = space
        self.store = ResultStore(
            store_root,
            run_id=run_id,
            hyperparameters=hyperparameters,
            flush_seconds=flush_seconds,
            flush_rows=flush_rows,
        )

    # ---- Tune events --------------------------------------------------------------------------
    def setup(self, **info: Any) -> None:
        self.store.open()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # What a resume rebuilds the trial from, as JSON (sweep/resume.py): never Tune's pickles.
        record_started(self.store.layout, trial.trial_id, trial.config)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any):
        if "iteration" in result:
            self.store.add_result(store_trial_id(trial.trial_id, trial.config), result)
        self.store.maybe_flush()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self.store.maybe_flush()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        status = schema.trial_status(trial.last_result, configured_epochs(trial.config))
        self.store.set_trial(self._trial_row(trial, status, ""))
        # A finished trial goes to disk promptly (at most one such flush per COMPLETE_FLUSH_S):
        # a driver killed right after keeps its rows, and a resume need not replay it. Tune's
        # snapshots used to trigger this flush about every epoch (sweep/keep_checkpoints.py).
        self.store.maybe_flush(COMPLETE_FLUSH_S)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        status = schema.trial_status(trial.last_result, None, errored=True)
        self.store.set_trial(self._trial_row(trial, status, _error_line(trial)))

    # No flush in get_state (Tune's experiment snapshot): a resume never starts from Tune's
    # snapshot (sweep/resume.py restarts each trial from a checkpoint whose epoch the store
    # holds), so the store need not be as fresh as it; flushing there wrote a part per table at
    # every snapshot, and the final compaction read them all. Rows flush every flush_seconds.

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.store.close()

    # ---- rows ---------------------------------------------------------------------------------
    def _trial_row(self, trial: Any, status: str, error: str) -> dict[str, Any]:
        result = trial.last_result or {}
        config = TrialConfig.from_dict(trial_options(trial.config)).to_dict()
        row: dict[str, Any] = {
            "trial_id": store_trial_id(trial.trial_id, trial.config),
            "space": self.space,
            "status": status,
            "seed": config["seed"],
            "iterations": int(result.get("iteration") or 0),
            **{name: result.get(name) for name in schema.TRIAL_METRICS},
            "wall_seconds": result.get("time_total_s"),
            "error": error,
            "node_id": result.get("node_id"),
            "config": json.dumps(config, default=list),
            "failures": int(getattr(trial, "num_failures", 0) or 0),
            "resumed_from": _resumed_from(result),
        }
        for name in self.store.hyperparameters:
            row[name] = column_value(name, config[name])
        return row


def _resumed_from(result: dict) -> int:
    """The epoch the trial's current run started after (Tune counts iterations since restore)."""
    iteration = int(result.get("iteration") or 0)
    since_restore = int(result.get("iterations_since_restore") or iteration)
    return max(0, iteration - since_restore)


def _error_line(trial: Any) -> str:
    """The exception line of the trial's error file (the last non-empty line of the traceback)."""
    path = getattr(trial, "error_file", None)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [ln.strip() for ln in f if ln.strip()]
    except (OSError, TypeError):
        log.debug("no readable error file for trial %s", trial.trial_id)
        return "error (no error file)"
    return (lines[-1] if lines else "error")[:_MAX_ERROR_CHARS]
