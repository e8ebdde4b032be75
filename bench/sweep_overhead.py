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

Where the rest goes: the last lines split (b)'s trial slots (concurrent x wall) into time in
trials and time without one (start, gaps, end), and the machine's CPU seconds during (b) into the
trials' actors, the driver and every other process (Ray's daemons: raylet, GCS, dashboard and
runtime-env agents, log monitor, idle workers), sampled from /proc (ProcessCPU). On 2 cores with 2
single-threaded trials the driver's and the daemons' CPU is taken from the trials. --concurrent 1
leaves them a core, as a cluster's head node does.
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing
import os
import resource
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import polars as pl
import torch

from sweep.spaces import Grid, Scale, Space, register, trial_options
from sweep.spaces._scales import CPU
from trainables.schema import TIME_BUDGET

CONCURRENT = 2  # --concurrent


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
    # As sweep.service.start_ray starts it for a quiet launch (no dashboard here: the bench's
    # options say dashboard=False), but with CONCURRENT CPUs.
    ray.init(num_cpus=CONCURRENT, include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False)
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
    with ProcessCPU() as sampled:
        outcome = run_sweep(prepare_launch(options))
    driver_cpu = _cpu_seconds() - cpu0
    ray.shutdown()
    SERVICE_CPU.update(sampled.by_role())
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


# CPU seconds of every process during the service run, by role (ProcessCPU.by_role).
SERVICE_CPU: dict[str, float] = {}


class ProcessCPU:
    """CPU seconds (user + system, from /proc) each process used while the block ran, sampled
    every `every` seconds: the trials' actors (their title names Tune's function trainable),
    this process (the driver) and the rest (Ray's daemons, idle workers, anything else on the
    machine). On two cores with two single-threaded trials, every CPU second outside the trials
    comes out of the trials' cores: that is where the service's overhead goes. Linux only;
    empty elsewhere. A process that ends between two samples loses its last interval."""

    def __init__(self, every: float = 1.0):
        self.every = every
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.start: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.titles: dict[str, set[str]] = {}
        self.own = 0.0  # the sampler's own CPU seconds (a thread of the driver): not the service's
        self._stop = threading.Event()

    def _read(self, pid: str) -> float | None:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / self.tick  # utime + stime
        except (OSError, IndexError, ValueError):
            return None

    def _title(self, pid: str) -> str:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return f.read().split(b"\0")[0].decode(errors="replace")[:80]
        except OSError:
            return ""

    def _sample(self) -> None:
        for pid in (p for p in os.listdir("/proc") if p.isdigit()):
            cpu = self._read(pid)
            if cpu is None:
                continue
            self.start.setdefault(pid, cpu if self.last else 0.0)
            if cpu != self.last.get(pid) or pid not in self.titles:  # a title changes by running
                self.titles.setdefault(pid, set()).add(self._title(pid))
            self.last[pid] = cpu

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            t0 = time.thread_time()
            self._sample()
            self.own += time.thread_time() - t0

    def __enter__(self) -> "ProcessCPU":
        if os.path.isdir("/proc/self"):
            self._sample()  # the baseline: processes already running count from here
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if os.path.isdir("/proc/self"):
            self._stop.set()
            self._thread.join()
            self._sample()

    def by_role(self) -> dict[str, float]:
        roles = {"trials": 0.0, "driver": 0.0, "other": 0.0}
        me = str(os.getpid())
        for pid, cpu in self.last.items():
            used = cpu - self.start.get(pid, cpu)
            if pid == me:
                roles["driver"] += used - self.own
            elif any("ImplicitFunc" in t or "tune_trial" in t for t in self.titles[pid]):
                roles["trials"] += used
            else:
                roles["other"] += used
        return roles


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    global CONCURRENT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="8 trials")
    parser.add_argument(
        "--concurrent", type=int, default=CONCURRENT,
        help="trials at once (and processes of a2); 1 leaves a core to the driver and Ray's "
             "daemons on a 2-core machine, as a cluster's head node would",
    )
    parser.add_argument(
        "--skip-sequential",
        action="store_true",
        help="skip (a), the longest part at many trials; the ideal then sums (a2)'s trial times",
    )
    args = parser.parse_args()
    if args.concurrent < 1:
        parser.error("--concurrent must be >= 1")
    CONCURRENT = args.concurrent
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
        f"{100 * (service_wall - ideal) / ideal:+.1f}% (target <= 5%); (a2) vs ideal: "
        f"{100 * (parallel_wall - ideal) / ideal:+.1f}% (what {CONCURRENT} bare processes lose)"
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
    slots = service_wall * CONCURRENT
    print(
        f"(b)'s {CONCURRENT} trial slots x {service_wall:.1f} s = {slots:.1f} slot-seconds: "
        f"{in_service:.1f} in trials (Tune's time_total_s), {slots - in_service:.1f} "
        f"({100 * (slots - in_service) / slots:.1f}%) without one (start, gaps, end)"
    )
    if SERVICE_CPU:
        cores = os.cpu_count() or 1
        outside = SERVICE_CPU["driver"] + SERVICE_CPU["other"]
        print(
            f"CPU seconds during (b): trials {SERVICE_CPU['trials']:.1f}, driver "
            f"{SERVICE_CPU['driver']:.1f}, other processes (Ray's daemons, idle workers) "
            f"{SERVICE_CPU['other']:.1f}: outside the trials {outside:.1f} = "
            f"{100 * outside / (service_wall * cores):.1f}% of {cores} cores x {service_wall:.1f} s"
        )


if __name__ == "__main__":
    main()
