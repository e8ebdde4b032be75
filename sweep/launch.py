"""`python -m sweep.launch`: run a named sweep on Ray Tune and write its Parquet store and report.

    python -m sweep.launch --space spectral_linf                 # embedded local Ray, scale cpu
    python -m sweep.launch --space smoke --scale smoke --dry-run # print the trial plan only
    python -m sweep.launch --address auto --gpus-per-trial 0.5 --scale paper --storage s3://b/runs
    python -m sweep.launch --resume --name RUN                   # continue an interrupted run

Bad input exits 2 with one line on stderr before Ray starts or anything is written.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing
from collections.abc import Sequence
from typing import Any, NoReturn

from sweep.options import STORAGE_DEFAULT, LaunchOptions
from sweep.preflight import Launch, prepare_launch
from trainables.errors import SweepError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
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
    hints = typing.get_type_hints(LaunchOptions)
    for field in dataclasses.fields(LaunchOptions):
        meta = dict(field.metadata)
        flag = meta.pop("flag", "--" + field.name.replace("_", "-"))
        if hints[field.name] is bool:
            if field.default:  # on by default: the flag turns it off
                flag = "--no-" + field.name.replace("_", "-")
            p.add_argument(flag, dest=field.name, action="store_false" if field.default
                           else "store_true", **meta)
        elif hints[field.name] == dict[str, Any]:  # repeated OPTION=VALUE, see parse_sets
            p.add_argument(flag, dest=field.name, action="append", default=[], **meta)
        else:
            kind = next(t for t in (int, float, str) if t in (hints[field.name],
                        *typing.get_args(hints[field.name])))
            default = STORAGE_DEFAULT if field.name == "storage" else field.default
            p.add_argument(flag, dest=field.name, type=None if kind is str else kind,
                           default=default, **meta)
    p.add_argument("--list-spaces", action="store_true", help="print the named spaces and exit")
    return p


def options_from_args(args: argparse.Namespace) -> LaunchOptions:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(LaunchOptions)}
    values["trial_options"] = parse_sets(values["trial_options"])
    if "://" not in values["storage"]:
        values["storage"] = os.path.abspath(values["storage"])
    return LaunchOptions(**values)


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """['epochs=2', 'norms=["l2"]'] -> {'epochs': 2, 'norms': ['l2']}; JSON values, never eval."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            _fail(f"--set needs OPTION=VALUE, but got {item!r}")
        try:
            parsed[key.strip()] = json.loads(raw)
        except ValueError:
            parsed[key.strip()] = raw
    return parsed


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_spaces:
        print_spaces()
        return 0
    try:
        launch = prepare_launch(options_from_args(args))
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
    if launch.options.metrics_port:
        print(f"sweep metrics (Prometheus): http://127.0.0.1:{launch.options.metrics_port}/metrics",
              flush=True)
    outcome = run_sweep(launch, on_start=_print_dashboard)
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
        print(f"Ray dashboard: {url}  (token auth: the token is in ~/.ray/auth_token; from "
              "another machine: ssh -L 8265:127.0.0.1:8265 THIS_HOST)", flush=True)


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT)


if __name__ == "__main__":
    sys.exit(main())
