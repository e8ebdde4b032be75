"""Time `python -m trainables.audit` on 1,000 Fashion-MNIST test samples, both norms, three eps each,
for an FCN 784-256-10 with biases and the project's small CNN (user-style models, trained here
briefly), through the real CLI (a fresh process: imports included).

    PYTHONPATH=$PWD python bench/audit_time.py --out /tmp/audit_time [--epochs 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

FACTORIES = textwrap.dedent(
    """
    import torch
    from torch import nn
    from trainables.models import build_model

    MEAN, STD = 0.286, 0.353  # Fashion-MNIST pixel statistics

    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor(MEAN))
            self.register_buffer("std", torch.tensor(STD))

        def forward(self, x):
            return (x - self.mean) / self.std

    def fcn():
        return nn.Sequential(Scale(), nn.Flatten(), nn.Linear(784, 256), nn.ReLU(),
                             nn.Linear(256, 10))

    def cnn():
        return build_model("cnn", input_shape=(1, 28, 28), num_classes=10,
                           mean=torch.tensor([MEAN]), std=torch.tensor([STD]), width=64)
    """
)


def train_and_save(out: Path, epochs: int, threads: int, n_train: int) -> None:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from trainables.data import load_dataset

    torch.set_num_threads(threads)
    sys.path.insert(0, str(out))
    import bench_factories

    data = load_dataset("fashion_mnist", n_train=n_train, seed=0)
    np.savez(out / "fmnist_test.npz", x=data.x_test[:1000].numpy(), y=data.y_test[:1000].numpy())
    for name in ("fcn", "cnn"):
        if (out / f"{name}.pt").exists():
            continue
        torch.manual_seed(0)
        model = getattr(bench_factories, name)()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.train()
        for _ in range(epochs):
            for idx in torch.randperm(len(data.x_train)).split(128):
                opt.zero_grad()
                F.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
                opt.step()
        torch.save(model.eval().state_dict(), out / f"{name}.pt")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n-eval", type=int, default=1000)
    p.add_argument("--n-train", type=int, default=20000)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_factories.py").write_text(FACTORIES)
    if not all((args.out / f"{n}.pt").exists() for n in ("fcn", "cnn")):
        train_and_save(args.out, args.epochs, args.threads, args.n_train)
    repo = Path(__file__).resolve().parents[1]
    for name in ("fcn", "cnn"):
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "trainables.audit", "--model", f"bench_factories:{name}",
             "--weights", f"{name}.pt", "--data", "fmnist_test.npz", "--n-eval",
             str(args.n_eval), "--threads", str(args.threads), "--json"],
            cwd=args.out, env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True,
        )
        wall = time.perf_counter() - start
        if proc.returncode:
            print(proc.stderr, file=sys.stderr)
            return 1
        result = json.loads(proc.stdout)
        (args.out / f"{name}.json").write_text(proc.stdout)
        print(f"{name}: wall {wall:.1f}s (audit {result['seconds']:.1f}s) clean "
              f"{result['clean_acc']:.3f}")
        for r in result["robustness"]:
            print(f"  {r['norm']:>4} eps {r['eps']:<5g} robust {r['robust_acc']:.3f} "
                  f"[{r['robust_acc_ci'][0]:.3f}, {r['robust_acc_ci'][1]:.3f}] certified "
                  f"{r['certified_acc']} ({r['certified_method']}) global "
                  f"{r['certified_acc_global']}")
        print(f"  skipped: {result['skipped']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
