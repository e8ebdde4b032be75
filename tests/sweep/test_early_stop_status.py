"""A trial that stops itself by patience (early_stopped in its last result) is completed, not
stopped: the analysis keeps completed trials only."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sweep.store._callback import StoreCallback


@pytest.mark.parametrize(
    ("last", "status"),
    [
        ({"iteration": 4}, "completed"),
        ({"iteration": 2}, "stopped"),
        ({"iteration": 2, "early_stopped": True}, "completed"),
        ({"iteration": 2, "diverged": True}, "diverged"),
    ],
)
def test_store_status_of_a_finished_trial(tmp_path, last, status):
    callback = StoreCallback(str(tmp_path / "store"), run_id="r", space="s", hyperparameters={})
    rows = []
    callback.store.set_trial = rows.append  # the row, not the Parquet writer, is under test
    trial = SimpleNamespace(trial_id="t1", config={"epochs": 4, "dataset": "digits"},
                            last_result=last, num_failures=0)
    callback.on_trial_complete(0, [], trial)
    assert rows[0]["status"] == status
