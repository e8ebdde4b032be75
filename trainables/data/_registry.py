"""Dataset name -> source loader. Adding a dataset: one module with `load`, one line here,
its name in trainables/variants.py."""

from __future__ import annotations

from typing import Protocol

from trainables.data import cifar10, digits, fashion_mnist, gaussian, mnist, teacher
from trainables.data._cache import cached_dataset, cached_raw, file_identity
from trainables.data._prepare import prepare
from trainables.data._types import Dataset, RawSplits
from trainables.errors import ConfigError
from trainables.variants import check_registry


class SourceLoader(Protocol):
    def __call__(
        self, *, data_dir: str | None, n_train: int | None, n_test: int | None, seed: int
    ) -> RawSplits: ...


DATASET_SOURCES: dict[str, SourceLoader] = {
    "gaussian": gaussian.load,
    "teacher": teacher.load,
    "digits": digits.load,
    "fashion_mnist": fashion_mnist.load,
    "mnist": mnist.load,
    "cifar10": cifar10.load,
}
check_registry("DATASETS", DATASET_SOURCES)  # the torch-free names the driver validates by
# Sources whose raw splits depend on n_train / n_test / seed (they draw samples): part of their key.
SIZED_SOURCES = frozenset({"gaussian", "teacher"})
# Where a source reads its files when no data_dir is given (the others require data_dir or read
# nothing from disk).
DEFAULT_DIRS = {"fashion_mnist": fashion_mnist.DEFAULT_DIR}


def load_dataset(
    name: str,
    *,
    data_dir: str | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    classes: tuple[int, ...] | None = None,
    seed: int = 0,
) -> Dataset:
    """Load `name` in pixel space [0, 1], keep `classes` (relabelled 0..k-1 in the given order),
    subsample n_train / n_test with a seeded permutation, and attach the training split's
    mean / std. Synthetic sources draw n_train / n_test samples (default 4000 / 1000) before the
    class filter. Raises DatasetNotFoundError with how to get missing files.

    Cached per process (trainables/data/_cache.py), keyed by all of the above and the identity
    (path, size, mtime) of the source's files; the returned tensors are the caller's own."""
    if name not in DATASET_SOURCES:
        raise ConfigError(f"dataset must be one of {list(DATASET_SOURCES)}, but got {name!r}")
    for what, n in (("n_train", n_train), ("n_test", n_test)):
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise ConfigError(f"{what} must be an integer >= 1, but got {n!r}")
    files = file_identity(data_dir or DEFAULT_DIRS.get(name))
    sizes = (n_train, n_test, seed) if name in SIZED_SOURCES else None
    source = DATASET_SOURCES[name]

    def make() -> Dataset:
        raw = cached_raw(
            (name, data_dir, files, sizes),
            lambda: source(data_dir=data_dir, n_train=n_train, n_test=n_test, seed=seed),
        )
        return prepare(name, raw, n_train=n_train, n_test=n_test, classes=classes, seed=seed)

    key = (name, data_dir, files, n_train, n_test, None if classes is None else tuple(classes), seed)
    return cached_dataset(key, make)
