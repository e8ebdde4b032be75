"""The idx format of MNIST-style datasets, parsed with numpy; plain or gzipped files."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from trainables.data._types import RawSplits
from trainables.errors import DatasetNotFoundError

# Type code (third magic byte) -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
SPLIT_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: str | Path) -> np.ndarray:
    """Parse one idx file: magic 0x00 0x00 <type> <ndim>, ndim big-endian uint32 dims, data."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == _GZIP_MAGIC:
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        raise DatasetNotFoundError(
            f"{path} cannot be read ({type(err).__name__}: {err}); replace it with the original"
        ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DatasetNotFoundError(
            f"{path} is not an idx file (magic bytes {raw[:4].hex()}); replace it with the original"
        )
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetNotFoundError(
            f"{path} has a truncated idx header ({len(raw)} bytes, {header} needed for {ndim} "
            "dims); replace it with the original"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(dims) != ndim or len(raw) != expected:
        raise DatasetNotFoundError(
            f"{path} is truncated or corrupt (dims {dims}: {expected} bytes expected, "
            f"{len(raw)} found); replace it with the original"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def find_split_file(data_dir: Path, stem: str, hint: str) -> Path:
    for candidate in (data_dir / f"{stem}.gz", data_dir / stem):
        if candidate.is_file():
            return candidate
    raise DatasetNotFoundError(f"no {stem}[.gz] in {data_dir}; {hint}")


def load_idx_dir(data_dir: str | Path, hint: str, num_classes: int = 10) -> RawSplits:
    """Read the four standard MNIST-style files from data_dir: images (N, 1, H, W) / 255."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DatasetNotFoundError(f"dataset directory {data_dir} does not exist; {hint}")
    arrays = {
        key: read_idx(find_split_file(data_dir, stem, hint)) for key, stem in SPLIT_FILES.items()
    }
    splits = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if (
            images.ndim != 3
            or labels.ndim != 1
            or len(images) != len(labels)
            or not np.all((labels >= 0) & (labels < num_classes))
        ):
            raise DatasetNotFoundError(
                f"{split} idx files in {data_dir} are inconsistent (images {images.shape}, labels "
                f"{labels.shape}, labels must be in 0..{num_classes - 1}); replace them with the "
                "originals"
            )
        splits.append((images[:, None].astype(np.float32) / 255.0, labels.astype(np.int64)))
    (x_train, y_train), (x_test, y_test) = splits
    return RawSplits(x_train, y_train, x_test, y_test, num_classes=num_classes)
