"""The contract every registered space keeps, at every scale (sweep.spaces.list_spaces()).

Parametrized over the registry: a new space (one module calling `register`, plus its import line
in sweep/spaces/__init__.py) is covered here without editing this file.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from sweep.spaces import SCALES, column_value, configured_epochs, list_spaces, trial_options
from sweep.store._layout import TRIALS_EXTRA_COLUMNS, arrow_schema, trials_columns
from trainables import schema
from trainables.config import TrialConfig

CASES = [(space.name, scale) for space in list_spaces() for scale in sorted(space.scales)]


def plan_of(name: str, scale: str):
    return next(s for s in list_spaces() if s.name == name).resolve(scale)


def test_every_space_runs_at_every_scale():
    for space in list_spaces():
        assert set(space.scales) == set(SCALES), space.name


@pytest.mark.parametrize(("name", "scale"), CASES)
def test_space_plans_valid_trials_the_store_can_hold(name, scale):
    plan = plan_of(name, scale)
    assert plan.objective in schema.HEADLINES  # a metric every trial reports
    columns = plan.hyperparameters()
    # A swept column that is also a trials-table column (the seed) must keep that column's type.
    fixed_columns = {**schema.TRIALS_COLUMNS, **TRIALS_EXTRA_COLUMNS}
    assert {c: fixed_columns[c] for c in columns if c in fixed_columns} == {
        c: t for c, t in columns.items() if c in fixed_columns
    }
    row_schema = arrow_schema(trials_columns(columns))
    for sample in plan._corners():
        config = TrialConfig.from_dict(trial_options(sample))  # raises on an invalid point
        # The status rule reads the same epoch budget the trial runs.
        assert configured_epochs(sample) == config.epochs
        values = config.to_dict()
        row = {c: column_value(c, values[c]) for c in columns}
        pa.Table.from_pylist([row], schema=pa.schema([row_schema.field(c) for c in columns]))
    assert plan.trial_count("grid") >= 1
