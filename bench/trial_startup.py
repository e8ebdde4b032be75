"""Cold start of one trial in a fresh process: imports, data, model build, first optimizer step.

A Ray worker pays this once per process (actors are reused), so it is the cost a trial's first
epoch carries beyond training. Prints seconds per phase and whether torch._dynamo got imported
(torch.optim imports it on every step: unavoidable with torch.optim) and scipy (imported lazily).

    .venv/bin/python bench/trial_startup.py                # cpu scale (Fashion-MNIST FCN)
    .venv/bin/python bench/trial_startup.py --repeat 3     # the median of 3 fresh processes
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
from sweep.spaces import trial_options
from sweep.spaces._scales import CPU
from trainables.trial import Trial
t1 = time.perf_counter()
torch.set_num_threads(1)
trial = Trial(trial_options({**CPU, "epochs": 1, "threads": 1}))
t2 = time.perf_counter()
x, y = trial.x_train[:128], trial.y_train[:128]
loss = torch.nn.functional.cross_entropy(trial.model(x), y)
trial.optimizer.zero_grad(set_to_none=True)
loss.backward()
trial.optimizer.step()
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "trial_init": t2 - t1, "first_step": t3 - t2,
                  "total": t3 - t0, "dynamo_imported": "torch._dynamo" in sys.modules,
                  "scipy_imported": "scipy" in sys.modules}))
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes (median reported)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    runs = []
    for _ in range(args.repeat):
        out = subprocess.run([sys.executable, "-c", CHILD], check=True, capture_output=True,
                             text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    for key in ("import", "trial_init", "first_step", "total"):
        print(f"{key:11s} {statistics.median(r[key] for r in runs):6.3f} s  "
              f"(runs: {', '.join(f'{r[key]:.3f}' for r in runs)})")
    for key in ("dynamo_imported", "scipy_imported"):
        print(f"{key}:", sorted({r[key] for r in runs}))


if __name__ == "__main__":
    main()
