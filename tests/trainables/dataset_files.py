"""Dataset files written by tests: the formats of loaders whose data no package ships (MNIST's
idx files, CIFAR-10's python batches), so their loaders are tested on real files anyway."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray, type_code: int, compress: bool) -> None:
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


def make_idx_dir(root: Path, compress: bool, seed: int = 0, n_train: int = 7, n_test: int = 3
                 ) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 5, 4), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 5, 4), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    root.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        write_idx(root / (stem + (".gz" if compress else "")), array, 0x08, compress)
    return arrays


def make_cifar_dir(root: Path, per_batch: int = 2
                   ) -> tuple[np.ndarray, list[int], np.ndarray, list[int]]:
    rng = np.random.default_rng(1)
    root.mkdir(parents=True, exist_ok=True)
    train_x, train_y = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, per_batch)]
        batch = {b"batch_label": name.encode(), b"labels": y, b"data": x, b"filenames": [b"f%d" % i for i in range(per_batch)]}
        with (root / name).open("wb") as f:
            pickle.dump(batch, f, protocol=2)
        if name != "test_batch":
            train_x.append(x)
            train_y += y
    return np.concatenate(train_x), train_y, x, y


# Loaders with no default location -> a writer of a directory they load (used by the contract).
FILE_WRITERS = {
    "mnist": lambda root: make_idx_dir(root, compress=True, n_train=160, n_test=64),
    "cifar10": lambda root: make_cifar_dir(root, per_batch=32),
}
