"""One APGD run (L-inf / L2), bit for bit pyautoattack's `APGDAttack.attack_single_run`, leaner.

Why: for a small model the library's run costs several times the model's forward and backward
(FCN 784-256-10, one CPU thread: ~6 us of ~30 us per row and iteration), because each iteration
makes about thirty passes over input-sized tensors: the box and ball projection as four ops
(x - eps and x + eps recomputed each time), `+ 0.` copies, a zero tensor the gradient is added
to, and the best-so-far updates as gather / clone / scatter. This is the same algorithm with the
same floating-point operations in the same order where they produce values, and fewer passes:
- the projection min(max(v, x - eps), x + eps) then clamp(0, 1) is one clamp to precomputed
  bounds [max(x - eps, 0), min(x + eps, 1)]: only comparisons, and the two intervals intersect
  (0 <= x <= 1, eps >= 0), so the selected value is the same;
- x - eps, x + eps and the L2 norm of a difference are computed once where the library computes
  the same expression twice; eps * ones_like(x) is eps (a product by 1 is exact);
- best-so-far updates (x_best, grad_best, step size halving, the restart from x_best) are
  torch.where on a row mask instead of index_put on the rows' indices: a selection, no
  arithmetic;
- the library's `+ 0.` (which turns -0.0 into +0.0) is kept where a value flows on, in place.
The library's own random start is not drawn (the caller passes x_init, as ensemble.py always does;
the library draws and discards one from torch's global RNG). Checked against pyautoattack 0.2.0
by tests/trainables/test_attacks_apgd_run.py (exact equality of every returned tensor, both norms,
CE and targeted DLR, per-sample eps).
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F
from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted
from pyautoattack.checks import check_zero_gradients
from torch import Tensor, nn

from trainables.attacks._base import forked_rng

NORMS = ("linf", "l2")
LOSSES = ("ce", "dlr-targeted")
RHO = 0.75  # the library's default thr_decr, used by AutoAttack


def _dlr_targeted(logits: Tensor, y: Tensor, y_target: Tensor) -> Tensor:
    """The library's targeted DLR loss itself (called, not re-implemented): equal by definition."""
    return APGDAttack_targeted.dlr_loss_targeted(SimpleNamespace(y_target=y_target), logits, y)


def _l2(v: Tensor) -> Tensor:
    """(N, 1, ..., 1) L2 norm of each row, as the library computes it (normalize, L2_norm)."""
    return (v ** 2).view(v.shape[0], -1).sum(-1).sqrt().view(-1, *([1] * (v.ndim - 1)))


def _check_oscillation(loss_steps: Tensor, j: int, k: int, k3: float) -> Tensor:
    """The library's step-size checkpoint test itself (called, not re-implemented)."""
    return APGDAttack.check_oscillation(SimpleNamespace(device=loss_steps.device), loss_steps,
                                        j, k, None, k3=k3)


