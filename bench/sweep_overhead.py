"""Sweep overhead: the same N short trials as (a) a bare sequential loop over trainables.Trial and
(b) through the sweep service (Ray Tune, 2 concurrent trials, store, checkpoints at the default
--checkpoint-seconds: the numbers below predate it, when trials checkpointed every epoch).

Prints wall times, speedup b/a, and the service's overhead against the ideal for 2 workers
(sum of bare trial times / 2). Target: overhead under 10% of ideal.
On a shared machine two concurrent trials may not get two cores, so the run also measures
(a2): the bare loop split over 2 plain processes, the ideal this machine can actually reach.

    .venv/bin/python bench/sweep_overhead.py            # 32 trials of ~3 s
    .venv/bin/python bench/sweep_overhead.py --quick    # 8 trials
    .venv/bin/python bench/sweep_overhead.py --trials 200 --epochs 2 --skip-sequential

Before sweep/keep_checkpoints.py (quiet machine, 32 x 8): service 59.9 s vs (a2) 53.3 s, +12.3%.
Tune then forced an experiment snapshot about every epoch (CheckpointConfig(num_to_keep) with a
checkpoint per epoch) and the store flushed a part per table at each; a 4-trial run made 31
snapshots and 47 flushes, now 12 and 11 (periodic only), compaction and cleanup ~4x shorter.
After (quiet, 32 x 8, two runs): +16.5% and +5.7% against (a2): the run-to-run spread is as large
as the goal. The last line sums the trials' own time budgets in the service and in (a2): in the
+5.7% run every phase matched within ~1-2% except t_checkpoint (3.2 s of 122.9 trial seconds,
the service's only in-trial cost); the rest (~4 s) is outside the trials (start, gaps, end).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import polars as pl
import torch

from sweep.spaces import Grid, Scale, Space, register, trial_options
from sweep.spaces._scales import CPU
from trainables.schema import TIME_BUDGET

CONCURRENT = 2


def bench_space(trials: int, epochs: int) -> Space:
    # The cpu scale's Fashion-MNIST FCN, shrunk to about 3 s per trial on one thread.
    fixed = {
        **CPU,
        "n_train": 3000,
        "n_test": 1000,
        "n_eval": 128,
        # the cpu scale's final protocol attacks 1,000 samples (~10 s): keep the trials short
        "n_eval_final": 128,
        "r_emp_samples": 16,
        "epochs": epochs,
    }
    return Space(
        name="bench_overhead",
        description="bench: short real trials",
        fixed=fixed,
        scales={"smoke": Scale(params={"seed": Grid(tuple(range(trials)))})},
    )


def bare_trials(trials: int, epochs: int, share: int = 0, shares: int = 1,
                budget: dict[str, float] | None = None) -> list[float]:
    """Run trials share, share + shares, ... of the bench space in this process, one thread;
    adds each trial's final time budget (TIME_BUDGET) into `budget` when given."""
    from trainables.trial import Trial

    torch.set_num_threads(1)
    plan = bench_space(trials, epochs).resolve("smoke", {"threads": 1})
    times = []
    for sample in list(plan.grid_samples())[share::shares]:
        t0 = time.perf_counter()
        for result in Trial(trial_options({**plan.fixed, **sample})).epochs():
            pass
        times.append(time.perf_counter() - t0)
        if budget is not None:
            for key in TIME_BUDGET:
                budget[key] = budget.get(key, 0.0) + float(result.get(key, 0.0))
    return times


def _bare_share(trials: int, epochs: int, share: int, shares: int
                ) -> tuple[list[float], dict[str, float]]:
    budget: dict[str, float] = {}
    return bare_trials(trials, epochs, share, shares, budget), budget


def bare_parallel(trials: int, epochs: int) -> tuple[float, list[float]]:
    """(a2): the bare loop split over CONCURRENT fresh processes (no Ray, no store); its wall
    time and every trial's time (their time budgets summed into BARE_BUDGET)."""
    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(CONCURRENT, mp_context=context) as pool:
        futures = [
            pool.submit(_bare_share, trials, epochs, i, CONCURRENT) for i in range(CONCURRENT)
        ]
        times = []
        for future in futures:
            share_times, budget = future.result()
            times += share_times
            for key, value in budget.items():
                BARE_BUDGET[key] = BARE_BUDGET.get(key, 0.0) + value
    return time.perf_counter() - start, times


