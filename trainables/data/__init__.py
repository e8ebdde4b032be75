"""Datasets in pixel space [0, 1]: synthetic tasks, sklearn digits, MNIST-style idx, CIFAR-10.

`load_dataset(name, ...)` returns a `Dataset`; DATASET_SOURCES maps names to source loaders.
"""

from trainables.data._registry import DATASET_SOURCES, load_dataset
from trainables.data._types import Dataset

__all__ = ["DATASET_SOURCES", "Dataset", "load_dataset"]
