"""Launch -> ray.tune.Tuner: param space, search algorithm, scheduler, resources, callbacks.

A resumed run is a new experiment over the trials still to run (sweep/resume.py): Tuner.restore
would unpickle tuner.pkl and the experiment state from storage, which a resume never does.
"""

from __future__ import annotations

import os
from typing import Any

from ray import tune
from ray.tune import CheckpointConfig, FailureConfig, RunConfig, TuneConfig, Tuner

from sweep.keep_checkpoints import KeepNewestCheckpoints
from sweep.metrics_export import SweepMetrics
from sweep.preflight import Launch
from sweep.progress import ProgressCallback
from sweep.spaces._space import RESUME_KEY
from sweep.spaces import Cases, Grid, IntRange, LogUniform, Plan, Uniform
from sweep.store import StoreCallback
from sweep.trainable import tune_trial
from sweep.trim import TrimFinishedTrials
from sweep.tune_files import ResultFiles

HEADLINE_METRIC = "robust_acc"
# Two kept checkpoints: the newest may be mid-upload when a trial dies.
CHECKPOINTS_KEPT = 2


def param_space(plan: Plan, search: str) -> dict[str, Any]:
    """Fixed values as constants; Grid / Cases as grid_search (grid) or choice; distributions."""
    space: dict[str, Any] = dict(plan.fixed)
    for key, param in plan.params.items():
        if isinstance(param, (Grid, Cases)):
            values = list(param.corners())
            space[key] = tune.grid_search(values) if search == "grid" else tune.choice(values)
        elif isinstance(param, Uniform):
            space[key] = tune.uniform(param.low, param.high)
        elif isinstance(param, LogUniform):
            space[key] = tune.loguniform(param.low, param.high)
        elif isinstance(param, IntRange):
            space[key] = tune.randint(param.low, param.high + 1)  # randint's upper end is exclusive
        else:
            raise TypeError(f"unsupported parameter type {type(param).__name__}")
    return space


def trainable_with_resources(launch: Launch) -> Any:
    options = launch.options
    resources = {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial}
    # --checkpoint-seconds is the sweep's, not a trial's: bound to the function, it stays out of
    # the config, hence out of the store's hyperparameter columns, trial ids and resume entries.
    trainable = tune.with_parameters(tune_trial, checkpoint_seconds=options.checkpoint_seconds)
    return tune.with_resources(trainable, resources)


def callbacks(launch: Launch) -> list[tune.Callback]:
    plan, options, location = launch.plan, launch.options, launch.location
    hyperparameters = plan.hyperparameters()
    run_id = location.name
    store = StoreCallback(
        location.store_root, run_id=run_id, space=plan.space, hyperparameters=hyperparameters
    )
    found = [
        store,
        ProgressCallback(list(hyperparameters), total=launch.trial_count),
        ResultFiles(),  # result.json per trial, for tune.ExperimentAnalysis users
        # What CheckpointConfig(num_to_keep) did, without its forced snapshot every
        # CHECKPOINTS_KEPT checkpoints of a trial (sweep/keep_checkpoints.py); after the store.
        KeepNewestCheckpoints(CHECKPOINTS_KEPT, store=store),
    ]
    if launch.metrics is not None:  # bound by preflight: no other process took the port since
        found.append(launch.metrics)
    elif options.metrics_port:
        # Pickles as its settings, so Tuner.restore brings it back; serves from setup().
        found.append(SweepMetrics(space=plan.space, run_id=run_id, port=options.metrics_port))
    return found


def build_tuner(
    launch: Launch, extra_callbacks: list | None = None, resume: list | None = None
) -> Tuner:
    """A new experiment; with resume (sweep/resume.py entries), a grid over exactly those."""
    plan, options = launch.plan, launch.options
    resumed = resume is not None
    return Tuner(
        trainable_with_resources(launch),
        param_space={RESUME_KEY: tune.grid_search(resume)} if resumed
        else param_space(plan, options.search),
        tune_config=TuneConfig(
            num_samples=1 if resumed else launch.num_samples,
            search_alg=(None if resumed else
                        _search_alg(plan, options.search, launch.location.local_run_dir())),
            scheduler=_scheduler(plan, options.scheduler),
            max_concurrent_trials=options.max_concurrent,
            reuse_actors=True,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=RunConfig(
            name=launch.location.tune_dir.rsplit("/", 1)[1],
            storage_path=launch.location.run_dir,
            # Last: it forgets, per finished trial, what every callback before it has used.
            callbacks=callbacks(launch) + list(extra_callbacks or ())
            + [TrimFinishedTrials(keep=(HEADLINE_METRIC, plan.objective))],
            failure_config=FailureConfig(max_failures=options.max_failures),
            # num_to_keep unset: with it, Tune forces an experiment snapshot about every
            # checkpoint (up to one per epoch with --checkpoint-seconds 0); KeepNewestCheckpoints
            # deletes the old ones instead.
            checkpoint_config=CheckpointConfig(num_to_keep=None),
            verbose=1 if options.verbose else 0,
        ),
    )


def trial_dirname(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


OPTUNA_DB = "optuna.db"


def optuna_storage_url(run_dir: str) -> str:
    """Where --search optuna keeps its study: SQLite in the run directory, which
    `optuna-dashboard sqlite:///RUN/optuna.db` opens."""
    return f"sqlite:///{os.path.abspath(run_dir)}/{OPTUNA_DB}"


def _search_alg(plan: Plan, search: str, run_dir: str | None = None) -> Any:
    if search != "optuna":
        return None  # grid and random: Tune's BasicVariantGenerator
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    # The study lives in the run directory when that is local (remote storage: in memory).
    storage = optuna.storages.RDBStorage(optuna_storage_url(run_dir)) if run_dir else None
    # Multi-objective: robustness up and the space's compressibility up (the paper's frontier).
    return OptunaSearch(metric=[HEADLINE_METRIC, plan.objective], mode=["max", "max"], seed=0,
                        storage=storage, study_name=os.path.basename(run_dir) if run_dir else None)


def _scheduler(plan: Plan, scheduler: str) -> Any:
    if scheduler == "fifo":
        return None
    from ray.tune.schedulers import ASHAScheduler

    max_epochs = max(c.epochs for c in plan.corner_configs())
    return ASHAScheduler(
        time_attr="iteration",
        metric=HEADLINE_METRIC,
        mode="max",
        max_t=max_epochs,
        grace_period=1,
        reduction_factor=2,
    )
