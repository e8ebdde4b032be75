"""The post-hoc frontier of one trained model without Ray: the trials of space posthoc_audit
(trainables.posthoc.PosthocTrial, the same code path the sweep runs), one after another, printed
as a structured-vs-unstructured table per (norm, eps).

    PYTHONPATH=$PWD python bench/posthoc_frontier.py --factory /abs/f.py:build \\
        --weights /abs/w.pt --data /abs/test.npz [--n-eval 500] [--keep 0.05 0.1 0.2 0.5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from sweep.spaces.posthoc import METHODS


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--factory", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--n-eval", type=int, default=500)
    p.add_argument("--keep", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.5])
    p.add_argument("--eps-linf", type=float, nargs="+", default=[0.01, 0.02])
    p.add_argument("--eps-l2", type=float, nargs="+", default=[0.25])
    p.add_argument("--attack", default="ensemble")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="write the rows as JSON lines here")
    args = p.parse_args()
    from trainables.posthoc import PosthocTrial

    cases = [("none", 1.0)] + [(m, k) for m in METHODS for k in args.keep]
    rows = []
    for kind, keep in cases:
        start = time.perf_counter()
        trial = PosthocTrial({
            "model_factory": args.factory, "model_weights": args.weights,
            "data_path": args.data, "compression": kind, "keep_frac": keep,
            "n_eval": args.n_eval, "attack": args.attack, "norms": ("linf", "l2"),
            "eps_linf": tuple(args.eps_linf), "eps_l2": tuple(args.eps_l2),
            "threads": args.threads,
        })
        (result,) = trial.epochs()
        for r in result["robustness"]:
            rows.append({"compression": kind, "keep_frac": keep, "norm": r["norm"],
                         "eps": r["eps"], "clean_acc": r["clean_acc"],
                         "robust_acc": r["robust_acc"], "certified_acc": r["certified_acc"]})
        print(f"{kind:17s} keep {keep:<5g} clean {result['clean_acc']:.3f} " + " ".join(
            f"{r['norm']}@{r['eps']:g}: {r['robust_acc']:.3f}" for r in result["robustness"])
            + f"  ({time.perf_counter() - start:.0f}s)", flush=True)
        if args.out:
            with open(args.out, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
