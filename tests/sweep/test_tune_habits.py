"""What Ray Tune and Optuna users reach for: --search optuna keeps its study in the run directory
(optuna-dashboard opens it), and result.json lines hold the scalar metrics only."""

from __future__ import annotations

import math

import cloudpickle
import optuna

from sweep.spaces import get_space
from sweep.tune_files import scalar_result
from sweep.tuner import _search_alg, optuna_storage_url, param_space


def test_optuna_search_stores_its_study_in_the_run_directory(tmp_path):
    run_dir = tmp_path / "runA"
    run_dir.mkdir()
    plan = get_space("smoke").resolve("smoke", {})
    searcher = _search_alg(plan, "optuna", str(run_dir))
    assert searcher.set_search_properties(None, None, param_space(plan, "optuna"))
    config = searcher.suggest("t1")
    searcher.on_trial_complete("t1", {"robust_acc": 0.5, plan.objective: 0.25})
    # Tune checkpoints the searcher by pickling it; the stored study must survive that
    cloudpickle.loads(cloudpickle.dumps(searcher))
    assert (run_dir / "optuna.db").is_file()
    study = optuna.load_study(study_name="runA", storage=optuna_storage_url(str(run_dir)))
    assert len(study.trials) == 1 and study.trials[0].values == [0.5, 0.25]
    params = study.trials[0].params
    assert params and params == {k: v for k, v in config.items() if k in params}


def test_result_lines_keep_scalars_only():
    line = scalar_result({"clean_acc": 0.9, "robust_acc": math.nan, "training_iteration": 2,
                          "robustness": [{"norm": "linf"}], "layers": [{}], "trial_id": "a"})
    assert line["clean_acc"] == 0.9 and line["robust_acc"] is None
    assert line["training_iteration"] == 2 and line["trial_id"] == "a"
    assert "robustness" not in line and "layers" not in line
