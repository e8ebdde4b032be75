"""A trial's time budget: wall seconds per phase, each second counted in exactly one phase.

Phases nest (a metrics computation inside an evaluation): the innermost open phase owns the
time, so the phases are disjoint and add up to at most the trial's wall time. The totals are the
result keys schema.TIME_BUDGET (t_data, t_build, t_train, t_eval, t_final, t_metrics,
t_checkpoint), cumulative over the trial's life: a checkpoint carries them (state_dict /
load_state_dict), so a resumed trial keeps counting.

    timer = PhaseTimer()
    with timer.phase("t_train"):
        ...
    result.update(timer.totals())
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from trainables import schema


class PhaseTimer:
    def __init__(self, clock=time.perf_counter):
        self._clock = clock
        self._totals = dict.fromkeys(schema.TIME_BUDGET, 0.0)
        self._open: list[str] = []  # the phase stack; the last one is being charged
        self._since = 0.0  # when the innermost open phase was last charged

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.begin(name)
        try:
            yield
        finally:
            self.end()

    def begin(self, name: str) -> None:
        """Open a phase (nested in the open one, which stops being charged until end())."""
        self._check(name)
        self._charge()
        self._open.append(name)

    def end(self) -> None:
        """Close the innermost open phase."""
        self._charge()
        self._open.pop()

    def add(self, name: str, seconds: float) -> None:
        """Charge time measured elsewhere (the checkpoint a Ray wrapper wrote)."""
        self._check(name)
        self._totals[name] += max(0.0, float(seconds))

    def totals(self) -> dict[str, float]:
        """Seconds per phase so far (an open phase included up to now)."""
        self._charge()
        return dict(self._totals)

    def state_dict(self) -> dict[str, float]:
        return self.totals()

    def load_state_dict(self, state: Mapping[str, float] | None) -> None:
        """Add a checkpoint's totals to this run's (its data and build time were spent too)."""
        for name, seconds in (state or {}).items():
            if name in self._totals:
                self._totals[name] += float(seconds)

    def _check(self, name: str) -> None:
        if name not in self._totals:
            raise KeyError(f"{name!r} is not a time-budget phase; use one of {schema.TIME_BUDGET}")

    def _charge(self) -> None:
        now = self._clock()
        if self._open:
            self._totals[self._open[-1]] += now - self._since
        self._since = now


__all__ = ["PhaseTimer"]
