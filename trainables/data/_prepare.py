"""Steps shared by every source: keep classes, subsample, compute normalization statistics."""

from __future__ import annotations

import numpy as np
import torch

from trainables.data._types import Dataset, RawSplits
from trainables.errors import ConfigError

# Floor on the per-channel std: a constant channel must not blow up 1 / min(std), which enters
# every Lipschitz bound.
STD_FLOOR = 1e-3


def prepare(
    name: str,
    raw: RawSplits,
    *,
    n_train: int | None,
    n_test: int | None,
    classes: tuple[int, ...] | None,
    seed: int,
) -> Dataset:
    x_train, y_train, x_test, y_test = raw.x_train, raw.y_train, raw.x_test, raw.y_test
    num_classes = raw.num_classes
    if classes is not None:
        classes = _check_classes(classes, num_classes)
        x_train, y_train = _keep_classes(x_train, y_train, classes)
        x_test, y_test = _keep_classes(x_test, y_test, classes)
        num_classes = len(classes)
    if not raw.presized:
        x_train, y_train = _subsample("n_train", x_train, y_train, n_train, seed, stream=0)
        x_test, y_test = _subsample("n_test", x_test, y_test, n_test, seed, stream=1)
    mean, std = channel_stats(x_train)
    return Dataset(
        name=name,
        x_train=torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32)),
        y_train=torch.from_numpy(np.ascontiguousarray(y_train, dtype=np.int64)),
        x_test=torch.from_numpy(np.ascontiguousarray(x_test, dtype=np.float32)),
        y_test=torch.from_numpy(np.ascontiguousarray(y_test, dtype=np.int64)),
        num_classes=num_classes,
        input_shape=tuple(int(s) for s in x_train.shape[1:]),
        mean=mean,
        std=std,
    )


def channel_stats(x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean/std (C, 1, 1) for images (N, C, H, W); one scalar (1,) for vectors."""
    x64 = x.astype(np.float64)
    if x.ndim == 4:
        mean = x64.mean(axis=(0, 2, 3)).reshape(-1, 1, 1)
        std = x64.std(axis=(0, 2, 3)).reshape(-1, 1, 1)
    else:
        mean = np.array([x64.mean()])
        std = np.array([x64.std()])
    std = np.maximum(std, STD_FLOOR)
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)


def _check_classes(classes: tuple[int, ...], num_classes: int) -> tuple[int, ...]:
    classes = tuple(classes)
    bad = [c for c in classes if not isinstance(c, (int, np.integer)) or not 0 <= c < num_classes]
    if not classes or bad or len(set(classes)) != len(classes):
        raise ConfigError(
            f"classes must be distinct labels in 0..{num_classes - 1}, but got {list(classes)}"
        )
    return tuple(int(c) for c in classes)


def _keep_classes(
    x: np.ndarray, y: np.ndarray, classes: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Keep samples of `classes` (original order) and relabel classes[i] -> i."""
    relabel = np.full(int(max(y.max(initial=0), max(classes))) + 1, -1, dtype=np.int64)
    relabel[list(classes)] = np.arange(len(classes))
    keep = np.isin(y, classes)
    return x[keep], relabel[y[keep]]


def _subsample(
    what: str, x: np.ndarray, y: np.ndarray, n: int | None, seed: int, stream: int
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random subset of n samples, kept in the original order (same seed, same subset)."""
    if n is None or n == len(x):
        return x, y
    if not isinstance(n, int) or n < 1 or n > len(x):
        raise ConfigError(f"{what} must be an integer in 1..{len(x)} here, but got {n!r}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, stream]))
    idx = np.sort(rng.permutation(len(x))[:n])
    return x[idx], y[idx]
