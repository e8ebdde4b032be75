"""Benchmark: aggregate a 10-million-row history table through analysis.load (Polars lazy scan)
vs pandas.read_parquet + groupby on the same Parquet files.

    .venv/bin/python bench/analysis_load.py [--rows 10000000] [--files 10] [--repeat 3]

Aggregation, per trial_id: clean_acc at the last iteration, mean epoch_seconds, max robust_acc.
Each side runs in its own subprocess, and so does writing the data: on Linux a child inherits
its parent's peak RSS across fork/exec, so the parent stays small and each reported peak is the
child's own. The best of --repeat wall times is reported, timed after the imports. Both answers
are checked equal.
pandas reads only the five columns it needs (the same projection Polars pushes down).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COLUMNS = ["trial_id", "iteration", "clean_acc", "epoch_seconds", "robust_acc"]


def write_synthetic_run(run_dir: Path, rows: int, files: int, iterations: int = 1000) -> None:
    import numpy as np
    import polars as pl

    from trainables import schema

    store = run_dir / "store"
    for table in schema.TABLES:
        (store / table).mkdir(parents=True)
    meta = {"schema_version": schema.SCHEMA_VERSION, "tables": schema.TABLES}
    (store / "_schema.json").write_text(json.dumps(meta))
    (run_dir / "run.json").write_text(json.dumps({"run_id": run_dir.name, "space": "bench"}))
    n_trials = rows // iterations
    trial_ids = [f"trial_{i:06d}" for i in range(n_trials)]
    pl.DataFrame({
        "run_id": run_dir.name, "trial_id": trial_ids, "space": "bench", "status": "completed",
        "seed": 0, "iterations": iterations, "clean_acc": 0.9, "robust_acc": 0.5,
        "neuron_comp": 0.5, "spectral_comp": 0.5, "wall_seconds": 1.0, "error": "",
    }).write_parquet(store / "trials" / "part-000.parquet")
    rng = np.random.default_rng(0)
    per_file = n_trials // files
    for f in range(files):
        first = f * per_file
        count = per_file if f < files - 1 else n_trials - first
        n = count * iterations
        order = rng.permutation(n)  # rows shuffled, so "last iteration" needs real work
        trial_index = (np.arange(n) // iterations + first)[order]
        # every contract column, read off the schema so the bench follows it as it grows
        fill = {"float64": lambda: rng.random(n), "int64": lambda: np.zeros(n, dtype=np.int64),
                "bool": lambda: np.zeros(n, dtype=bool), "str": lambda: np.full(n, "")}
        frame = pl.DataFrame({
            "trial_id": pl.Series(trial_ids).gather(trial_index),
            "iteration": (np.arange(n) % iterations + 1)[order],
            **{c: fill[t]() for c, t in schema.HISTORY_COLUMNS.items()
               if c not in ("trial_id", "iteration")},
        }).select(list(schema.HISTORY_COLUMNS))
        frame.write_parquet(run_dir / "store" / "history" / f"part-{f:03d}.parquet")


def run_polars(run_dir: Path):
    import polars as pl

    from analysis import load

    start = time.perf_counter()
    result = (
        load(run_dir)
        .history
        .group_by("trial_id")
        .agg(
            # sort_by().last() streams per group; .get(arg_max()) was 3.5x slower in Polars 2.1
            pl.col("clean_acc").sort_by("iteration").last().alias("last_clean_acc"),
            pl.col("epoch_seconds").mean().alias("mean_epoch_seconds"),
            pl.col("robust_acc").max().alias("max_robust_acc"),
        )
        .collect()
    )
    return time.perf_counter() - start, result


def run_pandas(run_dir: Path):
    import pandas as pd
    import polars as pl

    start = time.perf_counter()
    df = pd.read_parquet(run_dir / "store" / "history", columns=COLUMNS)
    grouped = df.groupby("trial_id")
    last = df.loc[grouped["iteration"].idxmax(), ["trial_id", "clean_acc"]].set_index("trial_id")
    result = grouped.agg(
        mean_epoch_seconds=("epoch_seconds", "mean"), max_robust_acc=("robust_acc", "max")
    ).join(last.rename(columns={"clean_acc": "last_clean_acc"}))
    seconds = time.perf_counter() - start
    return seconds, pl.from_pandas(result.reset_index())


def child(engine: str, run_dir: Path, out: Path) -> None:
    runner = run_polars if engine == "polars" else run_pandas
    if engine == "pandas":
        import pandas  # noqa: F401  (import cost and its memory are outside the measurement)
    import polars  # noqa: F401

    import analysis  # noqa: F401

    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds, result = runner(run_dir)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result.select("trial_id", "last_clean_acc", "mean_epoch_seconds", "max_robust_acc").sort(
        "trial_id"
    ).write_parquet(out)
    print(json.dumps({"seconds": seconds, "baseline_mib": baseline_kib / 1024,
                      "peak_mib": peak_kib / 1024, "rows": result.height}))


def measure(engine: str, run_dir: Path, out: Path, repeat: int) -> dict:
    runs = []
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, __file__, "--child", engine, str(run_dir), str(out)],
            check=True, capture_output=True, text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["seconds"])
    return best | {"peak_mib": max(r["peak_mib"] for r in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=3, metavar=("ENGINE", "RUN_DIR", "OUT"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--write", metavar="RUN_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        engine, run_dir, out = args.child
        child(engine, Path(run_dir), Path(out))
        return
    if args.write:
        write_synthetic_run(Path(args.write), args.rows, args.files)
        return
    root = Path(__file__).resolve().parents[1]
    if subprocess.run([sys.executable, "-c", "import pandas"], check=False).returncode:
        print("pandas is not installed: no baseline to compare against")
        return
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "bench_run"
        start = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--write", str(run_dir), "--rows",
                        str(args.rows), "--files", str(args.files)], check=True, cwd=root)
        size = sum(p.stat().st_size for p in (run_dir / "store" / "history").glob("*.parquet"))
        print(f"wrote {args.rows:,} history rows in {args.files} Parquet files "
              f"({size / 2**20:.0f} MiB) in {time.perf_counter() - start:.1f} s")
        results = {}
        for engine in ("polars", "pandas"):
            results[engine] = measure(engine, run_dir, Path(tmp) / f"{engine}.parquet",
                                      args.repeat)
        import numpy as np  # only now: the children above inherit no large parent RSS
        import pandas
        import polars as pl

        a = pl.read_parquet(Path(tmp) / "polars.parquet")
        b = pl.read_parquet(Path(tmp) / "pandas.parquet")
        assert a.height == b.height and a["trial_id"].equals(b["trial_id"])
        for column in a.columns[1:]:
            np.testing.assert_allclose(a[column].to_numpy(), b[column].to_numpy(), rtol=1e-12)
    p, q = results["polars"], results["pandas"]
    print(f"answers agree on {a.height:,} trials; best of {args.repeat} runs each")
    print(f"polars lazy (analysis.load)       : {p['seconds']:.3f} s, peak RSS "
          f"{p['peak_mib']:.0f} MiB (after imports {p['baseline_mib']:.0f} MiB)")
    print(f"pandas {pandas.__version__} read_parquet+groupby: {q['seconds']:.3f} s, peak RSS "
          f"{q['peak_mib']:.0f} MiB (after imports {q['baseline_mib']:.0f} MiB)")
    work_p, work_q = p["peak_mib"] - p["baseline_mib"], q["peak_mib"] - q["baseline_mib"]
    print(f"speed-up pandas/polars: {q['seconds'] / p['seconds']:.2f}x; "
          f"peak-memory ratio pandas/polars: {q['peak_mib'] / p['peak_mib']:.2f}x "
          f"(memory added by the work: {work_q:.0f} vs {work_p:.0f} MiB)")


if __name__ == "__main__":
    main()
