"""Per-trial result.json and params.json in Tune's layout, so `tune.ExperimentAnalysis(RUN/tune)`
and `Tuner.restore(...).get_results()` return one row per trial with its metrics, as Ray Tune
users expect.

Why not Tune's own JSON/CSV/TensorBoard loggers: the launcher turns them off
(TUNE_DISABLE_AUTO_CALLBACK_LOGGERS) because they keep an open file and the config of every trial
for the whole run and write the per-layer and per-attack lists with every result, so the driver
grew with the number of trials (bench/driver_memory.py). This callback writes only the scalar
metrics (schema.RESULT_SCALARS and Tune's bookkeeping scalars), opens the file per result and
closes it at once, and keeps nothing per trial: driver memory stays flat in the trial count.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from ray.air.constants import EXPR_PARAM_FILE, EXPR_RESULT_FILE
from ray.tune import Callback

from trainables import schema

# Tune's own per-result bookkeeping that ExperimentAnalysis and ResultGrid read.
TUNE_KEYS = ("trial_id", "training_iteration", "time_total_s", "time_this_iter_s", "timestamp",
             "done", "date", "hostname", "node_ip", "pid", "experiment_tag")


def scalar_result(result: dict[str, Any]) -> dict[str, Any]:
    """The result's scalars only (no robustness / layers lists), JSON-safe (NaN as null)."""
    out = {}
    for key in (*schema.RESULT_SCALARS, *TUNE_KEYS):
        value = result.get(key)
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        if value is None or isinstance(value, (bool, int, float, str)):
            out[key] = value
    return out


class ResultFiles(Callback):
    """Appends one JSON line per result to TRIAL_DIR/result.json; params.json at trial start."""

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        folder = self._folder(trial)
        params = {k: v for k, v in trial.config.items()
                  if isinstance(v, (bool, int, float, str, list, type(None)))}
        with open(os.path.join(folder, EXPR_PARAM_FILE), "w") as out:
            json.dump(params, out, indent=2, sort_keys=True, default=str)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        line = json.dumps(scalar_result(result) | {"config": _flat(trial.config)}, default=str)
        with open(os.path.join(self._folder(trial), EXPR_RESULT_FILE), "a") as out:
            out.write(line + "\n")

    @staticmethod
    def _folder(trial: Any) -> str:
        trial.init_local_path()  # Tune syncs this folder to the trial's storage path
        return trial.local_path


def _flat(config: dict[str, Any]) -> dict[str, Any]:
    """Scalar config values (ExperimentAnalysis flattens 'config' into config/<key> columns)."""
    return {k: v for k, v in config.items() if isinstance(v, (bool, int, float, str))}
