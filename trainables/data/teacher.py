"""Teacher task: a fixed random ReLU network labels uniform [0, 1]^dim inputs."""

from __future__ import annotations

import numpy as np

from trainables.data._synthetic import DEFAULT_N_TEST, DEFAULT_N_TRAIN, rng_for, sample_rngs
from trainables.data._types import RawSplits

_CALIBRATION_SAMPLES = 20000


def make_teacher(
    n_train: int = DEFAULT_N_TRAIN,
    n_test: int = DEFAULT_N_TEST,
    *,
    dim: int = 32,
    num_classes: int = 4,
    hidden: int = 64,
    seed: int = 0,
    task_seed: int = 0,
) -> RawSplits:
    """Label = argmax of a random one-hidden-layer ReLU net (fixed by task_seed) whose logits are
    standardized per class on a calibration sample, so that classes come out roughly balanced."""
    task_rng = rng_for(task_seed, 0)
    w1 = task_rng.standard_normal((hidden, dim)) / np.sqrt(dim)
    w2 = task_rng.standard_normal((num_classes, hidden)) / np.sqrt(hidden)

    def logits(x: np.ndarray) -> np.ndarray:
        centred = (x - 0.5) * np.sqrt(12.0)  # unit variance per coordinate
        return np.maximum(centred @ w1.T, 0.0) @ w2.T

    reference = logits(rng_for(task_seed, 3).uniform(size=(_CALIBRATION_SAMPLES, dim)))
    shift, scale = reference.mean(axis=0), reference.std(axis=0)

    def draw(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x = rng.uniform(size=(n, dim))
        y = np.argmax((logits(x) - shift) / scale, axis=1).astype(np.int64)
        return x.astype(np.float32), y

    train_rng, test_rng = sample_rngs(task_seed, seed)
    x_train, y_train = draw(n_train, train_rng)
    x_test, y_test = draw(n_test, test_rng)
    return RawSplits(x_train, y_train, x_test, y_test, num_classes, presized=True)


def load(*, data_dir: str | None, n_train: int | None, n_test: int | None, seed: int) -> RawSplits:
    del data_dir  # generated in-process
    return make_teacher(n_train or DEFAULT_N_TRAIN, n_test or DEFAULT_N_TEST, seed=seed)
