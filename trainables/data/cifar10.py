"""CIFAR-10 from the standard python-pickle batches (cifar-10-batches-py); data_dir is required.

The batches are pickles; they are read with an unpickler that only admits plain containers and
numpy arrays, so a tampered file cannot run code.
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path

import numpy as np

from trainables.data._types import RawSplits
from trainables.errors import DatasetNotFoundError

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
SUBDIR = "cifar-10-batches-py"
HINT = (
    "pass data_dir=DIR holding data_batch_1..5 and test_batch (the python version, "
    "cifar-10-python.tar.gz, extracted)"
)

try:  # numpy >= 2 moved the module; pickles name either location
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Python 3 pickles bytes at protocol 2 as _codecs.encode(str, "latin1"): a pure function.
    ("_codecs", "encode"): codecs.encode,
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (uint8 images (N, 3, 32, 32), int64 labels (N,))."""
    try:
        with path.open("rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, TypeError, ValueError, EOFError) as err:
        raise DatasetNotFoundError(
            f"{path} is not a CIFAR-10 python batch ({err}); replace it with the original"
        ) from err
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DatasetNotFoundError(
            f"{path} holds data {data.shape} and {len(labels)} labels, expected (N, 3072) and N; "
            "replace it with the original"
        )
    return data.reshape(-1, 3, 32, 32), labels


def load(*, data_dir: str | None, n_train: int | None, n_test: int | None, seed: int) -> RawSplits:
    del n_train, n_test, seed
    if data_dir is None:
        raise DatasetNotFoundError(f"cifar10 has no default location; {HINT}")
    root = Path(data_dir)
    if (root / SUBDIR).is_dir():
        root = root / SUBDIR
    missing = [n for n in (*TRAIN_BATCHES, TEST_BATCH) if not (root / n).is_file()]
    if missing:
        raise DatasetNotFoundError(f"no {', '.join(missing)} in {root}; {HINT}")
    train = [read_batch(root / n) for n in TRAIN_BATCHES]
    x_test, y_test = read_batch(root / TEST_BATCH)
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return RawSplits(
        x_train.astype(np.float32) / 255.0,
        y_train,
        x_test.astype(np.float32) / 255.0,
        y_test,
        num_classes=10,
    )
