"""Resume a run from our own records; never read a pickle from storage.

Tune's own restore unpickles RUN/tune/tuner.pkl, and its experiment state embeds cloudpickled
objects; anyone who can write to the storage (shared NFS, a bucket) could run code as the user
who resumes. So a resume starts a *fresh* Tune experiment rebuilt from what we wrote ourselves,
all of it data:

- run.json: the launch options, hence the plan (spaces are code in this repository);
- store/_started/<tune trial id>.json: each started trial's store id and full TrialConfig (JSON),
  written by the StoreCallback when Tune starts the trial;
- the store's trials table (which trials ended) and history (the last epoch stored per trial);
- each checkpoint's epoch (sweep_epoch.json, JSON); checkpoints load with torch weights_only.

The fresh experiment runs every planned trial that has no terminal row (completed, diverged or
stopped; errored ones run again, as Tune's resume_errored did) as a grid over entries
{trial_id, config, restore}: a trial that had started keeps its store trial_id and restarts from
its newest checkpoint whose epoch the store already holds (so no epoch's rows can be missing; the
epochs it replays are dropped by the store's exactly-once keys), never from its final epoch (so
it reports at least once more and gets its terminal row). Never-started grid points run fresh;
random / optuna searches sample their not-yet-started trials afresh from the space (an optuna
study restarts: its state is one of the pickles we do not read).
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from typing import Any

import pyarrow.fs as pafs

from sweep.preflight import Launch
from sweep.spaces import trial_options
from sweep.spaces._space import RESUME_KEY, _is_discrete
from sweep.store import StoreLayout
from trainables.config import TrialConfig

STARTED_DIR = "_started"
CHECKPOINT_EPOCH_FILE = "sweep_epoch.json"
DONE = frozenset({"completed", "diverged", "stopped"})
# TrialConfig keys a resumed run may change (placement), so they never tell trials apart.
_PLACEMENT = frozenset({"threads", "device", "data_dir"})


# ---- records written during the run ---------------------------------------------------------
def canonical_config(tune_config: dict[str, Any]) -> dict[str, Any]:
    """A Tune config (plain keys, encoded Cases or a resume entry) -> the TrialConfig as JSON."""
    config = TrialConfig.from_dict(trial_options(tune_config)).to_dict()
    return json.loads(json.dumps(config, default=list))


def store_trial_id(tune_trial_id: str, tune_config: dict[str, Any]) -> str:
    """The trial's id in the store: its first Tune trial's id, kept across resumes."""
    entry = tune_config.get(RESUME_KEY)
    if isinstance(entry, dict) and entry.get("trial_id"):
        return str(entry["trial_id"])
    return tune_trial_id


def restore_path(tune_config: dict[str, Any]) -> str | None:
    """The checkpoint (directory path or URI) a resumed trial starts from, if any."""
    entry = tune_config.get(RESUME_KEY)
    return entry.get("restore") if isinstance(entry, dict) else None


def record_started(layout: StoreLayout, tune_trial_id: str, tune_config: dict[str, Any]) -> None:
    doc = {
        "tune_trial_id": tune_trial_id,
        "trial_id": store_trial_id(tune_trial_id, tune_config),
        "config": canonical_config(tune_config),
    }
    folder = f"{layout.root}/{STARTED_DIR}"
    layout.fs.create_dir(folder, recursive=True)
    path = f"{folder}/{tune_trial_id}.json"
    tmp = f"{path}.{secrets.token_hex(4)}.tmp"
    with layout.fs.open_output_stream(tmp) as out:
        out.write(json.dumps(doc).encode())
    layout.fs.move(tmp, path)


def checkpoint_epoch_doc(epoch: int) -> str:
    return json.dumps({"epoch": int(epoch)})


# ---- the resumed experiment -----------------------------------------------------------------
def resume_entries(launch: Launch) -> list[dict[str, Any]]:
    """The trials a resumed run still has to run, as grid entries {trial_id, config, restore}."""
    layout = StoreLayout.at(launch.location.store_root)
    started = _read_started(layout)
    status = _statuses(layout)
    stored = _last_stored_epochs(layout)
    placement = {k: v for k, v in launch.plan.fixed.items() if k in _PLACEMENT}

    by_trial: dict[str, dict[str, Any]] = {}
    incarnations: dict[str, list[str]] = {}
    for doc in started:
        by_trial.setdefault(doc["trial_id"], doc["config"])
        incarnations.setdefault(doc["trial_id"], []).append(doc["tune_trial_id"])

    entries: list[dict[str, Any]] = []
    for trial_id, config in sorted(by_trial.items()):
        if status.get(trial_id) in DONE:
            continue
        restore = _newest_usable_checkpoint(
            launch, incarnations[trial_id], min(stored.get(trial_id, 0), config["epochs"] - 1)
        )
        entries.append({"trial_id": trial_id, "config": {**config, **placement},
                        "restore": restore})

    for config in _never_started(launch, list(by_trial.values())):
        entries.append({"trial_id": None, "config": {**config, **placement}, "restore": None})
    return entries


def _never_started(launch: Launch, started: list[dict[str, Any]]) -> list[dict[str, Any]]:
    plan, options = launch.plan, launch.options
    enumerable = options.search == "grid" and all(_is_discrete(p) for p in plan.params.values())
    if enumerable:
        seen = Counter(_key(c) for c in started)
        missing = []
        for sample in plan.grid_samples():
            config = canonical_config({**plan.fixed, **sample})
            for _ in range(launch.num_samples):
                if seen[_key(config)] > 0:
                    seen[_key(config)] -= 1
                else:
                    missing.append(config)
        return missing
    from ray.tune.search.variant_generator import generate_variants

    from sweep.tuner import param_space

    space = param_space(plan, "random")
    fresh = max(0, launch.trial_count - len(started))
    return [canonical_config(next(generate_variants(space))[1]) for _ in range(fresh)]


def _key(config: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in config.items() if k not in _PLACEMENT}, sort_keys=True)


def _read_started(layout: StoreLayout) -> list[dict[str, Any]]:
    selector = pafs.FileSelector(f"{layout.root}/{STARTED_DIR}", allow_not_found=True)
    docs = []
    for info in layout.fs.get_file_info(selector):
        if info.type != pafs.FileType.File or not info.base_name.endswith(".json"):
            continue
        with layout.fs.open_input_stream(info.path) as f:
            doc = json.loads(f.read())
        if isinstance(doc, dict) and {"tune_trial_id", "trial_id", "config"} <= set(doc):
            docs.append(doc)
    return sorted(docs, key=lambda d: d["tune_trial_id"])


def _statuses(layout: StoreLayout) -> dict[str, str]:
    parts = layout.parts("trials")
    if not parts:
        return {}
    table = layout.read(parts[0], columns=["trial_id", "status"]).to_pydict()
    return dict(zip(table["trial_id"], table["status"]))


def _last_stored_epochs(layout: StoreLayout) -> dict[str, int]:
    last: dict[str, int] = {}
    for path in layout.parts("history"):
        keys = layout.read(path, columns=["trial_id", "iteration"])
        if keys.num_rows == 0:
            continue
        grouped = keys.group_by("trial_id").aggregate([("iteration", "max")])
        for trial_id, epoch in zip(grouped.column("trial_id").to_pylist(),
                                   grouped.column("iteration_max").to_pylist()):
            last[trial_id] = max(last.get(trial_id, 0), epoch)
    return last


def _newest_usable_checkpoint(launch: Launch, tune_ids: list[str], limit: int) -> str | None:
    """The newest checkpoint of any of the trial's Tune incarnations with epoch <= limit."""
    from sweep.store._layout import resolve_fs
    from sweep.tuner import trial_dirname

    fs, tune_dir = resolve_fs(launch.location.tune_dir)
    best: tuple[int, str] | None = None
    for tune_id in tune_ids:
        trial_dir = f"{tune_dir}/{trial_dirname(_Named(tune_id))}"
        selector = pafs.FileSelector(trial_dir, allow_not_found=True)
        for info in fs.get_file_info(selector):
            if info.type != pafs.FileType.Directory or not info.base_name.startswith("checkpoint_"):
                continue
            try:
                with fs.open_input_stream(f"{info.path}/{CHECKPOINT_EPOCH_FILE}") as f:
                    epoch = int(json.loads(f.read())["epoch"])
            except (OSError, ValueError, KeyError, TypeError):
                continue  # incomplete or foreign: not a checkpoint we wrote whole
            if epoch <= limit and (best is None or epoch > best[0]):
                best = (epoch, info.path)
    if best is None:
        return None
    prefix = launch.location.tune_dir[: len(launch.location.tune_dir) - len(tune_dir)]
    return prefix + best[1] if "://" in launch.location.tune_dir else best[1]


class _Named:
    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id

