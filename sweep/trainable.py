"""The Ray Tune function trainable: a thin wrapper around trainables.Trial.

Restore from Tune's checkpoint first, then one loop: every epoch is reported; a checkpoint
(written through a temporary directory) rides along with a report only when CheckpointClock says
so: once `checkpoint_seconds` of wall time passed since the trial's last checkpoint (or since it
started or was restored), and always at its final epoch (the config's last, a diverged one, or an
early stop), so a finished trial always has its final checkpoint. A retried or resumed trial
restarts after its newest checkpointed epoch and recomputes the epochs after it (the store keeps
the first write of each (trial_id, iteration)). checkpoint_seconds=0 checkpoints every epoch.
A diverged epoch is reported and ends the trial; exceptions propagate so Tune's FailureConfig
retries the trial from its checkpoint.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

import ray
from ray import tune

from sweep.options import DEFAULT_CHECKPOINT_SECONDS
from sweep.resume import CHECKPOINT_EPOCH_FILE, checkpoint_epoch_doc, restore_path
from sweep.spaces import trial_options

# Ray logs every persisted checkpoint at INFO; one line per epoch per trial drowns the progress.
logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)


class CheckpointClock:
    """Whether an epoch's report carries a checkpoint: the final epoch always, otherwise once
    `seconds` of wall time (`clock`) passed since the last checkpoint or since construction (the
    trial's start or restore). seconds=0: every epoch."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not seconds >= 0:
            raise ValueError(f"checkpoint seconds must be >= 0, but got {seconds!r}")
        self.seconds = seconds
        self._clock = clock
        self._since = clock()

    def due(self, *, final: bool) -> bool:
        """Asked once per epoch; True means checkpoint now (and the interval restarts)."""
        now = self._clock()
        if final or now - self._since >= self.seconds:
            self._since = now
            return True
        return False


def is_final(result: Mapping[str, Any], trial: Any) -> bool:
    """Whether `result` is the trial's last: it diverged or stopped early, or the trial has no
    epoch left (`finished`, set before the yield). A trial that cannot say counts as final: when
    in doubt, checkpoint."""
    return bool(result.get("diverged") or result.get("early_stopped")
                or getattr(trial, "finished", True))


def tune_trial(config: dict[str, Any],
               checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS) -> None:
    """checkpoint_seconds is the sweep's --checkpoint-seconds, bound by tune.with_parameters
    (sweep/tuner.py): not part of the config, so never a hyperparameter or a trial's identity."""
    # torch and the trial code load here, in the trial's process: the driver imports this module
    # only to hand the function to Tune, and must not pay torch's ~230 MiB (bench/driver_memory.py).
    import torch

    from trainables.posthoc import make_trial

    options = trial_options(config)
    if options.get("threads"):
        # A trial's threads match its CPU request (set by the tuner); reused actors reset it too.
        torch.set_num_threads(int(options["threads"]))
    # A user's model (posthoc_audit spaces) is compressed and audited, not trained.
    trial = make_trial(options)
    checkpoint = tune.get_checkpoint()
    if checkpoint is None and restore_path(config):  # a resumed run's trial (sweep/resume.py)
        checkpoint = tune.Checkpoint(restore_path(config))
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            trial.load(directory)
    node_id = ray.get_runtime_context().get_node_id()
    clock = CheckpointClock(checkpoint_seconds)
    # The time budget's checkpoint share: writing the checkpoints actually written and handing
    # each report to Tune (which copies a checkpoint into the run's storage) happens after the
    # result is built, so it shows in the next result.
    timer = getattr(trial, "timer", None)  # a posthoc audit trial keeps no budget
    for result in trial.epochs():
        result = {**result, "node_id": node_id}
        start = time.perf_counter()
        if clock.due(final=is_final(result, trial)):
            with tempfile.TemporaryDirectory(prefix="trial-ckpt-") as tmp:
                trial.save(tmp)
                # Its epoch as JSON: a resume picks checkpoints without unpickling anything.
                with open(os.path.join(tmp, CHECKPOINT_EPOCH_FILE), "w") as f:
                    f.write(checkpoint_epoch_doc(result["iteration"]))
                tune.report(result, checkpoint=tune.Checkpoint.from_directory(tmp))
        else:
            tune.report(result)
        if timer is not None:
            timer.add("t_checkpoint", time.perf_counter() - start)
        if result.get("diverged"):
            return