def through_service(storage: str) -> tuple[float, float, dict, float, float]:
    """(b): the launcher's path (preflight, Tuner, store, checkpoints), Ray started first."""
    import ray

    from sweep.options import LaunchOptions
    from sweep.preflight import prepare_launch
    from sweep.service import run_sweep

    t0 = time.perf_counter()
    ray.init(num_cpus=CONCURRENT, include_dashboard=False)
    ray_start = time.perf_counter() - t0
    options = LaunchOptions(
        space="bench_overhead",
        scale="smoke",
        storage=storage,
        name="bench",
        metrics_port=0,
        report=False,
        dashboard=False,
        max_concurrent=CONCURRENT,
    )
    cpu0 = _cpu_seconds()
    outcome = run_sweep(prepare_launch(options))
    driver_cpu = _cpu_seconds() - cpu0
    ray.shutdown()
    trials = pl.read_parquet(f"{outcome.store_dir}/trials/*.parquet")
    in_service = float(trials["wall_seconds"].sum())
    history = pl.read_parquet(f"{outcome.store_dir}/history/*.parquet")
    last = history.sort("iteration").group_by("trial_id").last()
    SERVICE_BUDGET.update({k: float(last[k].sum()) for k in TIME_BUDGET if k in last.columns})
    return outcome.wall_seconds, ray_start, outcome.statuses, in_service, driver_cpu


# Summed final time budgets (schema.TIME_BUDGET) of the service's trials and of the (a2)
# bare loop's: where a trial's time goes inside the service against outside it.
SERVICE_BUDGET: dict[str, float] = {}
BARE_BUDGET: dict[str, float] = {}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="8 trials")
    parser.add_argument(
        "--skip-sequential",
        action="store_true",
        help="skip (a), the longest part at many trials; the ideal then sums (a2)'s trial times",
    )
    args = parser.parse_args()
    trials = 8 if args.quick else args.trials
    register(bench_space(trials, args.epochs))

    load0 = os.getloadavg()[0]
    bare_wall = math.nan
    if not args.skip_sequential:
        start = time.perf_counter()
        times = bare_trials(trials, args.epochs)
        bare_wall = time.perf_counter() - start
    parallel_wall, parallel_times = bare_parallel(trials, args.epochs)
    if args.skip_sequential:
        times = parallel_times  # one thread each; two at once may run a little slower
    with tempfile.TemporaryDirectory() as storage:
        service_wall, ray_start, statuses, in_service, driver_cpu = through_service(storage)
    ideal = sum(times) / CONCURRENT
    print(
        f"trials: {trials} x {args.epochs} epochs; mean bare trial {sum(times) / trials:.2f} s "
        f"(min {min(times):.2f}, max {max(times):.2f}); service statuses {statuses}"
    )
    if args.skip_sequential:
        print("(a)  bare sequential loop:             skipped (--skip-sequential; times from a2)")
    else:
        print(f"(a)  bare sequential loop:             {bare_wall:8.1f} s")
    print(f"(a2) bare loop in {CONCURRENT} plain processes:     {parallel_wall:8.1f} s")
    print(
        f"(b)  service, {CONCURRENT} concurrent trials:      {service_wall:8.1f} s  "
        f"(+ {ray_start:.1f} s starting Ray, not counted)"
    )
    print(
        f"speedup b/a: {bare_wall / service_wall:.2f}x (ideal {CONCURRENT:.2f}x); "
        f"a2/a: {bare_wall / parallel_wall:.2f}x"
    )
    print(
        f"ideal (sum of trial times / {CONCURRENT}): {ideal:.1f} s; service overhead vs ideal: "
        f"{100 * (service_wall - ideal) / ideal:+.1f}% (target < 10%)"
    )
    print(
        f"service overhead vs (a2), the parallel bare loop: "
        f"{100 * (service_wall - parallel_wall) / parallel_wall:+.1f}%"
    )
    print(
        f"trial seconds inside the service: {in_service:.1f} s ({in_service / sum(times):.2f}x "
        f"the bare loop's); driver CPU {driver_cpu:.1f} s; load average {load0:.2f} -> "
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    print("time budget summed over trials, service vs (a2) [s]: " + "  ".join(
        f"{k} {SERVICE_BUDGET.get(k, 0.0):.1f}/{BARE_BUDGET.get(k, 0.0):.1f}" for k in TIME_BUDGET))


if __name__ == "__main__":
    main()
