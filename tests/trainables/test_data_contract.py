"""The contract every registered dataset loader keeps (trainables.data.DATASET_SOURCES).

Parametrized over the registry: a new dataset (one module plus one registry line) is covered here
without editing this file. A loader whose files are not on this machine must say so with
DatasetNotFoundError; it is then checked on files a test writes in its format (dataset_files.py),
and only a loader with neither is skipped, with that message as the reason.
"""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path

import pytest
import torch

from tests.trainables.dataset_files import FILE_WRITERS
from trainables.data import DATASET_SOURCES, load_dataset
from trainables.errors import DatasetNotFoundError

N_TRAIN, N_TEST = 64, 32


@cache
def _load(name: str, seed: int):
    try:
        return load_dataset(name, n_train=N_TRAIN, n_test=N_TEST, seed=seed)
    except DatasetNotFoundError as err:
        if name not in FILE_WRITERS:
            return err
    return load_dataset(name, data_dir=str(_written(name)), n_train=N_TRAIN, n_test=N_TEST,
                        seed=seed)


@cache
def _written(name: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=f"contract-{name}-"))
    FILE_WRITERS[name](root)
    return root


def load(name: str, seed: int):
    data = _load(name, seed)
    if isinstance(data, DatasetNotFoundError):
        pytest.skip(f"{name}: {data}")
    return data


@pytest.mark.parametrize("name", sorted(DATASET_SOURCES))
def test_loader_gives_pixel_tensors_labels_and_training_statistics(name):
    data = load(name, seed=1)
    assert data.name == name
    for x, y, n in ((data.x_train, data.y_train, N_TRAIN), (data.x_test, data.y_test, N_TEST)):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert tuple(x.shape) == (n, *data.input_shape) and tuple(y.shape) == (n,)
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        assert int(y.min()) >= 0 and int(y.max()) < data.num_classes
    assert data.num_classes >= 2
    # mean / std are the training split's, shaped for the models' Normalize (per channel or (1,)).
    dims = [0, *range(2, data.x_train.dim())] if data.x_train.dim() == 4 else None
    expected = data.x_train.mean(dim=dims) if dims else data.x_train.mean().view(1)
    assert torch.allclose(data.mean.flatten(), expected.flatten(), atol=1e-4)
    assert bool((data.std > 0).all())


@pytest.mark.parametrize("name", sorted(DATASET_SOURCES))
def test_loader_is_deterministic_under_its_seed(name):
    first, again, other = load(name, seed=1), load(name, seed=1), load(name, seed=2)
    assert torch.equal(first.x_train, again.x_train) and torch.equal(first.y_train, again.y_train)
    assert torch.equal(first.x_test, again.x_test)
    assert not torch.equal(first.x_train, other.x_train)  # the seed picks (or draws) the samples
