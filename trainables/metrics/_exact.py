"""Exact robustness of one-hidden-layer ReLU networks by mixed-integer programming (HiGHS through
scipy.optimize.milp), L-inf only.

A network f(x) = W2 relu(W1 x + b1) + b2 (the project's FCN with depth 1, factorized or not, or a
Sequential that reads as such; the normalization and flattening are folded into W1, b1) is robust
at x within the box B = [max(0, x-eps), min(1, x+eps)] iff for every j != y the minimum of
f_y - f_j over B is > 0. Each minimum is a MILP: neurons whose pre-activation bounds over B
(exact for an affine map of a box) are >= 0 are linear, those <= 0 vanish, and each unstable
neuron i gets a binary d_i with the big-M encoding (M from its bounds [l_i, u_i]):
    a_i >= z_i,  a_i >= 0,  a_i <= z_i - l_i (1 - d_i),  a_i <= u_i d_i.
HiGHS returns a feasible point (an upper bound on the minimum: an adversarial example when < 0)
and a dual bound (a lower bound: robust when > 0); both are exact up to the solver's feasibility
tolerances (~1e-7), which are not accounted for. Where the time limit ends a solve with the two
bounds on either side of 0, the sample is "unknown".

L2 balls would need a quadratic constraint (a mixed-integer QCQP), which scipy's HiGHS does not
solve; they raise ConfigError.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from trainables.errors import ConfigError
from trainables.metrics._modes import logits_of
from trainables.metrics._relax import margin_lower_bounds, to_chain
from trainables.metrics._relax._ops import ReLU

TIME_LIMIT_S = 10.0  # per (sample, class) MILP


@dataclass(frozen=True)
class _OneHidden:
    w1: np.ndarray  # (h, n): pixel input -> pre-activations, normalization folded in
    b1: np.ndarray
    w2: np.ndarray  # (K, h)
    b2: np.ndarray


def _affine_matrix(ops, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(A, b) of a chain of affine ops on per-sample input `shape`: ops(z) = A z.flatten() + b."""
    n = math.prod(shape)
    basis = torch.cat([torch.zeros(1, n), torch.eye(n)]).to(torch.float64).reshape(n + 1, *shape)
    out = basis
    for op in ops:
        out = op.forward(out)
    out = out.flatten(1)
    return (out[1:] - out[0]).T.numpy(), out[0].numpy()


def _one_hidden(model: nn.Module, input_shape: tuple[int, ...]) -> _OneHidden:
    chain = to_chain(model, input_shape)
    nonlinear = [i for i, op in enumerate(chain.ops) if not op.linear]
    if len(nonlinear) != 1 or not isinstance(chain.ops[nonlinear[0]], ReLU):
        raise ConfigError(
            f"exact verification supports one-hidden-layer ReLU networks (affine, ReLU, affine), "
            f"but this model has {len(nonlinear)} nonlinear layers; use margin_lower_bounds "
            "(CROWN) for it"
        )
    k = nonlinear[0]
    w1, b1 = _affine_matrix(chain.ops[:k], input_shape)
    w2, b2 = _affine_matrix(chain.ops[k + 1:], chain.ops[k].in_shape)
    return _OneHidden(w1, b1, w2, b2)


