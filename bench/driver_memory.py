"""Driver memory with thousands of trials: peak RSS of the driver process while 2,000 trivial
trials run through Ray Tune and the sweep's Parquet store callback. Target: under 1 GiB.

Baseline: the driver's RSS once Ray is up and the Tuner is built, measured in the same run.

    .venv/bin/python bench/driver_memory.py [--trials 2000] [--loggers none|sweep|tune] [--no-trim]
                                            [--checkpoints] [--top N]

--checkpoints: a checkpoint with every result, two kept per trial (what sweep.trainable and the
launcher do); --top N: trace Python allocations (slow) and list the N sites that grew most.

--loggers: none = the store only; sweep = the store and sweep.tune_files.ResultFiles (what the
launcher runs: result.json per trial for tune.ExperimentAnalysis); tune = the store and Tune's
own JSON/CSV/TensorBoard loggers (what the launcher turned off).
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import tempfile
import time

from trainables import schema


def trivial_trial(config: dict, checkpoint: bool = False) -> None:
    """One result shaped like a real epoch (scalars + robustness + layers rows), no training."""
    from ray import tune

    seed = config["seed"]
    scalars = {k: 0.5 for k, t in schema.RESULT_SCALARS.items() if t == "float64"}
    scalars.update(iteration=1, diverged=False, clean_acc=(seed % 100) / 100)
    robustness = [{"norm": "linf", "eps": e, "attack": "pgd", "robust_acc": 0.5} for e in (1, 2, 3)]
    layers = [{"layer": "layers.0", "layer_index": 0, "fro_norm": 1.0}]
    result = {**scalars, "robustness": robustness, "layers": layers}
    if not checkpoint:
        tune.report(result)
        return
    with tempfile.TemporaryDirectory() as tmp:  # as sweep.trainable: a checkpoint per result
        with open(os.path.join(tmp, "epoch.json"), "w") as f:
            f.write("{}")
        tune.report(result, checkpoint=tune.Checkpoint.from_directory(tmp))


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--loggers", choices=("none", "sweep", "tune"), default="sweep")
    parser.add_argument("--no-trim", action="store_true",
                        help="without sweep.trim.TrimFinishedTrials (what the launcher adds last)")
    parser.add_argument("--checkpoints", action="store_true",
                        help="a checkpoint with every result, two kept (what the launcher does)")
    parser.add_argument("--top", type=int, default=0,
                        help="trace Python allocations (slow) and print the N sites that grew most")
    args = parser.parse_args()
    if args.top:
        import tracemalloc

        tracemalloc.start(12)
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "0" if args.loggers == "tune" else "1"
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    import polars as pl
    import ray
    from ray import tune
    from ray.tune import CheckpointConfig, RunConfig, TuneConfig, Tuner

    libraries = rss_mib()  # Ray, Tune, Polars: what any driver pays before the sweep's own modules
    from sweep.store import StoreCallback
    from sweep.trim import TrimFinishedTrials
    from sweep.tune_files import ResultFiles

    sweep_modules = rss_mib() - libraries

    # With Tune's file loggers off (the store is the record), its end-of-run summary warns per
    # trial that it found no result.json.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as run_dir:
        store = StoreCallback(
            f"{run_dir}/store", run_id="mem", space="bench", hyperparameters={"seed": "int64"}
        )
        callbacks = [store, ResultFiles()] if args.loggers == "sweep" else [store]
        if not args.no_trim:
            callbacks.append(TrimFinishedTrials())
        tuner = Tuner(
            tune.with_resources(
                tune.with_parameters(trivial_trial, checkpoint=args.checkpoints), {"cpu": 1}
            ),
            param_space={"seed": tune.grid_search(list(range(args.trials)))},
            tune_config=TuneConfig(
                reuse_actors=True,
                max_concurrent_trials=2,
                trial_dirname_creator=lambda t: f"trial_{t.trial_id}",
            ),
            run_config=RunConfig(name="tune", storage_path=run_dir, callbacks=callbacks,
                                 checkpoint_config=CheckpointConfig(num_to_keep=2), verbose=0),
        )
        baseline = rss_mib()
        before = tracemalloc.take_snapshot() if args.top else None
        t0 = time.perf_counter()
        tuner.fit()
        wall = time.perf_counter() - t0
        if before is not None:
            grown = tracemalloc.take_snapshot().compare_to(before, "traceback")
            for stat in grown[: args.top]:
                print(f"{stat.size_diff / 2**20:+.1f} MiB in {stat.count_diff:+d} blocks")
                frames = stat.traceback.format(limit=6, most_recent_first=True)
                print("    " + "\n    ".join(frames))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
        rows = pl.scan_parquet(f"{run_dir}/store/trials/*.parquet").select(pl.len()).collect()
        history = pl.scan_parquet(f"{run_dir}/store/history/*.parquet").select(pl.len()).collect()
    ray.shutdown()
    print(f"loggers: {args.loggers}; trim finished trials: {not args.no_trim}; "
          f"checkpoints: {args.checkpoints}")
    print(
        f"{args.trials} trivial trials in {wall:.0f} s ({1000 * wall / args.trials:.0f} ms/trial); "
        f"store rows: trials {rows.item()}, history {history.item()}"
    )
    print(f"the sweep's driver modules add {sweep_modules:.0f} MiB to {libraries:.0f} MiB of "
          f"Ray, Tune and Polars (torch imported: {'torch' in sys.modules})")
    print(f"driver RSS baseline (Ray up, Tuner built): {baseline:.0f} MiB")
    print(
        f"driver peak RSS: {peak:.0f} MiB = {peak / baseline:.2f}x baseline; "
        f"{peak / 1024:.2f} GiB (target < 1 GiB)"
    )


if __name__ == "__main__":
    main()
