"""GPU throughput: the smoke and cpu scales of one space through the launcher with fractional GPUs,
recording trials per hour, GPU memory per trial process and GPU utilisation.

Needs a CUDA GPU and nvidia-smi; without them it exits 2 with one line (CI, CPU machines).

    .venv/bin/python bench/gpu_sweep.py [--space spectral_linf] [--gpus-per-trial 0.25]
                                        [--scales smoke,cpu] [--out gpu_sweep_out] [--no-baseline]

For each scale: `python -m sweep.launch --space S --scale X --gpus-per-trial F` (its own run
directory under OUT/runs), while nvidia-smi samples every 500 ms, in the background:
  OUT/<scale>_gpu.csv    utilization.gpu, memory.used of every GPU (whole device)
  OUT/<scale>_procs.csv  pid, used_memory of every process on a GPU (a trial actor is one process;
                         actors are reused, so its peak is the largest trial it ran, CUDA context
                         of ~0.3-0.5 GiB included)
OUT/summary.json (also printed): per scale, trials completed, wall seconds, trials per hour, GPU
utilisation mean / max, device memory max and per-process memory max. Baseline for the
throughput, measured in the same run: the same scale at --gpus-per-trial 1 (one trial per GPU);
the summary gives trials_per_hour_vs_one_per_gpu (skip it with --no-baseline).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

SAMPLE_MS = 500
NO_GPU = 2  # the launcher's exit code for bad input, used for "this machine has no GPU" too


def gpu_names() -> list[str]:
    """GPUs nvidia-smi lists; [] when it is missing or finds none."""
    if shutil.which("nvidia-smi") is None:
        return []
    probe = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    return [line for line in probe.stdout.splitlines() if line.startswith("GPU ")]


def sample(query: str, path: Path) -> subprocess.Popen:
    """nvidia-smi writing `query` as CSV every SAMPLE_MS into path until terminated."""
    out = path.open("w")
    return subprocess.Popen(
        ["nvidia-smi", query, "--format=csv,noheader,nounits", f"-lms={SAMPLE_MS}"], stdout=out
    )


def column(path: Path, index: int) -> list[float]:
    values = []
    with path.open() as f:
        for row in csv.reader(f):
            try:
                values.append(float(row[index]))
            except (IndexError, ValueError):
                continue  # "[N/A]", a partial last line
    return values


def completed_trials(run_dir: Path) -> int:
    import pyarrow.parquet as pq

    table = pq.read_table(run_dir / "store" / "trials", columns=["status"])
    return sum(1 for status in table.column("status").to_pylist() if status == "completed")


def run_scale(args: argparse.Namespace, scale: str, gpus: float, out: Path) -> dict:
    name = f"gpu-{scale}-{gpus:g}-{int(time.time())}"
    tag = f"{scale}_{gpus:g}"
    samplers = [
        sample("--query-gpu=utilization.gpu,memory.used", out / f"{tag}_gpu.csv"),
        sample("--query-compute-apps=pid,used_memory", out / f"{tag}_procs.csv"),
    ]
    command = [sys.executable, "-m", "sweep.launch", "--space", args.space, "--scale", scale,
               "--gpus-per-trial", f"{gpus:g}", "--storage", str(out / "runs"), "--name", name,
               "--metrics-port", "0", "--no-dashboard", "--no-report"]
    start = time.perf_counter()
    try:
        launched = subprocess.run(command, check=False)
    finally:
        wall = time.perf_counter() - start
        for sampler in samplers:
            sampler.terminate()
            sampler.wait()
    if launched.returncode != 0:
        sys.exit(f"the {scale} sweep failed (exit {launched.returncode}): {' '.join(command)}")
    util = column(out / f"{tag}_gpu.csv", 0)
    trials = completed_trials(out / "runs" / name)
    return {
        "scale": scale,
        "gpus_per_trial": gpus,
        "trials_completed": trials,
        "wall_s": round(wall, 1),
        "trials_per_hour": round(3600 * trials / wall, 1),
        "gpu_util_mean_pct": round(sum(util) / len(util), 1) if util else None,
        "gpu_util_max_pct": max(util, default=None),
        "device_memory_max_mib": max(column(out / f"{tag}_gpu.csv", 1), default=None),
        "process_memory_max_mib": max(column(out / f"{tag}_procs.csv", 1), default=None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="spectral_linf")
    parser.add_argument("--gpus-per-trial", type=float, default=0.25)
    parser.add_argument("--scales", default="smoke,cpu")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="skip the baseline: each scale again at --gpus-per-trial 1")
    parser.add_argument("--out", default="gpu_sweep_out")
    args = parser.parse_args()
    gpus = gpu_names()
    if not gpus:
        print("bench/gpu_sweep.py needs a CUDA GPU and nvidia-smi, and found none; "
              "run it on a GPU machine", file=sys.stderr)
        sys.exit(NO_GPU)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for scale in args.scales.split(","):
        for fraction in (args.gpus_per_trial, 1.0) if args.baseline else (args.gpus_per_trial,):
            rows.append(run_scale(args, scale, fraction, out))
    summary = {"space": args.space, "gpus": gpus, "runs": rows}
    if args.baseline:
        for row, base in zip(rows[::2], rows[1::2], strict=True):
            row["trials_per_hour_vs_one_per_gpu"] = round(
                row["trials_per_hour"] / base["trials_per_hour"], 2
            ) if base["trials_per_hour"] else None
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
