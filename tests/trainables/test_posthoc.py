"""Post-hoc compression of a user's model: every method keeps the asked fraction of each encoder
layer's weights, in its own structure, and projected fine-tuning keeps it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from trainables.posthoc import PosthocTrial, compress


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 12),
                         nn.ReLU(), nn.Linear(12, 3))


def _encoder(net):
    return [net[1], net[3]]


@pytest.mark.parametrize("keep", [0.1, 0.3, 0.6])
def test_each_method_keeps_the_asked_fraction_in_its_structure(keep):
    for kind in ("magnitude_layer", "prune_rows", "svd_truncate"):
        net = _net()
        before = [layer.weight.detach().clone() for layer in _encoder(net)]
        head = net[5].weight.detach().clone()
        compress(net, kind, keep, (20,), 3)
        assert torch.equal(net[5].weight, head)  # the head is never compressed
        for layer, old in zip(_encoder(net), before):
            w = layer.weight.detach()
            m, n = w.shape
            if kind == "magnitude_layer":
                assert int((w != 0).sum()) == math.ceil(keep * m * n - 1e-9)
                kept = w != 0  # the kept ones are the largest, unchanged
                assert old.abs()[kept].min() >= old.abs()[~kept].max()
            elif kind == "prune_rows":
                zero_rows = (w == 0).all(dim=1)
                assert int((~zero_rows).sum()) == math.ceil(keep * m - 1e-9)
                assert bool((layer.bias.detach()[zero_rows] == 0).all())  # biases pruned too
            else:
                k = max(1, math.floor(keep * m * n / (m + n)))
                # float32 storage: rank up to float32 rounding
                assert int(torch.linalg.matrix_rank(w.double(), rtol=1e-5)) == min(k, m, n)
                assert k * (m + n) <= max(keep * m * n, m + n)


def test_global_magnitude_uses_one_threshold():
    net = _net()
    with torch.no_grad():
        net[3].weight.mul_(10)  # the second layer's weights are all larger
    old = torch.cat([net[1].weight.detach().flatten(), net[3].weight.detach().flatten()])
    compress(net, "magnitude_global", 0.3, (20,), 3)
    new = torch.cat([net[1].weight.detach().flatten(), net[3].weight.detach().flatten()])
    kept = new != 0
    assert int(kept.sum()) == math.ceil(0.3 * old.numel())
    assert old.abs()[kept].min() >= old.abs()[~kept].max()  # one threshold over both layers
    assert (net[3].weight != 0).float().mean() > (net[1].weight != 0).float().mean()


def test_finetuning_keeps_the_compression(tmp_path):
    (tmp_path / "f.py").write_text(
        "from torch import nn\nimport torch\n"
        "def build():\n    torch.manual_seed(0)\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 3))\n"
    )
    rng = np.random.default_rng(0)
    x = rng.random((64, 20)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64) + (x[:, 1] > 0.5)
    np.savez(tmp_path / "d.npz", x=x[:32], y=y[:32], x_train=x, y_train=y)
    trial = PosthocTrial({
        "model_factory": f"{tmp_path}/f.py:build", "data_path": f"{tmp_path}/d.npz",
        "compression": "magnitude_layer", "keep_frac": 0.2, "finetune_epochs": 2,
        "n_eval": 16, "attack": "pgd", "attack_steps": 3, "eps_linf": (0.05,), "lr": 0.05,
    })
    (result,) = list(trial.epochs())
    assert math.isfinite(result["train_loss"])
    (layer,) = result["layers"]
    assert result["robustness"][0]["robust_acc"] <= result["clean_acc"]
    assert list(trial.epochs()) == []  # one result, then done
    # The evaluated layer holds 20% nonzeros: its neuron-compressibility columns saw the pruning.
    model = trial.model
    assert int((model[1].weight != 0).sum()) == model[1].weight.numel()  # original untouched
    assert layer["fro_norm"] > 0