def apgd_single_run(model: nn.Module, x: Tensor, y: Tensor, x_init: Tensor, *, norm: str,
                    eps: Tensor, n_iter: int, loss: str = "ce", y_target: Tensor | None = None,
                    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(x_best, acc, loss_best, x_best_adv) as the library's attack_single_run(x, y, x_init) with
    eps a (N, 1, ..., 1) tensor, eot_iter 1, rho 0.75; loss "dlr-targeted" needs y_target (N,)."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {list(NORMS)}, but got {norm!r}")
    if loss not in LOSSES or (loss == "dlr-targeted") != (y_target is not None):
        raise ValueError(f"loss must be 'ce' or 'dlr-targeted' (with y_target), but got {loss!r}")
    n = x.shape[0]
    row = (n, *([1] * (x.ndim - 1)))

    def criterion(logits: Tensor) -> Tensor:
        if loss == "ce":
            return F.cross_entropy(logits, y, reduction="none")
        return _dlr_targeted(logits, y, y_target)

    def gradient(x_adv: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x_adv.requires_grad_()
        with torch.enable_grad():
            logits = model(x_adv)
            loss_indiv = criterion(logits)
            total = loss_indiv.sum()
        grad = torch.autograd.grad(total, [x_adv])[0].detach()
        return logits.detach(), loss_indiv.detach(), grad.add_(0.0)  # zeros_like(x) + grad

    n_iter_2 = max(int(0.22 * n_iter), 1)
    n_iter_min = max(int(0.06 * n_iter), 1)
    size_decr = max(int(0.03 * n_iter), 1)
    lower = upper = None
    if norm == "linf":
        lower = torch.clamp(x - eps, min=0.0)
        upper = torch.clamp(x + eps, max=1.0)

    def project(v: Tensor) -> Tensor:
        if norm == "linf":
            # torch.clamp with tensor bounds is several times slower than these two on CPU.
            return torch.minimum(torch.maximum(v, lower), upper)
        d = v - x
        size = _l2(d)
        return torch.clamp(x + d / (size + 1e-12) * torch.min(eps, size), 0.0, 1.0)

    x_adv = x_init.clone().clamp(0.0, 1.0)
    x_best = x_adv.clone()
    x_best_adv = x_adv.clone()
    loss_steps = torch.zeros([n_iter, n], device=x.device)

    logits, loss_indiv, grad = gradient(x_adv)
    x_adv = x_adv.detach()
    grad_best = grad.clone()
    if loss == "dlr-targeted":
        check_zero_gradients(grad)
    acc = logits.max(1)[1] == y
    loss_best = loss_indiv.clone()
    step_size = 2.0 * eps * torch.ones(row, device=x.device)
    x_adv_old = x_adv
    counter3, k = 0, n_iter_2
    loss_best_last_check = loss_best.clone()
    reduced_last_check = torch.ones_like(loss_best)

    for i in range(n_iter):
        with torch.no_grad():
            grad2 = x_adv - x_adv_old
            x_adv_old = x_adv
            a = 0.75 if i > 0 else 1.0
            if norm == "linf":
                step = x_adv + step_size * torch.sign(grad)
            else:
                step = x_adv + step_size * (grad / (_l2(grad) + 1e-12))
            step = project(step)
            step = (x_adv + (step - x_adv) * a).add_(grad2 * (1 - a))
            x_adv = project(step).add_(0.0)

        logits, loss_indiv, grad = gradient(x_adv)
        x_adv = x_adv.detach()
        with torch.no_grad():
            pred = logits.max(1)[1] == y
            acc = torch.min(acc, pred)
            fooled = (~pred).nonzero().squeeze(1)
            x_best_adv[fooled] = x_adv[fooled]
            loss_steps[i] = loss_indiv
            improved = (loss_indiv > loss_best).nonzero().squeeze(1)
            x_best[improved] = x_adv[improved]
            grad_best[improved] = grad[improved]
            loss_best[improved] = loss_indiv[improved]
            counter3 += 1
            if counter3 == k:
                fl_oscillation = _check_oscillation(loss_steps, i, k, RHO)
                fl_reduce_no_impr = (1. - reduced_last_check) * (
                    loss_best_last_check >= loss_best).float()
                fl_oscillation = torch.max(fl_oscillation, fl_reduce_no_impr)
                reduced_last_check = fl_oscillation.clone()
                loss_best_last_check = loss_best.clone()
                reset = (fl_oscillation > 0).nonzero().squeeze(1)
                step_size[reset] /= 2.0
                x_adv[reset] = x_best[reset]
                grad[reset] = grad_best[reset]
                k = max(k - size_decr, n_iter_min)
                counter3 = 0
    return x_best, acc, loss_best, x_best_adv


def library_single_run(model: nn.Module, x: Tensor, y: Tensor, x_init: Tensor, *, norm: str,
                       eps: Tensor, n_iter: int, loss: str = "ce",
                       y_target: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The reference apgd_single_run equals: pyautoattack's own attack_single_run, same arguments
    (its discarded random start drawn from a forked RNG, so the caller's stream is untouched)."""
    common = dict(n_iter=n_iter, norm={"linf": "Linf", "l2": "L2"}[norm], n_restarts=1, eps=eps,
                  device=x.device)
    if loss == "ce":
        attack = APGDAttack(model, loss="ce", **common)
    else:
        attack = APGDAttack_targeted(model, n_target_classes=1, **common)
        attack.y_target = y_target
    attack.init_hyperparam(x)
    with forked_rng(x.device, 0):
        return attack.attack_single_run(x, y, x_init=x_init)
