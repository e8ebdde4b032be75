"""Per-process caches of decoded and prepared datasets, so a reused worker decodes files once.

A Ray actor reused across trials (reuse_actors=True) would otherwise decode and convert the same
70,000 images at the start of every trial (~0.5 s of ~0.6 s per load on Fashion-MNIST). Two small
LRUs, both bounded by entry count because each entry can be hundreds of MB:

- RAW: the decoded source splits, keyed by (name, data_dir, file identity), where the identity is
  (relative path, size, mtime_ns) of every file under the source's directory: replacing or touching
  a file is a new key. Sources that draw their samples (synthetic: SIZED_SOURCES) add the sizes and
  seed to the key, since their raw output depends on them.
- PREPARED: the final Datasets, keyed by everything load_dataset takes plus the file identity.

Callers own what they get: every hit (and the first miss) returns a Dataset whose tensors are fresh
clones of the cached ones, so an in-place write by one trial (an attack clamping its input, say)
never reaches the next. A clone is a memcpy (~20 ms for 10,000 Fashion-MNIST images), far below a
decode.
"""

from __future__ import annotations

import dataclasses
import os
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from trainables.data._types import Dataset, RawSplits

RAW_ENTRIES = 1  # a worker of a sweep sees one dataset; 220 MB as float32 for Fashion-MNIST
PREPARED_ENTRIES = 3  # e.g. the 3 seeds of a sweep's subsamples
# Depth of the directory walk behind a file identity (cifar10 nests one level: SUBDIR).
_WALK_DEPTH = 2


class _LRU:
    def __init__(self, size: int):
        self.size = size
        self.entries: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        if key in self.entries:
            self.entries.move_to_end(key)
            return self.entries[key]
        value = make()  # raises: nothing is stored
        self.entries[key] = value
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return value


_RAW = _LRU(RAW_ENTRIES)
_PREPARED = _LRU(PREPARED_ENTRIES)


def file_identity(directory: str | Path | None) -> tuple[tuple[str, int, int], ...] | None:
    """(relative path, size, mtime_ns) of every file under `directory` (sorted, depth <= 2);
    None without a directory or when it does not exist (the source then raises its own error)."""
    if directory is None:
        return None
    root = Path(directory)
    if not root.is_dir():
        return None
    found = []
    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir() and depth + 1 < _WALK_DEPTH:
                    stack.append((Path(entry.path), depth + 1))
                elif entry.is_file():
                    st = entry.stat()
                    found.append((str(Path(entry.path).relative_to(root)), st.st_size,
                                  st.st_mtime_ns))
            except OSError:
                continue
    return tuple(sorted(found))


def cached_raw(key: Hashable, load: Callable[[], RawSplits]) -> RawSplits:
    """The decoded splits for `key`, from `load()` on a miss. Not copied: prepare() only reads
    them, and every Dataset leaving this module is cloned (see cached_dataset)."""
    return _RAW.get(key, load)


def cached_dataset(key: Hashable, make: Callable[[], Dataset]) -> Dataset:
    """The prepared Dataset for `key` (from `make()` on a miss), as tensors the caller owns."""
    return _clone(_PREPARED.get(key, make))


def clear() -> None:
    """Forget every cached dataset (tests; a process that wants the memory back)."""
    _RAW.entries.clear()
    _PREPARED.entries.clear()


def _clone(data: Dataset) -> Dataset:
    tensors = {f.name: getattr(data, f.name).clone() for f in dataclasses.fields(data)
               if f.name in ("x_train", "y_train", "x_test", "y_test", "mean", "std")}
    return dataclasses.replace(data, **tensors)
