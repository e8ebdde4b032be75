"""Data-dependent loss-gap estimates (THEORY.md "Estimates that are not certificates")."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainables.metrics._certify import CE_GRADIENT_BOUND
from trainables.metrics._modes import CHUNK, check_norm, eval_mode
from trainables.schema import DUAL_NORM, NORMS


def _logits_and_jacobian(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, classes) and J(x) w.r.t. the pixel input (N, classes, input dim), eval mode.

    One batched vector-Jacobian product per class: in eval mode samples do not interact, so the
    gradient of sum_n f_k(x_n) holds row k of every sample's Jacobian. That is exact and costs
    `classes` backward passes for any architecture (FCN or conv), fewer than a power iteration
    would need for sigma_1 (two passes per step), and the L-inf norm needs every row anyway."""
    with eval_mode(model), torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        logits = model(x)
        classes = logits.shape[1]
        rows = []
        for k in range(classes):
            (grad,) = torch.autograd.grad(logits[:, k].sum(), x, retain_graph=k + 1 < classes)
            rows.append(grad.reshape(x.shape[0], -1))
    return logits.detach(), torch.stack(rows, dim=1)


def input_jacobian(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """J(x) of the logits w.r.t. the pixel input, (N, classes, input dim), in eval mode."""
    return _logits_and_jacobian(model, x)[1]


def _operator_norms(jac: torch.Tensor) -> dict[str, torch.Tensor]:
    # sigma_1(J) = sqrt(lambda_max(J J^T)); J J^T is only classes x classes.
    gram = jac @ jac.transpose(1, 2)
    return {
        "linf": jac.abs().sum(dim=2).amax(dim=1),  # max row L1
        "l2": torch.linalg.eigvalsh(gram)[:, -1].clamp_min(0.0).sqrt(),
    }


@dataclass(frozen=True)
class SensitivityEstimates:
    """Per-sample input sensitivities from one Jacobian pass (float64 CPU tensors, (N,) each).

    logits: eval-mode logits (N, classes), reusable for clean accuracy / loss and
    certified_radius(..., logits=...). jacobian[p] = ||J(x)||_{p->p}. gradient[p] =
    ||grad_x CE(f(x), y)||_q, q the dual of p (grad_x CE = J^T (softmax - onehot): no extra pass).
    """

    logits: torch.Tensor
    jacobian: dict[str, torch.Tensor]
    gradient: dict[str, torch.Tensor]

    def alignment_gap(self, p: str, eps: float) -> float:
        """G_p * mean_x ||J(x)||_{p->p} * eps (an estimate, not a bound)."""
        check_norm(p)
        return CE_GRADIENT_BOUND[p] * float(self.jacobian[p].mean()) * eps

    def first_order_gap(self, p: str, eps: float) -> float:
        """eps * mean_x ||grad_x CE||_q (an estimate, not a bound)."""
        check_norm(p)
        return eps * float(self.gradient[p].mean())


def sensitivity_estimates(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> SensitivityEstimates:
    """Everything the two gap estimates need, for both norms, from `classes` backward passes."""
    logits_parts, jacobian_parts, gradient_parts = [], [], []
    for xs, ys in zip(x.split(CHUNK), y.split(CHUNK), strict=True):
        logits, jac = _logits_and_jacobian(model, xs)
        logits, jac = logits.double(), jac.double()
        residual = logits.softmax(dim=1) - F.one_hot(ys, logits.shape[1]).to(logits)
        grad = torch.einsum("nk,nkd->nd", residual, jac)
        logits_parts.append(logits.cpu())
        jacobian_parts.append({p: v.cpu() for p, v in _operator_norms(jac).items()})
        gradient_parts.append({p: grad.norm(p=DUAL_NORM[p], dim=1).cpu() for p in NORMS})
    return SensitivityEstimates(
        logits=torch.cat(logits_parts),
        jacobian={p: torch.cat([part[p] for part in jacobian_parts]) for p in NORMS},
        gradient={p: torch.cat([part[p] for part in gradient_parts]) for p in NORMS},
    )


def jacobian_op_norms(model: nn.Module, x: torch.Tensor, p: str) -> torch.Tensor:
    """||J(x)||_{p->p} per sample, float64 CPU (N,): p = "linf" max row L1, p = "l2" sigma_1."""
    check_norm(p)
    norms = [_operator_norms(input_jacobian(model, xs).double())[p] for xs in x.split(CHUNK)]
    return torch.cat(norms).cpu()


def alignment_estimate_gap(model: nn.Module, x: torch.Tensor, p: str, eps: float) -> float:
    """G_p * mean_x ||J(x)||_{p->p} * eps: a local-Lipschitz estimate, not a bound. Linear in eps;
    for several norms or budgets compute sensitivity_estimates once instead."""
    return CE_GRADIENT_BOUND[p] * float(jacobian_op_norms(model, x, p).mean()) * eps


def input_gradient_norms(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, p: str
) -> torch.Tensor:
    """||grad_x CE(f(x), y)||_q per sample (q the dual of p), float64 CPU (N,); one forward and
    one backward pass."""
    check_norm(p)
    norms = []
    with eval_mode(model), torch.enable_grad():
        for xs, ys in zip(x.split(CHUNK), y.split(CHUNK), strict=True):
            xs = xs.detach().clone().requires_grad_(True)
            loss = F.cross_entropy(model(xs), ys, reduction="sum")
            (grad,) = torch.autograd.grad(loss, xs)
            norms.append(grad.reshape(xs.shape[0], -1).double().norm(p=DUAL_NORM[p], dim=1))
    return torch.cat(norms).cpu()


def first_order_gap(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, p: str, eps: float
) -> float:
    """eps * mean_x ||grad_x CE||_q: what a one-step attack gains to first order (an estimate)."""
    return eps * float(input_gradient_norms(model, x, y, p).mean())
