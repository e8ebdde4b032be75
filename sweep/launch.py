"""`python -m sweep.launch`: run a named sweep on Ray Tune and write its Parquet store and report.

    python -m sweep.launch --space spectral_linf                 # embedded local Ray, scale cpu
    python -m sweep.launch --space smoke --scale smoke --dry-run # print the trial plan only
    python -m sweep.launch --address auto --gpus-per-trial 0.5 --scale paper --storage s3://b/runs
    python -m sweep.launch --resume --name RUN                   # continue an interrupted run

Bad input exits 2 with one line on stderr before Ray starts or anything is written.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from sweep.options import DEFAULT_METRICS_PORT, SCHEDULERS, SEARCHES, LaunchOptions
from sweep.preflight import Launch, prepare_launch
from trainables.errors import SweepError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_SWEEP_FAILED = 1
_PLAN_ROWS_SHOWN = 40


class _OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus the error; the contract is one line, then exit 2."""

    def error(self, message: str) -> NoReturn:
        _fail(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _OneLineParser(
        prog="python -m sweep.launch",
        description="Sweep compression vs adversarial robustness on Ray Tune.",
    )
    p.add_argument("--space", default="spectral_linf", help="named space (see --list-spaces)")
    p.add_argument("--scale", default="cpu", help="smoke | cpu | paper (default: cpu)")
    p.add_argument("--dataset", help="override the space's dataset")
    p.add_argument("--data-dir", help="directory holding the dataset's files")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="OPTION=VALUE",
        help="fix a trial option for every trial, e.g. --set epochs=2 "
        "--set eps_linf=[0.01,0.03] (value as JSON, else a string)",
    )
    p.add_argument(
        "--num-samples", type=int, help="grid: repeats of the grid; random/optuna: number of trials"
    )
    p.add_argument("--search", choices=SEARCHES, default="grid")
    p.add_argument(
        "--scheduler",
        choices=SCHEDULERS,
        default="fifo",
        help="asha stops trials early on robust_acc",
    )
    p.add_argument("--max-concurrent", type=int, help="most trials running at once")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="fractional allowed, e.g. 0.5")
    p.add_argument(
        "--resource-wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="--address: wait this long for a node that fits one trial (an autoscaling cluster "
        "adds it), then exit 2; default 0: exit 2 at once",
    )
    p.add_argument(
        "--max-failures",
        type=int,
        default=2,
        help="retries of a failing trial, each from its last checkpoint",
    )
    p.add_argument(
        "--storage",
        default="runs",
        help="runs directory (made absolute) or URI, e.g. s3://bucket/runs",
    )
    p.add_argument("--name", help="run name; the run directory is <storage>/<name>")
    p.add_argument("--resume", action="store_true", help="continue the run --name")
    p.add_argument("--address", help="'auto' or HOST:PORT of an existing Ray cluster")
    p.add_argument("--dry-run", action="store_true", help="print the trial plan, start nothing")
    p.add_argument("--list-spaces", action="store_true", help="print the named spaces and exit")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=DEFAULT_METRICS_PORT,
        help="Prometheus endpoint on 127.0.0.1 (0 disables)",
    )
    p.add_argument("--ray-metrics-port", type=int, default=0,
                   help="embedded Ray's own Prometheus export port (default 0: Ray picks one and "
                        "lists it in /tmp/ray/prom_metrics_service_discovery.json)")
    p.add_argument("--no-dashboard", action="store_true", help="embedded Ray without dashboard")
    p.add_argument("--no-report", action="store_true", help="skip the report at the end")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show Ray's and Tune's own log lines and the trials' worker output")
    return p


def options_from_args(args: argparse.Namespace) -> LaunchOptions:
    storage = args.storage if "://" in args.storage else os.path.abspath(args.storage)
    return LaunchOptions(
        space=args.space,
        scale=args.scale,
        dataset=args.dataset,
        data_dir=args.data_dir,
        trial_options=parse_sets(args.set),
        num_samples=args.num_samples,
        search=args.search,
        scheduler=args.scheduler,
        max_concurrent=args.max_concurrent,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        resource_wait=args.resource_wait,
        max_failures=args.max_failures,
        storage=storage,
        name=args.name,
        resume=args.resume,
        address=args.address,
        dry_run=args.dry_run,
        metrics_port=args.metrics_port,
        ray_metrics_port=args.ray_metrics_port,
        dashboard=not args.no_dashboard,
        report=not args.no_report,
        verbose=args.verbose,
    )


