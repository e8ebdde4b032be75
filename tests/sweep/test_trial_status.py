"""One status rule (trainables.schema.trial_status) for the store and the metrics export: the two
agree on every case, including an epoch budget that comes from a Cases-encoded value or from
TrialConfig's default."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sweep.metrics_model import trial_state
from sweep.spaces._space import encode_case
from sweep.store import StoreCallback
from trainables import schema
from trainables.config import TrialConfig

DEFAULT_EPOCHS = TrialConfig.__dataclass_fields__["epochs"].default

CASES = [
    # (config, last result, status)
    ({"epochs": 4}, {"iteration": 4}, "completed"),
    ({"epochs": 4}, {"iteration": 2}, "stopped"),
    ({"epochs": 4}, {"iteration": 2, "diverged": True}, "diverged"),
    ({"case": encode_case({"epochs": 4, "lr": 0.1})}, {"iteration": 2}, "stopped"),
    ({"case": encode_case({"epochs": 2, "lr": 0.1})}, {"iteration": 2}, "completed"),
    ({}, {"iteration": DEFAULT_EPOCHS - 1}, "stopped"),
    ({}, {"iteration": DEFAULT_EPOCHS}, "completed"),
    ({"epochs": 4}, {}, "stopped"),  # ended before reporting an epoch
]


@pytest.mark.parametrize(("config", "result", "status"), CASES)
def test_store_and_metrics_export_agree_on_the_status(tmp_path, config, result, status):
    trial = SimpleNamespace(trial_id="t1", config=config, last_result=result, num_failures=0)
    store = StoreCallback(str(tmp_path), run_id="r", space="s", hyperparameters={})
    store.on_trial_complete(0, [trial], trial)
    assert store.store._trials["t1"]["status"] == status
    assert trial_state("TERMINATED", result, config) == status


def test_errored_wins_over_everything():
    assert schema.trial_status({"iteration": 4}, 4, errored=True) == schema.ERRORED
    assert set(schema.TRIAL_STATUSES) == {"completed", "errored", "diverged", "stopped"}
