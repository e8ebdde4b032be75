"""Certificates on a cpu-scale Fashion-MNIST FCN 784-256-10: linear relaxation (CROWN, IBP) vs the
global product, against APGD-CE robust accuracy, plus exact MILP verification on a subset.

Trains the dense FCN as the cpu scale would (10,000 training images, 10 epochs SGD lr 0.01
momentum 0.9 weight decay 5e-4, batch 128), then on the test samples prints, per (norm, eps):
certified accuracy from CROWN, IBP and the global product, APGD-CE robust accuracy (100 steps),
the band [certified CROWN, attacked] width in points and seconds per 1,000 samples of each
certificate. Then per-sample radii (CROWN bisection and global vs r_emp from APGD-CE bisection),
and MILP agreement (certified CROWN / exact / attacked) on a subset at L-inf eps 0.02.

    PYTHONPATH=$PWD .venv/bin/python bench/certify.py [--samples 1000] [--milp-samples 100]
        [--radius-samples 200] [--threads 2] [--smoke-test]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from trainables.attacks import apgd, minimal_eps
from trainables.data import load_dataset
from trainables.metrics import (
    certified_accuracy,
    certified_accuracy_relaxed,
    certified_mask,
    certified_radius,
    certified_radius_relaxed,
    exact_robust_mask,
)
from trainables.models import build_model

GRID = {"linf": (0.01, 0.02, 0.04), "l2": (0.1, 0.25, 0.5)}
EPS_MAX = {"linf": 0.1, "l2": 1.0}


def train(smoke: bool):
    data = load_dataset("fashion_mnist", n_train=1000 if smoke else 10000, n_test=1000, seed=0)
    torch.manual_seed(0)
    model = build_model("fcn", input_shape=data.input_shape, num_classes=data.num_classes,
                        mean=data.mean, std=data.std, width=256, depth=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(0)
    model.train()
    start = time.perf_counter()
    for _ in range(2 if smoke else 10):
        order = torch.randperm(len(data.x_train), generator=gen)
        for i in range(0, len(order), 128):
            idx = order[i:i + 128]
            opt.zero_grad()
            F.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
            opt.step()
    model.eval()
    return model, data, time.perf_counter() - start


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--milp-samples", type=int, default=100)
    parser.add_argument("--radius-samples", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--smoke-test", action="store_true")
    args = parser.parse_args()
    if args.smoke_test:
        args.samples, args.milp_samples, args.radius_samples = 50, 5, 20
    torch.set_num_threads(args.threads)

    model, data, train_s = train(args.smoke_test)
    x, y = data.x_test[:args.samples], data.y_test[:args.samples]
    with torch.no_grad():
        clean = float((model(x).argmax(1) == y).double().mean())
    per_k = 1000 / len(x)
    print(f"FCN 784-256-10, Fashion-MNIST, trained in {train_s:.1f} s; {len(x)} test samples, "
          f"clean accuracy {clean:.3f}")
    print(f"{'norm':<5} {'eps':>5} {'CROWN':>6} {'IBP':>6} {'global':>6} {'APGD':>6} "
          f"{'CROWN/RA':>8} {'band pts':>8} {'CROWN s/1k':>10} {'IBP s/1k':>8} {'APGD s/1k':>9}")
    widths = []
    for norm, grid in GRID.items():
        radius_global = certified_radius(model, x, y, norm)
        for eps in grid:
            crown, t_crown = timed(lambda: certified_accuracy_relaxed(model, x, y, norm, eps))
            ibp, t_ibp = timed(lambda: certified_accuracy_relaxed(model, x, y, norm, eps, "ibp"))
            x_adv, t_adv = timed(lambda: apgd(model, x, y, norm=norm, eps=eps, steps=100, seed=0))
            with torch.no_grad():
                ra = float((model(x_adv).argmax(1) == y).double().mean())
            width = 100 * (ra - crown)
            widths.append(width)
            ratio = crown / ra if ra > 0 else float("nan")
            print(f"{norm:<5} {eps:>5} {crown:>6.3f} {ibp:>6.3f} "
                  f"{certified_accuracy(radius_global, eps):>6.3f} {ra:>6.3f} {ratio:>8.2f} "
                  f"{width:>8.1f} {t_crown * per_k:>10.2f} {t_ibp * per_k:>8.2f} "
                  f"{t_adv * per_k:>9.1f}")
    print(f"band width [CROWN-certified, APGD] in points: median {statistics.median(widths):.1f} "
          f"over the {len(widths)} (norm, eps) rows, max {max(widths):.1f}")

    xr, yr = x[:args.radius_samples], y[:args.radius_samples]
    print(f"\nper-sample radii on {len(xr)} samples (correct clean, r_emp finite): "
          "median r / r_emp and Spearman correlation with r_emp")
    for norm in GRID:
        r_relax, t_r = timed(lambda: certified_radius_relaxed(model, xr, yr, norm, EPS_MAX[norm],
                                                              iters=10))
        r_glob = certified_radius(model, xr, yr, norm)
        r_emp = minimal_eps(model, xr, yr, norm=norm, eps_max=EPS_MAX[norm], steps=50,
                            bisection_steps=10, attack="apgd-ce").double()
        keep = (r_emp > 0) & torch.isfinite(r_emp)
        for name, r in (("CROWN", r_relax), ("global", r_glob)):
            ratio = (r[keep] / r_emp[keep]).median()
            rho = _spearman(r[keep], r_emp[keep])
            print(f"  {norm:<5} {name:<6} median r/r_emp {ratio:.3f}  Spearman {rho:.3f}  "
                  f"violations r > r_emp: {int((r[keep] > r_emp[keep]).sum())}")
        print(f"  {norm:<5} CROWN bisection: {t_r * 1000 / len(xr):.1f} s per 1k samples")

    eps = 0.02
    xm, ym = x[:args.milp_samples], y[:args.milp_samples]
    (robust, unknown), t_milp = timed(lambda: exact_robust_mask(model, xm, ym, eps))
    cert = certified_mask(model, xm, ym, "linf", eps)
    x_adv = apgd(model, xm, ym, norm="linf", eps=eps, steps=100, seed=0)
    with torch.no_grad():
        attacked = model(x_adv).argmax(1) == ym
        correct = model(xm).argmax(1) == ym
    n = len(xm)
    print(f"\nMILP on {n} samples, linf eps {eps} ({t_milp:.1f} s, {t_milp / n:.2f} s/sample): "
          f"clean {int(correct.sum())}, certified (CROWN) {int(cert.sum())}, exact robust "
          f"{int(robust.sum())}, unknown {int(unknown.sum())}, attacked robust (APGD-CE) "
          f"{int(attacked.sum())}")
    decided = ~unknown
    print(f"  agreement on decided samples: CROWN == exact {int((cert == robust)[decided].sum())}"
          f"/{int(decided.sum())}, exact == APGD {int((robust == attacked)[decided].sum())}"
          f"/{int(decided.sum())}, all three "
          f"{int(((cert == robust) & (robust == attacked))[decided].sum())}"
          f"; violations: certified & not exact {int((cert & ~robust & decided).sum())}, "
          f"exact & fooled {int((robust & ~attacked).sum())}")


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra = a.argsort().argsort().double()
    rb = b.argsort().argsort().double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp_min(1e-12))


if __name__ == "__main__":
    main()
