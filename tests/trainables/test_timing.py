"""The time budget: disjoint phases that add up to the trial's time, carried across a resume."""

from __future__ import annotations

import math
import time

import pytest

from trainables import schema
from trainables.timing import PhaseTimer
from trainables.trial import Trial


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_nested_phases_charge_only_the_innermost():
    clock = Clock()
    timer = PhaseTimer(clock)
    clock.now = 5.0  # outside any phase: charged nowhere
    with timer.phase("t_eval"):
        clock.now += 2.0
        with timer.phase("t_metrics"):
            clock.now += 3.0
        clock.now += 1.0
    timer.begin("t_train")
    clock.now += 4.0
    timer.end()
    timer.add("t_checkpoint", 0.5)
    totals = timer.totals()
    assert totals["t_eval"] == 3.0 and totals["t_metrics"] == 3.0 and totals["t_train"] == 4.0
    assert totals["t_checkpoint"] == 0.5 and set(totals) == set(schema.TIME_BUDGET)
    restored = PhaseTimer(clock)
    restored.load_state_dict(timer.state_dict())
    restored.add("t_train", 1.0)
    assert restored.totals()["t_train"] == 5.0 and restored.totals()["t_eval"] == 3.0
    with pytest.raises(KeyError, match="time-budget phase"):
        timer.add("t_nothing", 1.0)


def test_schema_lists_the_budget_as_new_history_columns():
    assert set(schema.TIME_BUDGET) <= set(schema.RESULT_SCALARS)
    assert all(schema.added_in("history", key) == 5 for key in schema.TIME_BUDGET)
    assert schema.SCHEMA_VERSION >= 5


def smoke_config(**extra):
    return {"dataset": "digits", "model": "fcn", "width": 16, "depth": 1, "epochs": 3,
            "n_eval": 16, "r_emp_samples": 4, "attack_steps": 3, "eps_linf": [0.05],
            "norms": ["linf"], "batch_size": 64, "lr": 0.05, "seed": 0, **extra}


def test_a_trials_budget_is_disjoint_cumulative_and_within_its_wall_time(tmp_path):
    start = time.perf_counter()
    trial = Trial(smoke_config(eval_every=2))
    results = []
    for result in trial.epochs():
        results.append(result)
    wall = time.perf_counter() - start
    last = results[-1]
    budget = {k: last[k] for k in schema.TIME_BUDGET}
    assert all(math.isfinite(v) and v >= 0 for v in budget.values())
    assert budget["t_data"] > 0 and budget["t_build"] > 0 and budget["t_train"] > 0
    assert budget["t_metrics"] > 0 and budget["t_eval"] > 0 and budget["t_final"] > 0
    assert sum(budget.values()) <= wall  # disjoint: never more than the time that passed
    # Cumulative: every phase only grows; the final evaluation happens at the last epoch only.
    for before, after in zip(results, results[1:]):
        assert all(after[k] >= before[k] for k in schema.TIME_BUDGET)
    assert results[-2]["t_final"] == 0 and results[-2]["t_eval"] > 0
    # Training and evaluation are the epochs: what is not data, build or checkpoint.
    assert budget["t_train"] + budget["t_eval"] + budget["t_final"] + budget["t_metrics"] <= (
        last["time"] + 1e-6)
    # A resumed trial keeps counting from its checkpoint's totals.
    first = Trial(smoke_config())
    it = first.epochs()
    at_one = next(it)
    first.save(tmp_path)
    resumed = Trial(smoke_config())
    own_data = resumed.timer.totals()["t_data"]
    resumed.load(tmp_path)
    again = next(resumed.epochs())
    assert again["iteration"] == 2
    assert again["t_data"] >= at_one["t_data"] + own_data - 1e-9
    assert again["t_train"] > at_one["t_train"]
