"""Cost of the final evaluation protocol as a multiple of training time, for one trial.

    PYTHONPATH=$PWD python -m bench.final_cost [--scale cpu] [--norms linf,l2] [--threads N]

Runs one trial (the scale's settings; FCN 784-256-10 on Fashion-MNIST at cpu scale), times the
training epochs (epoch time minus its robustness evaluation), the cheap per-epoch evaluations, and
the final protocol, and prints per (norm, eps) the attacked RA of each attack, the global and
relaxed certified accuracy and the band [certified relaxed, attacked] width in points.
"""

from __future__ import annotations

import argparse
import time

from sweep.spaces._scales import CPU, SMOKE
from trainables.trial import Trial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=("cpu", "smoke"), default="cpu")
    parser.add_argument("--norms", default="linf,l2")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--set", default="", help="extra k=v,k=v (python literals)")
    args = parser.parse_args()
    cfg = dict(CPU if args.scale == "cpu" else SMOKE)
    cfg.update(norms=tuple(args.norms.split(",")), threads=args.threads)
    for item in filter(None, args.set.split(",")):
        key, value = item.split("=")
        cfg[key] = eval(value)  # noqa: S307 - a local benchmark's own option
    trial = Trial(cfg)
    train = evals = 0.0
    start = time.perf_counter()
    for result in trial.epochs():
        evals_this = trial.eval_seconds
        train += result["epoch_seconds"] - evals_this
        if result["iteration"] < cfg["epochs"]:
            evals += evals_this
        last = result
    final = trial.eval_seconds
    total = time.perf_counter() - start
    print(f"training {train:.1f}s  per-epoch evaluations {evals:.1f}s  final protocol "
          f"{final:.1f}s = {final / train:.2f}x training  (total {total:.1f}s)")
    rows = last["robustness"]
    by = {(r["norm"], r["eps"], r["attack"]): r for r in rows}
    print("norm  eps    n     clean  RA-pgd RA-final [lo,hi]          cert-global cert-relaxed "
          "band(pts) ratio-glob ratio-relax")
    for (norm, eps, attack), r in sorted(by.items()):
        if attack == cfg.get("attack", "pgd"):
            f = by.get((norm, eps, cfg.get("final_attack", "ensemble")), r)
            print(f"{norm:5} {eps:<6} {r['n_eval']:<5} {r['clean_acc']:.3f}  "
                  f"{r['robust_acc']:.3f}  "
                  f"{f['robust_acc']:.3f} [{f['robust_acc_lo']:.3f},{f['robust_acc_hi']:.3f}]  "
                  f"{r['certified_acc']:.3f}       {r['certified_acc_relaxed']:.3f}        "
                  f"{100 * (f['robust_acc'] - r['certified_acc_relaxed']):5.1f}     "
                  f"{r['cert_ratio_global']:.3f}      {r['cert_ratio_relaxed']:.3f}")
            if r["n_exact"]:
                print(f"      exact (MILP) on the first {r['n_exact']}: robust "
                      f"{r['exact_acc']:.3f}, undecided {r['exact_unknown']}")


if __name__ == "__main__":
    main()
