"""Cost of the full per-epoch metric set, against named baselines measured in the same run.

Full set = layer_metrics + lipschitz (both norms) + sensitivity_estimates (one Jacobian pass: logits,
the alignment-aware and first-order estimates for both norms) + certified_radius (both norms, on
those logits) + loss_gap_bound (both norms), on N samples. Baselines: one training forward+backward pass over the
same N samples, and numpy.linalg.svd of every encoder weight matrix.

    .venv/bin/python bench/metrics_cost.py [--samples 256] [--threads 1] [--repeats 2] [--smoke-test]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainables.metrics import (
    certified_radius,
    layer_metrics,
    lipschitz,
    loss_gap_bound,
    sensitivity_estimates,
)
from trainables.models import build_model


def full_metric_set(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    layer_metrics(model)
    estimates = sensitivity_estimates(model, x, y)
    for p in ("linf", "l2"):
        lipschitz(model, p)
        certified_radius(model, x, y, p, logits=estimates.logits)
        loss_gap_bound(model, p, 1.0)
        estimates.alignment_gap(p, 1.0)
        estimates.first_order_gap(p, 1.0)


def forward_backward(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()


def numpy_svds(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    for _, layer in model.encoder_layers():
        weight = layer.weight.detach().numpy()
        np.linalg.svd(weight.reshape(weight.shape[0], -1), compute_uv=False)


def seconds_per_call(fn: Callable[..., None], repeats: int, *args: object) -> float:
    fn(*args)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn(*args)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--smoke-test", action="store_true", help="tiny sizes, one repeat")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    samples, repeats = (16, 1) if args.smoke_test else (args.samples, args.repeats)
    fcn_width, resnet_width = (64, 64) if args.smoke_test else (1024, 512)

    torch.manual_seed(0)
    cases = {
        f"fcn 784-{fcn_width}-{fcn_width}-10": build_model(
            "fcn",
            input_shape=(784,),
            num_classes=10,
            mean=torch.full((1,), 0.3),
            std=torch.full((1,), 0.3),
            width=fcn_width,
            depth=2,
        ),
        f"resnet18 width {resnet_width}, 3x32x32": build_model(
            "resnet18",
            input_shape=(3, 32, 32),
            num_classes=10,
            mean=torch.full((3, 1, 1), 0.5),
            std=torch.full((3, 1, 1), 0.25),
            width=resnet_width,
        ),
    }
    print(f"samples={samples} threads={args.threads} repeats={repeats}")
    for name, model in cases.items():
        x = torch.rand(samples, *model.input_shape)
        y = torch.randint(0, 10, (samples,))
        metrics = seconds_per_call(full_metric_set, repeats, model, x, y)
        model.train()
        train_pass = seconds_per_call(forward_backward, repeats, model, x, y)
        svd = seconds_per_call(numpy_svds, repeats, model, x, y)
        layers = seconds_per_call(layer_metrics, repeats, model)
        jacobian = seconds_per_call(sensitivity_estimates, repeats, model, x, y)
        bounds = seconds_per_call(
            lambda m: [lipschitz(m, p) for p in ("linf", "l2")], repeats, model
        )
        print(f"{name}:")
        print(f"  full metric set            {metrics:9.3f} s/call")
        print(
            f"  baseline fwd+bwd (train)   {train_pass:9.3f} s/call   ratio {metrics / train_pass:7.1f}x"
        )
        print(f"  of which sensitivity_estimates {jacobian:9.3f} s, lipschitz x2 {bounds:9.3f} s")
        print(f"  layer_metrics alone        {layers:9.3f} s/call")
        print(f"  baseline numpy svd layers  {svd:9.3f} s/call   ratio {layers / svd:7.2f}x")


if __name__ == "__main__":
    main()
