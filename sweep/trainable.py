"""The Ray Tune function trainable: a thin wrapper around trainables.Trial.

Restore from Tune's checkpoint first, then one loop: every epoch is checkpointed (through a
temporary directory) and reported together, so a retried trial resumes after its last reported
epoch. A diverged epoch is reported and ends the trial; exceptions propagate so Tune's
FailureConfig retries the trial from its checkpoint.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from typing import Any

import ray
from ray import tune

from sweep.resume import CHECKPOINT_EPOCH_FILE, checkpoint_epoch_doc, restore_path
from sweep.spaces import trial_options

# Ray logs every persisted checkpoint at INFO; one line per epoch per trial drowns the progress.
logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)


def tune_trial(config: dict[str, Any]) -> None:
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
    # The time budget's checkpoint share: writing it and handing it to Tune (which copies it into
    # the run's storage) happens after the result is built, so it shows in the next result.
    timer = getattr(trial, "timer", None)  # a posthoc audit trial keeps no budget
    for result in trial.epochs():
        result = {**result, "node_id": node_id}
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="trial-ckpt-") as tmp:
            trial.save(tmp)
            # Its epoch as JSON: a resume picks checkpoints without unpickling anything.
            with open(os.path.join(tmp, CHECKPOINT_EPOCH_FILE), "w") as f:
                f.write(checkpoint_epoch_doc(result["iteration"]))
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(tmp))
        if timer is not None:
            timer.add("t_checkpoint", time.perf_counter() - start)
        if result.get("diverged"):
            return
