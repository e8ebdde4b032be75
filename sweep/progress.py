"""Plain progress lines for the launcher: one per finished trial, and a periodic summary.

Tune's own tables print every result key (including the per-layer lists); this prints what a
person watching a compression sweep wants to see.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from ray.tune import Callback

from sweep._pickling import PicklesAsArguments
from sweep.spaces import trial_options
from trainables import schema


class ProgressCallback(PicklesAsArguments, Callback):
    def __init__(
        self, hyperparameters: Sequence[str], total: int, summary_seconds: float = 30.0
    ) -> None:
        self._args = {
            "hyperparameters": list(hyperparameters),
            "total": total,
            "summary_seconds": summary_seconds,
        }
        self.hyperparameters = list(hyperparameters)
        self.total = total
        self.summary_seconds = summary_seconds
        self._finished = 0
        self._last_summary = time.monotonic()
        self._out: TextIO = sys.stdout

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._trial_line(trial, "done")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._trial_line(trial, "errored")

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if time.monotonic() - self._last_summary < self.summary_seconds:
            return
        self._last_summary = time.monotonic()
        states: dict[str, int] = {}
        for t in trials:
            states[t.status] = states.get(t.status, 0) + 1
        counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items()))
        self._print(f"[sweep] {counts} (of {self.total} planned)")

    def _trial_line(self, trial: Any, what: str) -> None:
        self._finished += 1
        r = trial.last_result or {}
        options = trial_options(trial.config)
        knobs = " ".join(f"{k}={options[k]}" for k in self.hyperparameters if k in options)
        metrics = " ".join(
            f"{k}={r[k]:.3f}"
            for k in schema.TRIAL_METRICS
            if isinstance(r.get(k), float)
        )
        flag = " DIVERGED" if r.get("diverged") else ""
        self._print(
            f"[{self._finished}/{self.total}] {trial.trial_id} {what}{flag}: {knobs} | {metrics}"
        )

    def _print(self, line: str) -> None:
        print(line, file=self._out, flush=True)
