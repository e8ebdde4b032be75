"""The progress bar walks Tune's trial list only when it redraws (Tune steps many times a second)."""

from __future__ import annotations

import io

from sweep.progress import ProgressCallback


class CountingTrials(list):
    def __init__(self, *args):
        super().__init__(*args)
        self.walks = 0

    def __iter__(self):
        self.walks += 1
        return super().__iter__()


class FakeTrial:
    status = "RUNNING"


def test_steps_between_redraws_do_not_walk_the_trials():
    cb = ProgressCallback(["seed"], total=3, summary_seconds=3600.0)
    cb._out = io.StringIO()
    trials = CountingTrials([FakeTrial(), FakeTrial()])
    for step in range(100):
        cb.on_step_end(step, trials)
    assert trials.walks == 1  # the first draw only; the next is an hour away
    assert "2 running" in cb._out.getvalue()
    cb.summary_seconds = 0.0
    cb.on_step_end(100, trials)
    assert trials.walks == 2
    cb.on_experiment_end(trials)


def test_the_bar_closes_with_the_final_counts():
    """Trials finishing between two throttled draws still show on the closed bar."""
    cb = ProgressCallback(["seed"], total=2, summary_seconds=3600.0)
    cb._out = io.StringIO()
    trials = [FakeTrial(), FakeTrial()]
    cb.on_step_end(0, trials)  # drawn: 2 running
    for t in trials:
        t.status = "TERMINATED"
    cb.on_step_end(1, trials)  # throttled: not drawn
    cb.on_experiment_end(trials)
    assert cb._out.getvalue().rstrip().endswith("2 done]")
