"""Jacobian and gradient estimates against per-sample autograd; perturbation alignment against
numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.trainables.metrics_models import FCN, TinyConvNet
from trainables.metrics import (
    alignment_estimate_gap,
    certified_radius,
    data_alignment,
    first_order_gap,
    input_gradient_norms,
    jacobian_op_norms,
    perturbation_alignment,
    sensitivity_estimates,
)


def _models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    std_img = torch.tensor([0.3, 0.6]).reshape(2, 1, 1)
    return {
        "fcn": FCN((2, 3, 3), [12, 8], 4, torch.full((2, 1, 1), 0.5), std_img),
        "fcn_low_rank": FCN((10,), [12], 3, torch.zeros(1), torch.full((1,), 0.7), rank=2),
        "conv": TinyConvNet((2, 5, 5), 4, torch.zeros(2, 1, 1), std_img),
        "conv_low_rank": TinyConvNet((2, 5, 5), 3, torch.zeros(2, 1, 1), std_img, rank=2),
    }


MODELS = _models()


def _reference_jacobians(model: nn.Module, x: torch.Tensor) -> list[np.ndarray]:
    model.eval()
    out = []
    for sample in x:
        jac = torch.autograd.functional.jacobian(lambda z: model(z[None])[0], sample)
        out.append(jac.reshape(jac.shape[0], -1).double().numpy())
    return out


@pytest.mark.parametrize("name", sorted(MODELS))
def test_jacobian_norms_match_per_sample_autograd(name: str) -> None:
    model = MODELS[name]
    model.train()  # the metric must evaluate in eval mode and leave the flag as it found it
    x = torch.rand(7, *model.input_shape, generator=torch.Generator().manual_seed(1))
    linf = jacobian_op_norms(model, x, "linf").numpy()
    l2 = jacobian_op_norms(model, x, "l2").numpy()
    assert model.training and all(m.training for m in model.modules())
    reference = _reference_jacobians(model, x)
    np.testing.assert_allclose(linf, [np.linalg.norm(j, np.inf) for j in reference], rtol=1e-5)
    np.testing.assert_allclose(l2, [np.linalg.norm(j, 2) for j in reference], rtol=1e-5)
    gap = alignment_estimate_gap(model, x, "l2", 0.1)
    assert gap == pytest.approx(math.sqrt(2) * 0.1 * np.mean(l2), rel=1e-6)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_input_gradient_norms_match_per_sample_autograd(name: str) -> None:
    model = MODELS[name].eval()
    g = torch.Generator().manual_seed(2)
    x = torch.rand(6, *model.input_shape, generator=g)
    y = torch.randint(0, model.num_classes, (6,), generator=g)
    expected = {"linf": [], "l2": []}
    for sample, label in zip(x, y, strict=True):
        sample = sample[None].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(sample), label[None]), sample)
        expected["linf"].append(float(grad.abs().sum()))  # q = 1
        expected["l2"].append(float(grad.norm()))
    for p in ("linf", "l2"):
        got = input_gradient_norms(model, x, y, p).numpy()
        np.testing.assert_allclose(got, expected[p], rtol=1e-5)
        assert first_order_gap(model, x, y, p, 0.05) == pytest.approx(0.05 * np.mean(expected[p]))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_sensitivity_estimates_agree_with_the_single_purpose_functions(name: str) -> None:
    model = MODELS[name].eval()
    g = torch.Generator().manual_seed(6)
    x = torch.rand(9, *model.input_shape, generator=g)
    y = torch.randint(0, model.num_classes, (9,), generator=g)
    estimates = sensitivity_estimates(model, x, y)
    with torch.no_grad():
        torch.testing.assert_close(estimates.logits, model(x).double(), rtol=1e-5, atol=1e-6)
    for p in ("linf", "l2"):
        torch.testing.assert_close(estimates.jacobian[p], jacobian_op_norms(model, x, p))
        torch.testing.assert_close(
            estimates.gradient[p], input_gradient_norms(model, x, y, p), rtol=1e-5, atol=1e-7
        )
        assert estimates.alignment_gap(p, 0.03) == pytest.approx(
            alignment_estimate_gap(model, x, p, 0.03)
        )
        assert estimates.first_order_gap(p, 0.03) == pytest.approx(
            first_order_gap(model, x, y, p, 0.03), rel=1e-5
        )
        torch.testing.assert_close(
            certified_radius(model, x, y, p, logits=estimates.logits),
            certified_radius(model, x, y, p),
            rtol=1e-5,
            atol=1e-9,
        )


def _alignment_model(weight: torch.Tensor, std: torch.Tensor) -> FCN:
    model = FCN((2, 2, 3), [weight.shape[0]], 3, torch.zeros(2, 1, 1), std)
    with torch.no_grad():
        model.encoder[0].weight.copy_(weight)
    return model


def _numpy_alignment(w: np.ndarray, d: np.ndarray, p: str) -> tuple[float, float]:
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    if p == "l2":
        _, s, vt = np.linalg.svd(w, full_matrices=False)
        directions = vt[s > 1e-10 * s[0]]
    else:
        l1 = np.abs(w).sum(axis=1)
        order = np.argsort(-l1, kind="stable")
        rows = w[order][l1[order] > 0]
        directions = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    cos = np.abs(d @ directions.T)
    return float(cos[:, 0].mean()), float(cos[:, 1:].mean())


@pytest.mark.parametrize("p", ["linf", "l2"])
@pytest.mark.parametrize("structure", ["gaussian", "rank3_zero_rows"])
def test_alignment_matches_numpy(p: str, structure: str) -> None:
    g = torch.Generator().manual_seed(3)
    weight = torch.randn(8, 12, generator=g)
    if structure == "rank3_zero_rows":
        weight = torch.randn(8, 3, generator=g) @ torch.randn(3, 12, generator=g)
        weight[[1, 5]] = 0.0
    std = torch.tensor([0.25, 0.5]).reshape(2, 1, 1)
    model = _alignment_model(weight, std)
    delta = torch.randn(16, 2, 2, 3, generator=g)
    delta[3] = 0.0  # skipped, not NaN
    top, rest = perturbation_alignment(model, delta, p)
    scaled = (delta / std).reshape(16, -1).double().numpy()
    expected = _numpy_alignment(weight.double().numpy(), np.delete(scaled, 3, axis=0), p)
    assert (top, rest) == pytest.approx(expected, rel=1e-6)


def test_alignment_of_the_attaining_directions() -> None:
    g = torch.Generator().manual_seed(4)
    weight = torch.randn(6, 12, generator=g)
    std = torch.tensor([0.25, 0.5]).reshape(2, 1, 1)
    model = _alignment_model(weight, std)
    # L2: delta = std * v_1 makes the layer see exactly v_1.
    v1 = torch.linalg.svd(weight.double()).Vh[0].float().reshape(2, 2, 3)
    top, rest = perturbation_alignment(model, v1 * std, "l2")  # one unbatched perturbation
    assert top == pytest.approx(1.0, abs=1e-5)
    assert rest == pytest.approx(0.0, abs=1e-5)
    # L-inf: the layer sees sign(w_i*): cosine ||w_i*||_1 / (||w_i*||_2 sqrt(n)).
    row = weight[weight.abs().sum(dim=1).argmax()]
    top, _ = perturbation_alignment(model, (row.sign().reshape(2, 2, 3) * std)[None], "linf")
    assert top == pytest.approx(float(row.abs().sum() / (row.norm() * math.sqrt(12))), rel=1e-5)


def test_alignment_is_nan_for_a_conv_first_layer() -> None:
    model = MODELS["conv"]
    top, rest = perturbation_alignment(model, torch.randn(3, *model.input_shape), "l2")
    assert math.isnan(top) and math.isnan(rest)


def test_data_alignment_matches_numpy_and_is_scale_free() -> None:
    g = torch.Generator().manual_seed(5)
    weight = torch.randn(8, 3, generator=g) @ torch.randn(3, 12, generator=g)  # rank 3
    std = torch.tensor([0.25, 0.5]).reshape(2, 1, 1)
    model = _alignment_model(weight, std)
    x = torch.randn(40, 2, 2, 3, generator=g)
    got = data_alignment(model, x)
    z = ((x - model.normalize.mean) / std).reshape(40, -1).double().numpy()
    z = z - z.mean(axis=0)
    w = weight.double().numpy()
    gain = np.linalg.norm(z @ w.T) / np.linalg.norm(z)
    _, s, vt = np.linalg.svd(w)
    expected = {
        "data_align": float(np.sum((z @ vt[0]) ** 2) / np.sum(z**2)),
        "data_gain_l2": float(s[0] / gain),
        "data_gain_linf": float(np.abs(w).sum(axis=1).max() / (np.sqrt(12) * gain)),
    }
    assert got == pytest.approx(expected, rel=1e-6)
    # Data lying along v_1 only: all of its variance is there and the gain ratio is 1.
    v1 = torch.from_numpy(vt[0]).float().reshape(2, 2, 3)
    along = torch.linspace(-1, 1, 9).reshape(9, 1, 1, 1) * v1 * std + model.normalize.mean
    top = data_alignment(model, along)
    assert top["data_align"] == pytest.approx(1.0, abs=1e-5)
    assert top["data_gain_l2"] == pytest.approx(1.0, abs=1e-5)
    with torch.no_grad():
        model.encoder[0].weight.mul_(7.0)  # scale-free: scaling W changes none of them
    assert data_alignment(model, x) == pytest.approx(got, rel=1e-6)


def test_data_alignment_is_nan_for_a_conv_first_layer() -> None:
    model = MODELS["conv"]
    got = data_alignment(model, torch.randn(3, *model.input_shape))
    assert all(math.isnan(v) for v in got.values())
