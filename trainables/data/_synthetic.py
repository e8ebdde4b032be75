"""Seeding shared by the synthetic sources: the task is fixed by task_seed, samples by seed."""

from __future__ import annotations

import numpy as np

DEFAULT_N_TRAIN = 4000
DEFAULT_N_TEST = 1000


def rng_for(task_seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([task_seed, *stream]))


def sample_rngs(task_seed: int, seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """(train rng, test rng): the training draw varies with seed; the test set is one fixed
    sample of the task, as for a file dataset, so accuracies compare across seeds."""
    return rng_for(task_seed, 1, seed), rng_for(task_seed, 2)


def balanced_labels(n: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % num_classes).astype(np.int64)
