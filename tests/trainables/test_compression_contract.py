"""The contract every registered compression knob keeps, checked on tiny real runs (digits FCN).

Parametrized over trainables.compression.COMPRESSION_KINDS: a new knob (one module plus one
registry line) is covered here without editing this file. Each knob states its own facts as class
attributes: `weak` / `strong` TrialConfig options, the layer compressibility it `raises`, and
whether it is `post_hoc`.
"""

from __future__ import annotations

import copy
from functools import cache

import pytest
import torch

from tests.trainables.compression_training import sgd_with_knob
from trainables import schema
from trainables.compression import COMPRESSION_KINDS, get_compression
from trainables.config import TrialConfig
from trainables.data import load_dataset
from trainables.metrics import layer_metrics
from trainables.models import build_model

LR = 0.05
EPOCHS = 6
BATCH = 64
WIDTH = 64
# How much the strong setting must beat the weak one: small next to the 0..1 range of comp_k,
# large next to the run-to-run noise of a fixed-seed run (which is zero on CPU).
MARGIN = 0.03

KINDS = sorted(COMPRESSION_KINDS)
KNOBS = [k for k in KINDS if COMPRESSION_KINDS[k].raises]
POST_HOC = [k for k in KINDS if COMPRESSION_KINDS[k].post_hoc]


@cache
def digits():
    return load_dataset("digits")


def options(kind: str, setting: dict) -> TrialConfig:
    """The knob's setting as the trial would see it (validated by TrialConfig)."""
    return TrialConfig(dataset="digits", width=WIDTH, compression=kind, **setting)


@cache
def train(kind: str, setting_items: tuple = ()) -> torch.nn.Module:
    """SGD on digits applying the knob exactly as the trial does: penalty, then the proximal step
    after each optimizer step; post-hoc edits on a copy afterwards."""
    cfg = options(kind, dict(setting_items))
    data = digits()
    torch.manual_seed(0)
    model = build_model(
        "fcn", input_shape=data.input_shape, num_classes=10, mean=data.mean, std=data.std,
        width=cfg.width, depth=1, rank=cfg.rank,
    )
    knob = get_compression(kind, strength=cfg.strength, proximal=cfg.proximal,
                           keep_frac=cfg.keep_frac)
    sgd_with_knob(model, knob, data, lr=LR, epochs=EPOCHS, batch=BATCH)
    if knob.post_hoc:
        model = copy.deepcopy(model)
        with torch.no_grad():
            knob.apply_post_hoc(model)
    return model


def layer_comp(model, prefix: str) -> float:
    column = f"{prefix}_{schema.kappa_tag(schema.HEADLINE_KAPPA)}"
    rows = layer_metrics(model)
    return sum(r[column] for r in rows) / len(rows)


def accuracy(model) -> float:
    data = digits()
    with torch.no_grad():
        return float((model(data.x_test).argmax(1) == data.y_test).float().mean())


def test_every_knob_states_a_strength_except_none():
    assert KNOBS == [k for k in KINDS if k != "none"]
    for kind in KNOBS:
        cls = COMPRESSION_KINDS[kind]
        assert cls.kind == kind
        assert any(c.startswith(cls.raises + "_") for c in schema.LAYERS_COLUMNS)
        assert set(cls.weak) == set(cls.strong) and cls.weak != cls.strong
        options(kind, cls.weak), options(kind, cls.strong)  # both valid TrialConfigs


@pytest.mark.parametrize("kind", KNOBS)
def test_raising_strength_raises_the_knobs_compressibility(kind):
    cls = COMPRESSION_KINDS[kind]
    weak = train(kind, tuple(cls.weak.items()))
    strong = train(kind, tuple(cls.strong.items()))
    assert accuracy(weak) > 0.8  # the run really learned
    assert layer_comp(strong, cls.raises) > layer_comp(weak, cls.raises) + MARGIN


@pytest.mark.parametrize("kind", POST_HOC)
def test_post_hoc_knobs_leave_training_unchanged(kind):
    """Training with a post-hoc knob is training without compression: penalty 0, no step edits."""
    cls = COMPRESSION_KINDS[kind]
    data = digits()
    torch.manual_seed(0)
    model = build_model("fcn", input_shape=data.input_shape, num_classes=10, mean=data.mean,
                        std=data.std, width=WIDTH, depth=1)
    before = copy.deepcopy(model.state_dict())
    knob = get_compression(kind, **cls.strong)
    assert float(knob.penalty(model)) == 0.0
    knob.after_step(model, LR)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # ... while the post-hoc edit itself does change a copy.
    edited = copy.deepcopy(model)
    with torch.no_grad():
        knob.apply_post_hoc(edited)
    assert not all(torch.equal(after[k], edited.state_dict()[k]) for k in after)


@pytest.mark.parametrize("kind", [k for k in KINDS if not COMPRESSION_KINDS[k].post_hoc])
def test_training_time_knobs_have_no_post_hoc_edit(kind):
    """The trial evaluates the trained model itself unless the knob is post-hoc."""
    cls = COMPRESSION_KINDS[kind]
    model = train("none")
    edited = copy.deepcopy(model)
    knob = get_compression(kind, **{k: v for k, v in cls.strong.items() if k != "rank"})
    with torch.no_grad():
        knob.apply_post_hoc(edited)
    assert all(torch.equal(v, edited.state_dict()[k]) for k, v in model.state_dict().items())
