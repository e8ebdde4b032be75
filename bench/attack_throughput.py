"""Throughput of our PGD against ART's ProjectedGradientDescentPyTorch (the baseline), same model.

An MLP 784-512-512-10 (normalization inside, pixel input) briefly trained on Fashion-MNIST when
/usr/share/datasets/fashion-mnist is there (random [0,1] inputs otherwise); both attacks run PGD-20
L-inf with one random start, step 2.5 * eps / 20, batch 256, torch threads 1, on the same samples.
Prints samples/s of each, the ratio ours / ART, and both robust accuracies as a sanity check.

    .venv/bin/python bench/attack_throughput.py [--samples 512] [--repeats 3] [--smoke-test]
"""

from __future__ import annotations

import argparse
import gzip
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainables.attacks import pgd

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
EPS, STEPS, BATCH = 0.1, 20, 256


def _read_idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    dims = np.frombuffer(raw[4:4 + 4 * ndim], dtype=">u4")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_data(n_test: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, str]:
    if (FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        def split(name: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
            images = _read_idx(FASHION_MNIST / f"{name}-images-idx3-ubyte.gz")[:n]
            labels = _read_idx(FASHION_MNIST / f"{name}-labels-idx1-ubyte.gz")[:n]
            return (torch.tensor(images, dtype=torch.float32).view(-1, 784) / 255,
                    torch.tensor(labels, dtype=torch.int64))
        return *split("train", 10_000), *split("t10k", n_test), "Fashion-MNIST"
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(10_000 + n_test, 784, generator=gen)
    y = torch.randint(0, 10, (len(x),), generator=gen)
    return x[:10_000], y[:10_000], x[10_000:], y[10_000:], "random [0,1] inputs"


class Normalize(nn.Module):
    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def build_model(x_train: torch.Tensor, y_train: torch.Tensor, epochs: int) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(Normalize(x_train.mean().item(), x_train.std().item()),
                          nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                          nn.Linear(512, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        for i in range(0, len(x_train), 128):
            loss = F.cross_entropy(model(x_train[i:i + 128]), y_train[i:i + 128])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def ours(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.cat([pgd(model, x[i:i + BATCH], y[i:i + BATCH], norm="linf", eps=EPS,
                          steps=STEPS, seed=i) for i in range(0, len(x), BATCH)])


def art(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    from art.attacks.evasion import ProjectedGradientDescentPyTorch
    from art.estimators.classification import PyTorchClassifier

    classifier = PyTorchClassifier(model, loss=nn.CrossEntropyLoss(), input_shape=(784,),
                                   nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu")
    attack = ProjectedGradientDescentPyTorch(classifier, norm=np.inf, eps=EPS,
                                             eps_step=2.5 * EPS / STEPS, max_iter=STEPS,
                                             num_random_init=1, batch_size=BATCH, verbose=False)
    return torch.from_numpy(attack.generate(x.numpy(), y.numpy()))


def throughput(attack, model, x, y, repeats: int) -> tuple[float, float]:
    """Best-of-repeats samples/s (the machine is shared: the best run is the least disturbed)."""
    attack(model, x[:BATCH], y[:BATCH])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        x_adv = attack(model, x, y)
        best = min(best, time.perf_counter() - start)
    with torch.no_grad():
        robust = (model(x_adv).argmax(1) == y).float().mean().item()
    return len(x) / best, robust


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke-test", action="store_true", help="tiny run: 256 samples, once")
    args = parser.parse_args()
    samples, repeats = (BATCH, 1) if args.smoke_test else (args.samples, args.repeats)
    torch.set_num_threads(1)
    x_train, y_train, x, y, source = load_data(samples)
    model = build_model(x_train, y_train, epochs=0 if args.smoke_test else 2)
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item()
    ours_rate, ours_robust = throughput(ours, model, x, y, repeats)
    art_rate, art_robust = throughput(art, model, x, y, repeats)
    print(f"data: {source}, {len(x)} samples; MLP 784-512-512-10, clean acc {clean:.3f}")
    print(f"PGD-{STEPS} L-inf eps={EPS}, batch {BATCH}, torch threads 1, best of {repeats}")
    print(f"ours: {ours_rate:8.1f} samples/s  (robust acc {ours_robust:.3f})")
    print(f"ART : {art_rate:8.1f} samples/s  (robust acc {art_robust:.3f})")
    print(f"ratio ours/ART: {ours_rate / art_rate:.2f}")


if __name__ == "__main__":
    main()
