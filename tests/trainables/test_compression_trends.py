"""Tiny real runs on sklearn digits (FCN 64-128-10): turning each knob up raises the matching
compressibility, computed here with numpy as THEORY.md defines it."""

from __future__ import annotations

import copy
import math
from functools import cache

import numpy as np
import pytest
import torch

from tests.trainables.compression_training import sgd_with_knob
from trainables.compression import get_compression
from trainables.data import load_dataset
from trainables.models import build_model

LR = 0.05
EPOCHS = 10
BATCH = 64


def comp_k(theta: np.ndarray, kappa: float = 0.1) -> float:
    """1 - ||theta - theta_[k]||_2 / ||theta||_2 with k = ceil(kappa * d)."""
    magnitudes = np.sort(np.abs(np.ravel(theta).astype(np.float64)))[::-1]
    k = math.ceil(kappa * magnitudes.size)
    return 1.0 - np.linalg.norm(magnitudes[k:]) / np.linalg.norm(magnitudes)


def first_layer(model) -> np.ndarray:
    return model.encoder_layers()[0][1].weight.detach().double().numpy()


def entry_comp(model) -> float:
    return comp_k(first_layer(model))


def neuron_comp(model) -> float:
    return comp_k(np.linalg.norm(first_layer(model), axis=1))


def spectral_comp(model) -> float:
    return comp_k(np.linalg.svd(first_layer(model), compute_uv=False))


@cache
def digits():
    return load_dataset("digits")


def accuracy(model) -> float:
    data = digits()
    with torch.no_grad():
        return float((model(data.x_test).argmax(1) == data.y_test).float().mean())


@cache
def train(kind: str = "none", strength: float = 0.0, proximal: bool = False, rank=None):
    """SGD on digits with the knob's penalty and proximal step, as the trial applies them."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = digits()
        torch.manual_seed(0)
        model = build_model(
            "fcn", input_shape=data.input_shape, num_classes=10, mean=data.mean, std=data.std,
            width=128, depth=1, rank=rank,
        )
        compression = get_compression(kind, strength=strength, proximal=proximal)
        return sgd_with_knob(model, compression, data, lr=LR, epochs=EPOCHS, batch=BATCH)
    finally:
        torch.set_num_threads(previous)


def post_hoc(kind: str, keep_frac: float):
    model = copy.deepcopy(train())
    get_compression(kind, keep_frac=keep_frac).apply_post_hoc(model)
    return model


TRAINED_KNOBS = [
    # (label, measure, weak model args, strong model args)
    ("l1", entry_comp, ("l1", 1e-4), ("l1", 3e-3)),
    ("group_lasso_prox", neuron_comp, ("group_lasso", 0.01, True), ("group_lasso", 0.2, True)),
    ("row_sparsity", neuron_comp, ("row_sparsity", 0.01), ("row_sparsity", 1.0)),
    ("nuclear", spectral_comp, ("nuclear", 1e-3), ("nuclear", 0.03)),
]


@pytest.mark.parametrize(
    ("measure", "weak", "strong"), [k[1:] for k in TRAINED_KNOBS], ids=[k[0] for k in TRAINED_KNOBS]
)
def test_stronger_regularizer_gives_more_compressible_layer(measure, weak, strong):
    weak_model, strong_model = train(*weak), train(*strong)
    assert min(accuracy(weak_model), accuracy(strong_model)) > 0.8  # the runs really learned
    assert measure(strong_model) > measure(weak_model) + 0.05


def test_lower_explicit_rank_gives_more_spectral_compressibility():
    high, low = train(rank=32), train(rank=4)
    assert min(accuracy(high), accuracy(low)) > 0.8
    assert spectral_comp(low) > spectral_comp(high) + 0.05
    assert spectral_comp(low) == pytest.approx(1.0)  # rank 4 <= k = ceil(0.1 * 64) = 7


@pytest.mark.parametrize(
    ("kind", "measure"), [("prune_rows", neuron_comp), ("svd_truncate", spectral_comp)]
)
def test_lower_keep_frac_gives_more_compressibility(kind, measure):
    baseline = train()
    half, tenth = post_hoc(kind, 0.5), post_hoc(kind, 0.1)
    assert measure(baseline) < measure(half) < measure(tenth)
    assert measure(tenth) > measure(baseline) + 0.05
    assert accuracy(baseline) > 0.9
