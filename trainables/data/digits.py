"""scikit-learn's 8x8 digits (shipped with the package): pixels / 16, a fixed stratified split."""

from __future__ import annotations

import numpy as np

from trainables.data._types import RawSplits

TEST_FRACTION = 0.2


def load(*, data_dir: str | None, n_train: int | None, n_test: int | None, seed: int) -> RawSplits:
    del data_dir, n_train, n_test, seed  # the split is fixed; subsampling happens afterwards
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=0, stratify=y
    )
    return RawSplits(x_train, y_train, x_test, y_test, num_classes=10)