def _solve(net: _OneHidden, x: np.ndarray, y: int, eps: float, classes: list[int],
           time_limit: float, sign_only: bool) -> dict[int, tuple[float, float]]:
    """{j: (lower, upper)} bounds on min over the box of f_y - f_j, per class in `classes`.

    sign_only: decide only whether the minimum is > 0, as a feasibility problem (zero objective,
    constraint f_y - f_j <= 0): HiGHS stops at the first adversarial point instead of optimizing
    it, and proves robustness by infeasibility. Returns (inf, inf) for "> 0", (-inf, value <= 0)
    for an adversarial point, (-inf, inf) when the time limit left it open; stops at the first
    adversarial class."""
    # Imported here: scipy.optimize costs ~0.9 s, and a trial that never verifies exactly (every
    # per-epoch evaluation) must not pay it.
    from scipy.optimize import Bounds, LinearConstraint, milp

    lo, hi = np.clip(x - eps, 0.0, 1.0), np.clip(x + eps, 0.0, 1.0)
    pos, neg = np.clip(net.w1, 0, None), np.clip(net.w1, None, 0)
    z_lo = pos @ lo + neg @ hi + net.b1
    z_hi = pos @ hi + neg @ lo + net.b1
    active = z_lo >= 0
    unstable = np.flatnonzero((z_lo < 0) & (z_hi > 0))
    n, m = len(x), len(unstable)
    w_u, b_u, l_u, u_u = net.w1[unstable], net.b1[unstable], z_lo[unstable], z_hi[unstable]
    eye, zero = np.eye(m), np.zeros((m, m))
    # Variables: x (n), a (m), d (m).
    constraints = [
        LinearConstraint(np.hstack([-w_u, eye, zero]), b_u, np.inf),  # a >= z
        LinearConstraint(np.hstack([-w_u, eye, -np.diag(l_u)]), -np.inf, b_u - l_u),
        LinearConstraint(np.hstack([np.zeros((m, n)), eye, -np.diag(u_u)]), -np.inf, 0.0),
    ] if m else []
    bounds = Bounds(np.concatenate([lo, np.zeros(m), np.zeros(m)]),
                    np.concatenate([hi, u_u, np.ones(m)]))
    integrality = np.concatenate([np.zeros(n + m), np.ones(m)])
    out: dict[int, tuple[float, float]] = {}
    for j in classes:
        c = net.w2[y] - net.w2[j]
        const = float(c[active] @ net.b1[active] + net.b2[y] - net.b2[j])
        objective = np.concatenate([c[active] @ net.w1[active], c[unstable], np.zeros(m)])
        if sign_only:
            cut = LinearConstraint(objective[None], -np.inf, -const)  # f_y - f_j <= 0
            res = milp(np.zeros_like(objective), integrality=integrality, bounds=bounds,
                       constraints=[*constraints, cut],
                       options={"time_limit": time_limit, "disp": False})
            if res.status == 2:  # infeasible: no point of the box has f_y - f_j <= 0
                out[j] = (math.inf, math.inf)
                continue
            if res.x is None:
                out[j] = (-math.inf, math.inf)
                continue
            out[j] = (-math.inf, min(float(objective @ res.x) + const, 0.0))
            break
        res = milp(objective, integrality=integrality, bounds=bounds, constraints=constraints,
                   options={"time_limit": time_limit, "disp": False})
        upper = res.fun + const if res.x is not None else math.inf
        dual = getattr(res, "mip_dual_bound", None)
        lower = dual + const if dual is not None and np.isfinite(dual) else -math.inf
        if res.status == 0 and m == 0:
            lower = upper  # a pure LP: solved exactly
        out[j] = (lower, upper)
    return out


def _inputs(model: nn.Module, x: Tensor, y: Tensor, eps: float, norm: str):
    if norm != "linf":
        raise ConfigError(f"exact verification supports norm 'linf' only (an L2 ball needs a "
                          f"quadratic constraint), but got {norm!r}; use margin_lower_bounds")
    if not (0 <= eps < math.inf):
        raise ConfigError(f"eps must be a finite number >= 0 (pixel units), but got {eps!r}")
    x, y = x.detach().cpu(), y.detach().cpu()
    net = _one_hidden(model, tuple(x.shape[1:]))
    return net, x.flatten(1).double().numpy(), y


def exact_min_margins(model: nn.Module, x: Tensor, y: Tensor, eps: float, *,
                      time_limit: float = TIME_LIMIT_S) -> tuple[Tensor, Tensor]:
    """(lower, upper), each (N, K) float64: bounds on min over the L-inf box of f_y - f_j from
    HiGHS (equal up to solver tolerance where solved within time_limit); +inf at j == y."""
    net, flat, y = _inputs(model, x, y, eps, "linf")
    k = net.w2.shape[0]
    lower = torch.full((len(flat), k), math.inf, dtype=torch.float64)
    upper = lower.clone()
    for i in range(len(flat)):
        label = int(y[i])
        got = _solve(net, flat[i], label, eps, [j for j in range(k) if j != label], time_limit,
                     sign_only=False)
        for j, (lo, hi) in got.items():
            lower[i, j], upper[i, j] = lo, hi
    return lower, upper


def exact_robust_mask(model: nn.Module, x: Tensor, y: Tensor, eps: float, norm: str = "linf", *,
                      time_limit: float = TIME_LIMIT_S) -> tuple[Tensor, Tensor]:
    """(robust, unknown), bool (N,) each: robust where x is correct and no point of the L-inf
    ball (within [0,1]) changes the prediction, proven by MILP; unknown where a time limit left
    it open (robust is False there). Classes CROWN already certifies are not solved; the
    others are decided (feasibility MILPs) in order of CROWN's bound, stopping at the first
    adversarial one. time_limit: seconds per (sample, class) MILP."""
    net, flat, y = _inputs(model, x, y, eps, norm)
    correct = logits_of(model, x.detach().cpu()).argmax(1) == y
    crown = margin_lower_bounds(model, x, y, "linf", eps, "crown")
    robust = torch.zeros(len(flat), dtype=torch.bool)
    unknown = torch.zeros(len(flat), dtype=torch.bool)
    for i in range(len(flat)):
        if not correct[i]:
            continue
        todo = [int(j) for j in crown[i].argsort() if crown[i, j] <= 0]
        got = _solve(net, flat[i], int(y[i]), eps, todo, time_limit, sign_only=True)
        if any(hi <= 0 for _, hi in got.values()):
            continue
        if all(lo > 0 for lo, _ in got.values()):
            robust[i] = True
        else:
            unknown[i] = True
    return robust, unknown
