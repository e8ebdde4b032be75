"""StoreCallback: Ray Tune events in the driver -> ResultStore rows.

Tune pickles its callbacks with the experiment (tuner.pkl) and unpickles them on
Tuner.restore, so this object pickles as its constructor arguments only; the store (buffers,
known keys) is rebuilt from disk in `setup`, which is what makes driver resume exactly-once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from ray.tune import Callback

from sweep.spaces import column_value, trial_options
from sweep.store._writer import ResultStore
from trainables.config import TrialConfig

log = logging.getLogger(__name__)

_MAX_ERROR_CHARS = 500


class StoreCallback(Callback):
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

    def __getstate__(self) -> dict[str, Any]:
        return dict(self._args)

    def __setstate__(self, state: dict[str, Any]) -> None:
        args = dict(state)
        self.__init__(args.pop("store_root"), **args)

    # ---- Tune events --------------------------------------------------------------------------
    def setup(self, **info: Any) -> None:
        self.store.open()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any):
        if "iteration" in result:
            self.store.add_result(trial.trial_id, result)
        self.store.maybe_flush()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self.store.maybe_flush()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        epochs = TrialConfig.from_dict(trial_options(trial.config)).epochs
        if result.get("diverged"):
            status = "diverged"
        elif int(result.get("iteration") or 0) >= epochs or result.get("early_stopped"):
            status = "completed"
        else:  # ended early by the scheduler (ASHA) or a stop condition
            status = "stopped"
        self.store.set_trial(self._trial_row(trial, status, ""))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.store.set_trial(self._trial_row(trial, "errored", _error_line(trial)))

    def get_state(self) -> None:
        # Tune calls this right after writing its experiment snapshot: flushing here keeps the
        # store at least as fresh as the snapshot a resumed driver starts from.
        self.store.flush()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.store.close()

    # ---- rows ---------------------------------------------------------------------------------
    def _trial_row(self, trial: Any, status: str, error: str) -> dict[str, Any]:
        result = trial.last_result or {}
        config = TrialConfig.from_dict(trial_options(trial.config)).to_dict()
        row: dict[str, Any] = {
            "trial_id": trial.trial_id,
            "space": self.space,
            "status": status,
            "seed": config["seed"],
            "iterations": int(result.get("iteration") or 0),
            "clean_acc": result.get("clean_acc"),
            "robust_acc": result.get("robust_acc"),
            "neuron_comp": result.get("neuron_comp"),
            "neuron_comp_l2": result.get("neuron_comp_l2"),
            "spectral_comp": result.get("spectral_comp"),
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
