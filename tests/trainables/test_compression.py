"""trainables.compression: penalties, proximal steps and post-hoc edits against numpy."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from trainables.compression import COMPRESSION_KINDS, get_compression, scale_encoder
from trainables.config import COMPRESSIONS
from trainables.errors import ConfigError
from trainables.models import build_model
from trainables.schema import kept_count


def make(name: str, rank: int | None = None, seed: int = 0):
    torch.manual_seed(seed)
    shape = (1, 8, 8) if name != "resnet18" else (3, 8, 8)
    c = shape[0]
    return build_model(
        name, input_shape=shape, num_classes=4, mean=torch.full((c, 1, 1), 0.4),
        std=torch.full((c, 1, 1), 0.3), width=24, depth=2, rank=rank,
    )


MODEL_CASES = [("fcn", None), ("fcn", 3), ("cnn", None), ("cnn", 2)]
MODEL_IDS = [f"{n}-r{r}" for n, r in MODEL_CASES]


def matrices(model) -> list[np.ndarray]:
    """Encoder weights as numpy matrices (conv filters flattened), head excluded."""
    out = []
    for _, layer in model.encoder_layers():
        w = layer.weight.detach().double().numpy()
        out.append(w.reshape(w.shape[0], -1))
    return out


def numpy_penalty(kind: str, mats: list[np.ndarray]) -> float:
    if kind == "l1":
        return sum(np.abs(m).sum() for m in mats)
    if kind == "group_lasso":
        return sum(np.linalg.norm(m, axis=1).sum() for m in mats)
    if kind == "row_sparsity":
        total = 0.0
        for m in mats:
            r = np.linalg.norm(m, axis=1)
            total += r.sum() / np.linalg.norm(r)
        return total
    if kind == "nuclear":
        return sum(np.linalg.svd(m, compute_uv=False).sum() for m in mats)
    if kind == "spectral_ratio":
        total = 0.0
        for m in mats:
            sigma = np.linalg.svd(m, compute_uv=False)
            total += sigma.sum() / np.linalg.norm(sigma)
        return total
    return 0.0


def test_registry_covers_every_configured_kind():
    assert sorted(COMPRESSION_KINDS) == sorted(COMPRESSIONS)


@pytest.mark.parametrize(("name", "rank"), MODEL_CASES, ids=MODEL_IDS)
@pytest.mark.parametrize(
    "kind", ["none", "rank", "l1", "group_lasso", "row_sparsity", "nuclear", "spectral_ratio"]
)
def test_penalty_matches_numpy_and_is_differentiable(name, rank, kind):
    model = make(name, rank)
    strength = 0.3
    value = get_compression(kind, strength=strength).penalty(model)
    expected = strength * numpy_penalty(kind, matrices(model))
    assert value.ndim == 0
    assert float(value.detach()) == pytest.approx(expected, rel=1e-5, abs=1e-8)
    if kind not in ("none", "rank"):
        value.backward()
        grads = [layer.weight if not hasattr(layer, "u") else layer.u
                 for _, layer in model.encoder_layers()]
        assert all(g.grad is not None and torch.isfinite(g.grad).all() for g in grads)
        assert model.head.weight.grad is None  # the head is never penalized


def test_row_sparsity_is_scale_invariant_and_group_lasso_is_not():
    model = make("fcn")

    def value(kind: str) -> float:
        return float(get_compression(kind, strength=1.0).penalty(model).detach())

    before = {k: value(k) for k in ("row_sparsity", "group_lasso")}
    scale_encoder(model, 3.0)
    assert value("row_sparsity") == pytest.approx(before["row_sparsity"], rel=1e-5)
    assert value("group_lasso") == pytest.approx(3 * before["group_lasso"], rel=1e-5)


@pytest.mark.parametrize("name", ["fcn", "cnn"])
def test_proximal_group_step_is_the_closed_form_with_exact_zero_rows(name):
    model = make(name)
    layers = [layer for _, layer in model.encoder_layers()]
    with torch.no_grad():  # make some rows small, so the step must zero them
        for layer in layers:
            layer.weight[::3] *= 1e-3
    before = [m.copy() for m in matrices(model)]
    lr, strength = 0.1, 0.5
    compression = get_compression("group_lasso", strength=strength, proximal=True)
    assert float(compression.penalty(model)) == 0.0  # the prox replaces the gradient term
    compression.after_step(model, lr)
    t = lr * strength
    for w, after in zip(before, matrices(model)):
        norms = np.linalg.norm(w, axis=1, keepdims=True)
        expected = np.where(norms > t, w * (1 - t / np.maximum(norms, 1e-300)), 0.0)
        np.testing.assert_allclose(after, expected, rtol=1e-5, atol=1e-7)
        small = norms[:, 0] <= t
        assert small.any() and (after[small] == 0).all()
        assert (np.abs(after[~small]).sum(axis=1) > 0).all()


def test_proximal_l1_step_is_soft_thresholding():
    model = make("fcn")
    before = matrices(model)
    head = model.head.weight.detach().clone()
    get_compression("l1", strength=2.0, proximal=True).after_step(model, 0.05)
    for w, after in zip(before, matrices(model)):
        expected = np.sign(w) * np.maximum(np.abs(w) - 0.1, 0.0)
        np.testing.assert_allclose(after, expected, rtol=1e-5, atol=1e-7)
        assert (after == 0).mean() > 0.1
    assert torch.equal(model.head.weight, head)


def test_low_rank_proximal_group_step_zeroes_effective_rows():
    """For a low-rank layer the groups are rows of u: a row of u at or under the threshold
    becomes an exactly zero neuron of u @ v."""
    model = make("fcn", rank=3)
    u_norms = [layer.u.detach().norm(dim=1).numpy() for _, layer in model.encoder_layers()]
    # threshold lr * strength between the layers' smallest and largest row norms
    lr, t = 0.1, float(np.median(np.concatenate(u_norms)))
    get_compression("group_lasso", strength=t / lr, proximal=True).after_step(model, lr)
    for norms, m in zip(u_norms, matrices(model)):
        zero = (m == 0).all(axis=1)
        assert zero.any() and (~zero).any()
        assert np.array_equal(zero, norms <= t)


@pytest.mark.parametrize(("name", "rank"), MODEL_CASES, ids=MODEL_IDS)
@pytest.mark.parametrize("keep_frac", [0.1, 0.5])
def test_prune_rows_keeps_exactly_the_largest_rows(name, rank, keep_frac):
    model = make(name, rank)
    before = matrices(model)
    get_compression("prune_rows", keep_frac=keep_frac).apply_post_hoc(model)
    for w, after in zip(before, matrices(model)):
        norms = np.linalg.norm(w, axis=1)
        k = kept_count(keep_frac, len(norms))
        largest = set(np.argsort(-norms)[:k].tolist())
        nonzero = set(np.flatnonzero(np.abs(after).sum(axis=1) > 0).tolist())
        assert nonzero == largest
        kept = sorted(largest)
        np.testing.assert_allclose(after[kept], w[kept], rtol=1e-5, atol=1e-7)
        assert (after[sorted(set(range(len(norms))) - largest)] == 0).all()


@pytest.mark.parametrize(("name", "rank"), [*MODEL_CASES, ("resnet18", None)],
                         ids=[*MODEL_IDS, "resnet18"])
@pytest.mark.parametrize("keep_frac", [0.1, 0.5])
def test_svd_truncate_is_the_best_rank_k_approximation(name, rank, keep_frac):
    model = make(name, rank)
    before = matrices(model)
    get_compression("svd_truncate", keep_frac=keep_frac).apply_post_hoc(model)
    for w, after in zip(before, matrices(model)):
        sigma = np.linalg.svd(w, compute_uv=False)
        k = min(kept_count(keep_frac, min(w.shape)), int((sigma > 1e-6 * sigma[0]).sum()))
        after_sigma = np.linalg.svd(after, compute_uv=False)
        assert int((after_sigma > 1e-5 * after_sigma[0]).sum()) == k  # numerical rank k
        # Eckart-Young: the error is exactly the energy of the dropped singular values
        error = np.linalg.norm(w - after)
        assert error == pytest.approx(np.sqrt((sigma[k:] ** 2).sum()), rel=1e-4, abs=1e-5)
        np.testing.assert_allclose(after_sigma[:k], sigma[:k], rtol=1e-4)


@pytest.mark.parametrize(
    "kind", ["none", "rank", "l1", "group_lasso", "row_sparsity", "nuclear", "spectral_ratio"]
)
def test_training_time_kinds_leave_post_hoc_and_step_alone(kind):
    model = make("fcn")
    state = copy.deepcopy(model.state_dict())
    compression = get_compression(kind, strength=1.0)
    compression.apply_post_hoc(model)
    compression.after_step(model, 0.1)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


@pytest.mark.parametrize(("name", "rank"), [*MODEL_CASES, ("resnet18", 2)],
                         ids=[*MODEL_IDS, "resnet18-r2"])
def test_scale_encoder_scales_every_encoder_weight_and_not_the_head(name, rank):
    model = make(name, rank)
    before = matrices(model)
    head = model.head.weight.detach().clone()
    scale_encoder(model, 2.5)
    for w, after in zip(before, matrices(model)):
        np.testing.assert_allclose(after, 2.5 * w, rtol=1e-5, atol=1e-6)
    assert torch.equal(model.head.weight, head)
    with pytest.raises(ConfigError, match="factor"):
        scale_encoder(model, 0.0)


@pytest.mark.parametrize(
    ("kind", "kwargs", "message"),
    [
        ("zip", {}, "compression must be one of"),
        ("l1", {"strength": -1.0}, "strength must be"),
        ("prune_rows", {"keep_frac": 0.0}, "keep_frac must be in"),
        ("svd_truncate", {"keep_frac": 1.5}, "keep_frac must be in"),
        ("nuclear", {"proximal": True}, "proximal=True"),
    ],
)
def test_bad_arguments_raise_config_error(kind, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        get_compression(kind, **kwargs)
