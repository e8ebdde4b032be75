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
import math
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
    hints = typing.get_type_hints(LaunchOptions)
    for field in dataclasses.fields(LaunchOptions):
        meta = dict(field.metadata)
        flag = meta.pop("flag", "--" + field.name.replace("_", "-"))
        flags = [meta.pop("short"), flag] if "short" in meta else [flag]
        if hints[field.name] is bool:
            if field.default:  # on by default: the flag turns it off
                flag = "--no-" + field.name.replace("_", "-")
            p.add_argument(*flags[:-1], flag, dest=field.name,
                           action="store_false" if field.default else "store_true", **meta)
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