def given_flags(argv: Sequence[str] | None) -> set[str]:
    """The LaunchOptions fields set on the command line (a resume refuses plan changes)."""
    parser = build_parser()
    for action in parser._actions:  # parse again with no defaults: only what was typed remains
        action.default = argparse.SUPPRESS
    given = set(vars(parser.parse_args(argv)))
    renamed = {"set": "trial_options", "no_dashboard": "dashboard", "no_report": "report"}
    return {renamed.get(name, name) for name in given}


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """['epochs=2', 'norms=["l2"]'] -> {'epochs': 2, 'norms': ['l2']}; JSON values, never eval."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            _fail(f"--set needs OPTION=VALUE, but got {item!r}")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        if not _all_finite(value):  # JSON's Infinity / NaN / 1e400: never a usable trial option
            _fail(f"--set {key.strip()} must hold finite numbers, but got {raw!r}")
        parsed[key.strip()] = value
    return parsed


def _all_finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_all_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    return True


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_spaces:
        print_spaces()
        return 0
    try:
        launch = prepare_launch(options_from_args(args), given_flags(argv))
    except SweepError as err:
        _fail(str(err))
    if launch.options.dry_run:
        print_plan(launch)
        return 0
    from sweep.service import run_sweep

    print(
        f"run {launch.location.name}: space {launch.plan.space}, scale {launch.plan.scale}, "
        f"{launch.trial_count} trials{' (resumed)' if launch.options.resume else ''}",
        flush=True,
    )
    if launch.metrics is not None:  # bound in preflight; the default port moves when busy
        print(f"sweep metrics (Prometheus): {launch.metrics.url}", flush=True)
    try:
        outcome = run_sweep(launch, on_start=_print_dashboard)
    except SweepError as err:  # e.g. no node fits a trial; nothing was written yet
        _fail(str(err))
    except KeyboardInterrupt:  # a second Ctrl-C: Tune's graceful stop was cut short
        print(
            "error: interrupted twice; the store keeps every finished result, continue with: "
            f"python -m sweep.launch --resume --name {launch.location.name} "
            f"--storage {launch.options.storage}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001  (only file-system faults are turned into one line)
        cause = _os_error(err)
        if cause is None:
            raise
        print(
            f"error: the sweep stopped: cannot write {cause.filename or 'the run directory'} "
            f"({cause.strerror or cause}); the store holds every result written before, free "
            f"space and continue with: python -m sweep.launch --resume --name "
            f"{launch.location.name} --storage {launch.options.storage}",
            file=sys.stderr,
        )
        return EXIT_SWEEP_FAILED
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(outcome.statuses.items())) or "none"
    print(
        f"\ntrials: {statuses} ({outcome.finished}/{outcome.planned} finished) "
        f"in {outcome.wall_seconds:.0f} s"
    )
    print(f"run directory: {outcome.run_dir}")
    print(
        f"Parquet store: {outcome.store_dir}  (polars.scan_parquet('{outcome.store_dir}"
        "/<table>/*.parquet'))"
    )
    if outcome.interrupted:
        print(
            "interrupted; continue with: python -m sweep.launch --resume "
            f"--name {launch.location.name} --storage {launch.options.storage}"
        )
        return EXIT_INTERRUPTED
    if launch.options.report:
        write_report(launch.location.local_run_dir())
    return 0


def print_spaces() -> None:
    from sweep.spaces import list_spaces

    for space in list_spaces():
        scales = ", ".join(
            f"{s}: {space.resolve(s).trial_count('grid')}" for s in sorted(space.scales)
        )
        print(f"{space.name:24s} {space.description} (grid trials per scale: {scales})")


def print_plan(launch: Launch) -> None:
    plan, options = launch.plan, launch.options
    print(
        f"space {plan.space} (scale {plan.scale}), search {options.search}, "
        f"scheduler {options.scheduler}, objective robust_acc & {plan.objective}"
    )
    print("fixed: " + ", ".join(f"{k}={v}" for k, v in sorted(plan.fixed.items())))
    for key, param in plan.params.items():
        print(f"swept {key}: {param.describe()}")
    if options.search == "grid":
        rows = list(plan.grid_samples())
        repeats = launch.num_samples
        for i, sample in enumerate(rows[:_PLAN_ROWS_SHOWN], 1):
            print(f"  {i:4d}  " + "  ".join(f"{k}={v}" for k, v in sample.items()))
        if len(rows) > _PLAN_ROWS_SHOWN:
            print(f"  ... {len(rows) - _PLAN_ROWS_SHOWN} more grid points")
        if repeats > 1:
            print(f"  each grid point x {repeats} samples")
    print(f"{launch.trial_count} trials")


def write_report(run_dir: str | None) -> None:
    if run_dir is None:
        print(
            "report: skipped (the run is not on a local path; "
            "run python -m analysis.report on a copy)"
        )
        return
    try:
        from analysis.report import write_report as analysis_write_report
    except ImportError as err:
        print(f"report: not written (analysis.report is not available: {err})")
        return
    try:
        where = analysis_write_report(run_dir)
    except Exception as err:  # noqa: BLE001  (the sweep's results stand without the report)
        print(
            f"report: failed ({type(err).__name__}: {err}); "
            f"retry with python -m analysis.report {run_dir}",
            file=sys.stderr,
        )
        return
    print(f"report: {where or os.path.join(run_dir, 'report')}")


def _print_dashboard(url: str | None) -> None:
    if url:
        # Ray moves the dashboard off 8265 when that is taken: the hint uses the port it got.
        port = url.rstrip("/").rsplit(":", 1)[-1]
        port = port if port.isdigit() else "8265"
        print(f"Ray dashboard: {url}  (token auth: the token is in ~/.ray/auth_token; from "
              f"another machine: ssh -L {port}:127.0.0.1:{port} THIS_HOST)", flush=True)


def _os_error(err: BaseException) -> OSError | None:
    """The OSError (a full disk, a vanished mount) behind an exception Tune wrapped, if any."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError) and err.errno is not None:
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT)


if __name__ == "__main__":
    sys.exit(main())
