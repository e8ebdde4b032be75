"""Gaussian mixture in [0, 1]^dim: class means at `separation` from the centre, clipped pixels."""

from __future__ import annotations

import numpy as np

from trainables.data._synthetic import (
    DEFAULT_N_TEST,
    DEFAULT_N_TRAIN,
    balanced_labels,
    rng_for,
    sample_rngs,
)
from trainables.data._types import RawSplits


def make_gaussian(
    n_train: int = DEFAULT_N_TRAIN,
    n_test: int = DEFAULT_N_TEST,
    *,
    dim: int = 32,
    num_classes: int = 4,
    separation: float = 0.5,
    noise: float = 0.2,
    seed: int = 0,
    task_seed: int = 0,
) -> RawSplits:
    """Class c is N(0.5 + separation * e_c, noise^2 I) clipped to [0, 1]; the e_c are random
    orthonormal directions (fixed by task_seed), so means are separation * sqrt(2) apart."""
    directions, _ = np.linalg.qr(rng_for(task_seed, 0).standard_normal((dim, num_classes)))
    means = 0.5 + separation * directions.T  # (num_classes, dim)

    def draw(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        y = balanced_labels(n, num_classes, rng)
        x = means[y] + noise * rng.standard_normal((n, dim))
        return np.clip(x, 0.0, 1.0).astype(np.float32), y

    train_rng, test_rng = sample_rngs(task_seed, seed)
    x_train, y_train = draw(n_train, train_rng)
    x_test, y_test = draw(n_test, test_rng)
    return RawSplits(x_train, y_train, x_test, y_test, num_classes, presized=True)


def load(*, data_dir: str | None, n_train: int | None, n_test: int | None, seed: int) -> RawSplits:
    del data_dir  # generated in-process
    return make_gaussian(n_train or DEFAULT_N_TRAIN, n_test or DEFAULT_N_TEST, seed=seed)
