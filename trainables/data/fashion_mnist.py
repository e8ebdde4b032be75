"""Fashion-MNIST from idx files; by default from Debian's dataset-fashion-mnist package."""

from __future__ import annotations

from trainables.data._idx import load_idx_dir
from trainables.data._types import RawSplits

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
HINT = "apt-get install dataset-fashion-mnist, or pass data_dir=DIR holding the idx files"


def load(*, data_dir: str | None, n_train: int | None, n_test: int | None, seed: int) -> RawSplits:
    del n_train, n_test, seed
    return load_idx_dir(data_dir or DEFAULT_DIR, HINT)
