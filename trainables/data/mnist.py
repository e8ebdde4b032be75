"""MNIST from idx files; there is no packaged copy, so data_dir is required."""

from __future__ import annotations

from trainables.data._idx import load_idx_dir
from trainables.data._types import RawSplits
from trainables.errors import DatasetNotFoundError

HINT = (
    "pass data_dir=DIR holding train-images-idx3-ubyte, train-labels-idx1-ubyte, "
    "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (optionally .gz) from the MNIST site"
)


def load(*, data_dir: str | None, n_train: int | None, n_test: int | None, seed: int) -> RawSplits:
    del n_train, n_test, seed
    if data_dir is None:
        raise DatasetNotFoundError(f"mnist has no default location (no package ships it); {HINT}")
    return load_idx_dir(data_dir, HINT)
