"""The launcher's terminal: a progress bar (tqdm, which Ray already depends on) with the trial
counts by state, the ETA and the best robust accuracy so far, and one line per finished trial
that says at which norm and eps its robust accuracy was measured.

Tune's own tables print every result key (including the per-layer lists); this prints what a
person watching a compression sweep wants to see.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from ray.tune import Callback
from tqdm import tqdm

from sweep._pickling import PicklesAsArguments
from sweep.spaces import trial_options
from trainables import schema

_STATE = {"PENDING": "pending", "RUNNING": "running", "PAUSED": "paused",
          "TERMINATED": "done", "ERROR": "errored"}


def headline_budget(options: dict[str, Any]) -> str:
    """Where the headline robust_acc is measured (trainables/trial.py: the config's first norm at
    its largest eps), e.g. 'linf eps=0.05'; '' when the config does not say."""
    norms = options.get("norms") or ()
    if not norms:
        return ""
    eps = options.get(f"eps_{norms[0]}") or ()
    return f"{norms[0]} eps={max(eps):g}" if eps else norms[0]


class ProgressCallback(PicklesAsArguments, Callback):
    def __init__(
        self, hyperparameters: Sequence[str], total: int, summary_seconds: float = 1.0
    ) -> None:
        self._args = {
            "hyperparameters": list(hyperparameters),
            "total": total,
            "summary_seconds": summary_seconds,
        }
        self.hyperparameters = list(hyperparameters)
        self.total = total
        self.summary_seconds = summary_seconds  # the bar's least redraw interval
        self._finished = 0
        self._best: float | None = None
        self._bar: tqdm | None = None
        self._drawn = 0.0
        self._out: TextIO = sys.stderr

    def _progress(self) -> tqdm:
        if self._bar is None:
            self._bar = tqdm(total=self.total, unit="trial", file=self._out, dynamic_ncols=True,
                             mininterval=self.summary_seconds, desc="sweep", leave=True)
        return self._bar

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._trial_line(trial, "done")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._trial_line(trial, "errored")

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        # Tune steps many times a second, and counting states walks every trial: only when drawn
        # (otherwise a 10,000-trial sweep spends its driver walking the list).
        if now - self._drawn < self.summary_seconds:
            return
        self._drawn = now
        self._draw(trials)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self._bar is not None:
            self._draw(trials)  # the last throttled draw may predate the last trials finishing
            self._bar.update(self._finished - self._bar.n)
            self._bar.close()
            self._bar = None

    def _draw(self, trials: list) -> None:
        states: dict[str, int] = {}
        for t in trials:
            name = _STATE.get(t.status, t.status.lower())
            states[name] = states.get(name, 0) + 1
        postfix = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
        if self._best is not None:
            postfix += f" | best RA {self._best:.3f}"
        bar = self._progress()
        bar.set_postfix_str(postfix, refresh=False)
        bar.refresh()

    def _trial_line(self, trial: Any, what: str) -> None:
        self._finished += 1
        r = trial.last_result or {}
        options = trial_options(trial.config)
        knobs = " ".join(f"{k}={options[k]}" for k in self.hyperparameters if k in options)
        budget = headline_budget(options)
        names = {"robust_acc": f"robust_acc({budget})" if budget else "robust_acc"}
        metrics = " ".join(
            f"{names.get(k, k)}={r[k]:.3f}"
            for k in schema.TRIAL_METRICS
            if isinstance(r.get(k), float)
        )
        ra = r.get("robust_acc")
        if isinstance(ra, float) and ra == ra and what == "done":
            self._best = ra if self._best is None else max(self._best, ra)
        flag = " DIVERGED" if r.get("diverged") else ""
        self._print(
            f"[{self._finished}/{self.total}] {trial.trial_id} {what}{flag}: {knobs} | {metrics}"
        )
        self._progress().update(self._finished - self._progress().n)

    def _print(self, line: str) -> None:
        # above the bar, which tqdm redraws below it; stdout keeps the trial lines for pipes
        tqdm.write(line, file=sys.stdout)
