"""Ad-hoc SQL over a run's store: `python -m analysis.query RUN_DIR "SELECT ..."`.

Tables are registered by name (trials, history, robustness, layers), with every table carrying
run_id. Prints the result, or writes it with --csv / --parquet.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from analysis._cli import OneLineParser, fail
from analysis.errors import QueryError
from analysis.sandbox import check_plan, check_sql
from analysis.store import load
from trainables.errors import SweepError


def run_query(
    run_dirs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], sql: str
) -> pl.DataFrame:
    """Execute Polars SQL over the run(s) and collect the answer."""
    tables = load(run_dirs)
    check_sql(sql, tables.frames())  # before the engine: it reads table functions' files at once
    context = pl.SQLContext(frames=tables.frames())
    try:
        frame = context.execute(sql)
        check_plan(frame, [run.path for run in tables.runs])
        return frame.collect()
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException) as err:
        reason = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise QueryError(
            f"query failed: {reason}; tables are {', '.join(tables.frames())}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m analysis.query",
        description="Run Polars SQL over a run's result store "
        "(tables: trials, history, robustness, layers).",
    )
    parser.add_argument("run_dir", type=Path, help="run directory (holds store/)")
    parser.add_argument("sql", help='e.g. "SELECT status, COUNT(*) FROM trials GROUP BY status"')
    parser.add_argument("--with", dest="more_runs", type=Path, action="append", default=[],
                        metavar="RUN_DIR", help="also include this run (repeatable)")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--csv", type=Path, metavar="PATH", help="write the result as CSV")
    out.add_argument("--parquet", type=Path, metavar="PATH", help="write the result as Parquet")
    parser.add_argument("--max-rows", type=int, default=50, help="rows to print (default 50)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = run_query([args.run_dir, *args.more_runs], args.sql)
        if args.csv or args.parquet:
            path = args.csv or args.parquet
            result.write_csv(path) if args.csv else result.write_parquet(path)
            print(f"wrote {result.height} rows to {path}")
            return 0
    except SweepError as err:
        return fail(err)
    except (OSError, pl.exceptions.PolarsError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        return fail(f"cannot write the result to {args.csv or args.parquet}: {reason}")
    with pl.Config(tbl_rows=args.max_rows, tbl_cols=-1, tbl_width_chars=200):
        print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
