"""Dataset name -> source loader. Adding a dataset: one module with `load`, one line here."""

from __future__ import annotations

from typing import Protocol

from trainables.data import cifar10, digits, fashion_mnist, gaussian, mnist, teacher
from trainables.data._prepare import prepare
from trainables.data._types import Dataset, RawSplits
from trainables.errors import ConfigError


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
    class filter. Raises DatasetNotFoundError with how to get missing files."""
    if name not in DATASET_SOURCES:
        raise ConfigError(f"dataset must be one of {list(DATASET_SOURCES)}, but got {name!r}")
    for what, n in (("n_train", n_train), ("n_test", n_test)):
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise ConfigError(f"{what} must be an integer >= 1, but got {n!r}")
    raw = DATASET_SOURCES[name](data_dir=data_dir, n_train=n_train, n_test=n_test, seed=seed)
    return prepare(name, raw, n_train=n_train, n_test=n_test, classes=classes, seed=seed)
