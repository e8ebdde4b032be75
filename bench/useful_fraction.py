"""Useful fraction of a sweep: training + evaluation compute over the trials' wall time.

Runs a sweep through the launcher's path (preflight, Tuner, store, checkpoints) and reads the time
budget every trial reports (schema.TIME_BUDGET, the history table's last row per trial):

    useful fraction = sum(t_train + t_eval + t_final + t_metrics) / sum(trial wall seconds)
    slot use        = sum(trial wall seconds) / (sweep wall x concurrent trials)

trial wall seconds: Tune's time_total_s (the trials table's wall_seconds); what it does not
hold (actor start-up, waiting for a slot, the driver) shows in the slot use. Goal: >= 90%.

    .venv/bin/python bench/useful_fraction.py      # spectral_linf, cpu scale, seed 0, 4 epochs
    .venv/bin/python bench/useful_fraction.py --space spectral_linf --scale cpu \
        --set seed=0 --set epochs=10 --concurrent 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

DEFAULT_SETS = ("seed=0", "epochs=4")
USEFUL = ("t_train", "t_eval", "t_final", "t_metrics")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="spectral_linf")
    parser.add_argument("--scale", default="cpu")
    parser.add_argument("--set", action="append", default=None, metavar="OPTION=VALUE",
                        help=f"fix a trial option (default: {' '.join(DEFAULT_SETS)})")
    parser.add_argument("--concurrent", type=int, default=2, help="trials at once (CPUs)")
    args = parser.parse_args(argv)
    if args.concurrent < 1:
        print(f"--concurrent must be >= 1, but got {args.concurrent}", file=sys.stderr)
        return 2

    import polars as pl
    import ray

    from sweep.launch import parse_sets
    from sweep.options import LaunchOptions
    from sweep.preflight import prepare_launch
    from sweep.service import run_sweep
    from trainables import schema
    from trainables.errors import SweepError

    sets = parse_sets(args.set if args.set is not None else DEFAULT_SETS)
    with tempfile.TemporaryDirectory() as storage:
        options = LaunchOptions(space=args.space, scale=args.scale, trial_options=sets,
                                storage=storage, name="bench", metrics_port=0, report=False,
                                dashboard=False, max_concurrent=args.concurrent)
        try:
            launch = prepare_launch(options)
        except SweepError as err:
            print(str(err).splitlines()[0], file=sys.stderr)
            return 2
        ray.init(num_cpus=args.concurrent, include_dashboard=False, log_to_driver=False)
        load0 = os.getloadavg()[0]
        start = time.perf_counter()
        outcome = run_sweep(launch)
        wall = time.perf_counter() - start
        ray.shutdown()
        trials = pl.read_parquet(f"{outcome.store_dir}/trials/*.parquet")
        history = pl.read_parquet(f"{outcome.store_dir}/history/*.parquet")
    last = history.sort("iteration").group_by("trial_id").last()
    budget = {key: float(last[key].sum()) for key in schema.TIME_BUDGET}
    trial_wall = float(trials["wall_seconds"].sum())
    useful = sum(budget[k] for k in USEFUL)
    print(f"sweep {args.space} --scale {args.scale} {' '.join(f'--set {s}' for s in (args.set or DEFAULT_SETS))}: "
          f"{trials.height} trials {outcome.statuses}, {args.concurrent} concurrent, "
          f"wall {wall:.1f} s (service {outcome.wall_seconds:.1f} s)")
    print(f"sum of trial wall seconds: {trial_wall:.1f} s")
    for key in schema.TIME_BUDGET:
        print(f"  {key:13s} {budget[key]:8.2f} s  {100 * budget[key] / trial_wall:5.1f}%")
    other = trial_wall - sum(budget.values())
    print(f"  {'unaccounted':13s} {other:8.2f} s  {100 * other / trial_wall:5.1f}%  "
          "(reporting, the last checkpoint, Tune)")
    print(f"useful fraction (train + eval + final + metrics) / trial wall: "
          f"{100 * useful / trial_wall:.1f}% (goal >= 90%)")
    print(f"slot use: trial wall / (sweep wall x {args.concurrent}): "
          f"{100 * trial_wall / (wall * args.concurrent):.1f}% "
          f"(sweep overhead {100 * (1 - trial_wall / (wall * args.concurrent)):.1f}%)")
    print(f"useful fraction of the sweep's slots: "
          f"{100 * useful / (wall * args.concurrent):.1f}%; load average {load0:.2f} -> "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
