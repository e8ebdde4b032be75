"""python -m trainables.audit on models a test saves itself gives the numbers the project's own
metric functions give on the same weights and samples; what it cannot measure it says."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainables.attacks import run_attack
from trainables.audit import audit
from trainables.data import load_dataset
from trainables.metrics import (
    certified_accuracy,
    certified_accuracy_relaxed,
    certified_radius,
    layer_metrics,
    lipschitz,
    op_norm,
)
from trainables.models.adapter import AdaptedModel

REPO = Path(__file__).resolve().parents[2]
N_EVAL = 64
EPS = {"linf": (0.02,), "l2": (0.25,)}

FACTORIES = textwrap.dedent(
    """
    import torch
    from torch import nn
    from trainables.models import build_model

    MEAN, STD = 0.3, 0.4

    class Scale(nn.Module):  # the model's own normalization, as a user would write it
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor(MEAN))
            self.register_buffer("std", torch.tensor(STD))

        def forward(self, x):
            return (x - self.mean) / self.std

    def fcn():  # with biases everywhere, which the project's FCN lacks
        return nn.Sequential(Scale(), nn.Flatten(), nn.Linear(64, 48), nn.ReLU(),
                             nn.Linear(48, 32), nn.ReLU(), nn.Linear(32, 10))

    def cnn():  # the project's small CNN (conv, BatchNorm, max-pool, global mean)
        return build_model("cnn", input_shape=(1, 8, 8), num_classes=10,
                           mean=torch.tensor([MEAN]), std=torch.tensor([STD]), width=8)
    """
)


class FcnProtocol(nn.Module):
    """The test's own reading of the biased FCN in the model protocol, written by hand."""

    def __init__(self, seq: nn.Sequential, std: float):
        super().__init__()
        self.seq, self.std = seq, std
        self.head = seq[6]

    def forward(self, x):
        return self.seq(x)

    def encoder_layers(self):
        return [("2", self.seq[2]), ("4", self.seq[4])]

    def lipschitz_upper(self, p, op_norm_fn):
        return op_norm_fn(self.seq[2], p) * op_norm_fn(self.seq[4], p) / self.std


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int = 8) -> nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Factories module, trained weights of both models and an npz of test samples."""
    root = tmp_path_factory.mktemp("audit")
    (root / "audit_factories.py").write_text(FACTORIES)
    sys.path.insert(0, str(root))
    try:
        import audit_factories as factories
    finally:
        sys.path.remove(str(root))
    data = load_dataset("digits", n_train=400, n_test=300, seed=0)
    torch.manual_seed(0)
    models = {"fcn": factories.fcn(), "cnn": factories.cnn()}
    for model in models.values():
        _train(model, data.x_train, data.y_train)
    for name, model in models.items():
        torch.save(model.state_dict(), root / f"{name}.pt")
    np.savez(root / "test.npz", x=data.x_test.numpy(), y=data.y_test.numpy())
    return root, models, data.x_test[:N_EVAL], data.y_test[:N_EVAL]


def _cli(root: Path, name: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "trainables.audit", "--model", f"audit_factories:{name}",
         "--weights", f"{name}.pt", "--data", "test.npz", "--n-eval", str(N_EVAL),
         "--eps-linf", *map(str, EPS["linf"]), "--eps-l2", *map(str, EPS["l2"]),
         "--attack", "apgd-ce", "--steps", "10", "--seed", "3", "--threads", "1", "--json"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # stdout is exactly one JSON object


@pytest.mark.parametrize("name", ["fcn", "cnn"])
def test_cli_matches_the_projects_metrics(saved, name):
    root, models, x, y = saved
    out = _cli(root, name)
    model = models[name]
    # The project's reading of the same weights: its own protocol for the CNN, a hand-written one
    # for the biased FCN.
    ours = model if name == "cnn" else FcnProtocol(model, std=float(torch.tensor(0.4)))
    with torch.no_grad():
        logits = model(x)
    correct = logits.argmax(1) == y
    assert out["n_eval"] == N_EVAL
    assert out["environment"]["packages"]["torch"] == torch.__version__
    assert out["clean_acc"] == pytest.approx(correct.double().mean().item())
    assert out["clean_acc"] > 0.5  # trained: the comparisons below are not between zeros
    expected_layers = layer_metrics(ours)
    assert [r["layer"] for r in out["layers"]] == [r["layer"] for r in expected_layers]
    for got, want in zip(out["layers"], expected_layers):
        for column in ("spec_norm", "inf_norm", "stable_rank", "spectral_comp_k10",
                       "neuron_comp_l1_k10"):
            assert got[column] == pytest.approx(want[column], rel=1e-9), column
    for norm in ("linf", "l2"):
        lip = lipschitz(ours, norm)
        # rel 1e-6: the project's Normalize takes 1/std in float32, the graph walk in float64.
        assert out["lipschitz"][norm] == pytest.approx(lip, rel=1e-6)
        radius = certified_radius(ours, x, y, norm, logits=logits)
        row = next(r for r in out["robustness"] if r["norm"] == norm)
        eps = EPS[norm][0]
        assert row["certified_acc_global"] == pytest.approx(certified_accuracy(radius, eps))
        crown = certified_accuracy_relaxed(model, x, y, norm, eps, method="crown")
        assert row["certified_acc_crown"] == pytest.approx(crown)
        assert row["certified_acc"] == max(crown, row["certified_acc_global"])
        assert row["certified_method"] == ("crown" if crown >= row["certified_acc_global"]
                                           else "global")
        x_adv = run_attack(model, x, y, name="apgd-ce", norm=norm, eps=eps, steps=10, seed=3)
        with torch.no_grad():
            robust = ((model(x_adv).argmax(1) == y) & correct).double().mean().item()
        assert row["robust_acc"] == pytest.approx(robust)
        low, high = row["robust_acc_ci"]
        assert low <= row["robust_acc"] <= high
        assert row["certified_acc"] <= row["robust_acc"] <= out["clean_acc"]


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(2)

    def forward(self, x):
        return x + torch.relu(self.bn(self.conv(x)))


def test_residual_bound_is_the_hand_computed_one_and_holds():
    torch.manual_seed(1)
    block = _Block()
    block.bn.running_var.uniform_(0.5, 2.0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), block, nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(2 * 4 * 4, 3)).eval()
    adapted = AdaptedModel(net, (1, 8, 8), 3)
    assert [n for n, _ in adapted.encoder_layers()] == ["0", "2.conv"]
    for p, q in (("linf", math.inf), ("l2", 2)):
        hand = op_norm(net[0], p) * (1 + op_norm(block.conv, p) * op_norm(block.bn, p))
        assert lipschitz(adapted, p) == pytest.approx(hand, rel=1e-12)
        # ... and it bounds the features' actual change on random pairs.
        x = torch.rand(64, 1, 8, 8)
        d = torch.randn_like(x) * 1e-2
        with torch.no_grad():
            change = (adapted.features(x + d) - adapted.features(x)).flatten(1).norm(p=q, dim=1)
        assert bool((change <= hand * d.flatten(1).norm(p=q, dim=1) + 1e-6).all())


def test_unreadable_parts_are_skipped_with_reasons_and_still_attacked():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(8, 6), nn.LayerNorm(6), nn.Linear(6, 3))
    x, y = torch.rand(20, 8), torch.randint(0, 3, (20,))
    out = audit(net, x, y, norms=("linf",), eps_linf=(0.05,), attack="pgd", steps=5)
    assert out["lipschitz"]["linf"] is None
    assert "LayerNorm" in out["skipped"]["lipschitz_linf"]
    assert out["robustness"][0]["certified_acc_global"] is None
    assert "LayerNorm" in out["skipped"]["certified_crown_linf"]
    assert out["robustness"][0]["robust_acc"] <= out["clean_acc"]
    assert [r["layer"] for r in out["layers"]] == ["1"]
    # Output not from a Linear: no certificate, but attacked and layers still read.
    net2 = nn.Sequential(nn.Flatten(), nn.Linear(8, 3), nn.Tanh())
    out2 = audit(net2, x, y, norms=("l2",), eps_l2=(0.1,), attack="pgd", steps=5)
    assert "certificates" in out2["skipped"] and out2["robustness"][0]["certified_acc"] is None
