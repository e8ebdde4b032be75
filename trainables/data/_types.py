"""The two records a dataset passes through: raw numpy splits from a source, the final Dataset."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class RawSplits:
    """What a source module returns: pixel-space float32 x in [0, 1] and int64 labels 0..K-1.

    `presized` is True for synthetic sources, which already drew n_train / n_test samples, so the
    common preparation step must not subsample them again.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    presized: bool = False


@dataclass(frozen=True, eq=False)
class Dataset:
    """A ready dataset: tensors in pixel space [0, 1] and the training split's statistics.

    x_* are float32, (N, C, H, W) for images or (N, D) for vector data; y_* are int64.
    mean / std are shaped as the model protocol's Normalize buffers: (C, 1, 1) or (1,).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    input_shape: tuple[int, ...]
    mean: torch.Tensor
    std: torch.Tensor
