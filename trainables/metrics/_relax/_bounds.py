"""Linear-relaxation certificates: IBP and CROWN bounds on the margins f_y - f_j over an input ball.

Threat model: the L-inf or L2 ball of radius eps around x, intersected with the pixel box [0,1]
(inputs are pixels). L-inf: the intersection is the box [max(0, x-eps), min(1, x+eps)], used
exactly. L2: we bound over two sound supersets of ball-and-box, the ball itself and the box
[max(0, x-eps), min(1, x+eps)], and keep the larger of the two lower bounds of each linear function
(IBP too, at the first nonlinearity: its pre-activations are an affine map of the input).

IBP (interval bound propagation) pushes that box through the chain as intervals. CROWN
(Zhang et al. 2018) propagates the linear specification backwards, relaxing each ReLU / max-pool
between linear bounds computed from its input's bounds, and concretizes at the input. The margin
specification e_y - e_j is propagated through the head itself, so the head is folded into the
specification (for IBP too: IBP bounds stop at the last nonlinearity and the trailing affine layers
are applied to the specification exactly).

Pre-activation bounds of each ReLU: IBP's interval, intersected with CROWN's bound when the layer
has at most `crown_max_neurons` neurons per sample (CROWN for every neuron costs a backward pass
with 2 x neurons specifications); larger layers keep IBP's (CROWN-IBP style). The first ReLU of
an L-inf chain needs no CROWN pass: for an affine map of a box, IBP is exact.

method="crown" returns, per sample and class, the largest of three sound lower bounds: CROWN's,
IBP's, and, for models of the project's protocol (a `head` and `lipschitz_upper`), the global
product's, (f_y - f_j)(x) - ||c_y - c_j||_q Lhat_p eps (THEORY.md "Network bound"). None dominates:
CROWN's backward bound is not above IBP's on every class, and in L2 at larger eps, with many
unstable neurons, the global product (which uses that ReLU is 1-Lipschitz jointly in L2) can beat
CROWN's per-neuron relaxation. So certified(method="crown") >= certified by the global product. Bounds are computed
in float64 from the model's weights (the model itself runs in float32; the difference is ~1e-6
relative and not accounted for).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from trainables.errors import ConfigError
from trainables.metrics._lipschitz import lipschitz
from trainables.metrics._modes import check_norm, logits_of
from trainables.metrics._relax._chain import Chain, to_chain
from trainables.metrics._relax._ops import Op, ReLU
from trainables.schema import DUAL_NORM

METHODS = ("crown", "ibp")
DTYPE = torch.float64
CHUNK = 32  # samples per bound computation
SPEC_BUDGET = 2**23  # float64 entries of one backward pass's coefficients (64 MiB)
CROWN_MAX_NEURONS = 4096


@dataclass(frozen=True)
class _Domain:
    """The input set: the box [lo, hi] and, for L2, also the ball ||x' - x||_2 <= eps."""

    x: Tensor
    lo: Tensor
    hi: Tensor
    norm: str
    eps: Tensor  # (B,)

    def lower(self, lam: Tensor, bias: Tensor) -> Tensor:
        """min over the domain of lam . x' + bias, for lam (B, M, *input) -> (B, M)."""
        flat = lam.flatten(2)
        centre = ((self.lo + self.hi) / 2).flatten(1)[:, :, None]
        radius = ((self.hi - self.lo) / 2).flatten(1)[:, :, None]
        value = (flat @ centre - flat.abs() @ radius).squeeze(2)
        if self.norm == "l2":
            ball = (flat @ self.x.flatten(1)[:, :, None]).squeeze(2)
            value = torch.maximum(value, ball - self.eps[:, None] * flat.norm(dim=2))
        return value + bias


def _affine_ibp(op: Op, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    centre, radius = op.forward((lo + hi) / 2), op.forward_abs((hi - lo) / 2)
    return centre - radius, centre + radius


def _l2_first_segment(ops: list[Op], domain: _Domain) -> tuple[Tensor, Tensor] | None:
    """Exact bounds of an affine segment A x + b over the L2 ball: A x + b +- eps ||A_i||_2.
    The squared row norms are (A o A) 1, which composes through diagonal ops but not through two
    mixing ops, so segments with two or more mixing ops return None (keep the box's bounds)."""
    if sum(op.mixing for op in ops) > 1:
        return None
    centre, sq = domain.x, torch.ones_like(domain.x[:1])
    for op in ops:
        centre, sq = op.forward(centre), op.forward_sq(sq)
    radius = domain.eps.reshape(-1, *([1] * (centre.dim() - 1))) * sq.sqrt()
    return centre - radius, centre + radius


def _backward(ops: list[Op], lam: Tensor, relaxed: dict[int, tuple[Tensor, Tensor]],
              start: int = 0) -> tuple[Tensor, Tensor]:
    """Push lam (B, M, *output of ops[-1]) back to the input of ops[start]: returns (lam', bias)
    with lam . ops(z) >= lam' . z + bias for z in the bounds used for the relaxations."""
    bias = lam.new_zeros(lam.shape[:2])
    for i in range(len(ops) - 1, start - 1, -1):
        op = ops[i]
        if op.linear:
            term = op.bias_term(lam)
            if term is not None:
                bias = bias + term
            lam = op.backward(lam)
        else:
            lam, term = op.relax(lam, *relaxed[i])
            bias = bias + term
    return lam, bias


def _crown_intermediate(ops: list[Op], shape: tuple[int, ...], domain: _Domain,
                        relaxed: dict[int, tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """CROWN lower and upper bounds of every entry of the output of ops (shape per sample)."""
    batch, n = len(domain.x), math.prod(shape)
    widest = max([math.prod(op.in_shape) for op in ops] + [n])
    block = max(1, SPEC_BUDGET // (2 * batch * widest))
    lows, highs = [], []
    for start in range(0, n, block):
        m = min(block, n - start)
        rows = torch.zeros(m, n, dtype=DTYPE)
        rows[torch.arange(m), start + torch.arange(m)] = 1.0
        spec = torch.cat([rows, -rows]).reshape(1, -1, *shape).expand(batch, -1, *shape)
        lam, bias = _backward(ops, spec, relaxed)
        value = domain.lower(lam, bias)
        lows.append(value[:, :m])
        highs.append(-value[:, m:])
    return torch.cat(lows, 1).reshape(batch, *shape), torch.cat(highs, 1).reshape(batch, *shape)


def _margin_chunk(chain: Chain, x: Tensor, y: Tensor, norm: str, eps: Tensor, method: str,
                  crown_max_neurons: int) -> dict[str, Tensor]:
    """Lower bounds of f_y - f_j, (B, K) per method computed ("ibp" always)."""
    ops = chain.ops
    x = x.to(DTYPE)
    e = eps.to(DTYPE).reshape(-1, *([1] * (x.dim() - 1)))
    domain = _Domain(x, (x - e).clamp(0.0, 1.0), (x + e).clamp(0.0, 1.0), norm, eps.to(DTYPE))
    nonlinear = [i for i, op in enumerate(ops) if not op.linear]
    tail = nonlinear[-1] + 1 if nonlinear else 0

    lo, hi = domain.lo, domain.hi
    relaxed: dict[int, tuple[Tensor, Tensor]] = {}
    tail_box = (lo, hi)
    for i, op in enumerate(ops):
        if i == tail:
            tail_box = (lo, hi)
        if op.linear:
            lo, hi = _affine_ibp(op, lo, hi)
            continue
        exact_already = norm == "linf" and i == nonlinear[0]
        if norm == "l2" and i == nonlinear[0] and (ball := _l2_first_segment(ops[:i], domain)):
            lo, hi = torch.maximum(lo, ball[0]), torch.minimum(hi, ball[1])
            hi = torch.maximum(hi, lo)
            exact_already = True  # CROWN's bound here would be the same two concretizations
        if (method == "crown" and isinstance(op, ReLU) and not exact_already
                and lo[0].numel() <= crown_max_neurons):
            c_lo, c_hi = _crown_intermediate(ops[:i], lo.shape[1:], domain, relaxed)
            lo = torch.maximum(lo, c_lo)
            hi = torch.maximum(torch.minimum(hi, c_hi), lo)
        relaxed[i] = (lo, hi)
        lo, hi = op.ibp(lo, hi)

    k = chain.num_classes
    spec = torch.nn.functional.one_hot(y, k).to(DTYPE)[:, None, :] - torch.eye(k, dtype=DTYPE)
    lam, bias = _backward(ops, spec, relaxed, start=tail)
    if tail == 0:
        bounds = {"ibp": domain.lower(lam, bias)}
    else:
        box = _Domain(x, *tail_box, "linf", eps)
        bounds = {"ibp": box.lower(lam, bias)}
    if method == "crown":
        lam, bias = _backward(ops, spec, relaxed)
        bounds["crown"] = domain.lower(lam, bias)
    return bounds


def _global_bounds(model: nn.Module, logits: Tensor, y: Tensor, norm: str,
                   eps: Tensor) -> Tensor | None:
    """(f_y - f_j)(x) - ||c_y - c_j||_q Lhat_p eps for protocol models, else None."""
    if not (hasattr(model, "lipschitz_upper") and isinstance(getattr(model, "head", None),
                                                             nn.Linear)):
        return None
    rows = model.head.weight.detach().to("cpu", DTYPE)
    pair = torch.cdist(rows, rows, p=DUAL_NORM[norm])  # (K, K): ||c_i - c_j||_q
    margins = logits.gather(1, y[:, None]) - logits
    return margins - pair[y] * lipschitz(model, norm) * eps[:, None]


def _check(method: str, x: Tensor, y: Tensor, eps: float | Tensor) -> Tensor:
    if method not in METHODS:
        raise ConfigError(f"method must be one of {list(METHODS)}, but got {method!r}")
    if x.dim() < 2 or y.shape != (len(x),):
        raise ConfigError(f"x must be (N, ...) and y (N,), but got {tuple(x.shape)} and "
                          f"{tuple(y.shape)}")
    eps_t = torch.as_tensor(eps, dtype=DTYPE).detach().cpu()
    eps_t = eps_t.expand(len(x)).clone() if eps_t.dim() == 0 else eps_t.reshape(-1)
    if eps_t.shape != (len(x),) or not bool(((eps_t >= 0) & torch.isfinite(eps_t)).all()):
        raise ConfigError(f"eps must be a finite number >= 0 or one per sample (pixel units), "
                          f"but got {eps!r}")
    return eps_t


@torch.no_grad()
def _all_bounds(model: nn.Module, x: Tensor, y: Tensor, norm: str, eps: float | Tensor,
                method: str, chunk: int,
                crown_max_neurons: int) -> tuple[dict[str, Tensor], Tensor]:
    check_norm(norm)
    eps_t = _check(method, x, y, eps)
    x, y = x.detach().cpu(), y.detach().cpu()
    logits = logits_of(model, x).cpu()
    chain = to_chain(model, tuple(x.shape[1:]), DTYPE)
    chain.check(x, logits)
    parts: dict[str, list[Tensor]] = {}
    glob = _global_bounds(model, chain.forward(x), y, norm, eps_t) if method == "crown" else None
    if glob is not None:
        parts["global"] = [glob]
    for s in range(0, len(x), chunk):
        sl = slice(s, s + chunk)
        got = _margin_chunk(chain, x[sl], y[sl], norm, eps_t[sl], method, crown_max_neurons)
        for name, value in got.items():
            parts.setdefault(name, []).append(value)
    out = {}
    for name, values in parts.items():
        value = torch.cat(values) if values else torch.empty(0, chain.num_classes, dtype=DTYPE)
        out[name] = value.scatter(1, y[:, None], math.inf)  # j = y is not a competitor
    return out, logits


def margin_lower_bounds(model: nn.Module, x: Tensor, y: Tensor, norm: str, eps: float | Tensor,
                        method: str = "crown", *, chunk: int = CHUNK,
                        crown_max_neurons: int = CROWN_MAX_NEURONS) -> Tensor:
    """(N, K) float64: a lower bound of f_y(x') - f_j(x') over x' in the eps ball around x (in
    `norm`, within [0,1]); +inf at j == y. eps: a number or one per sample. The model is read in
    eval mode (BatchNorm's running statistics). ConfigError for an unsupported model."""
    bounds, _ = _all_bounds(model, x, y, norm, eps, method, chunk, crown_max_neurons)
    if method == "crown":
        best = torch.maximum(bounds["crown"], bounds["ibp"])
        return torch.maximum(best, bounds["global"]) if "global" in bounds else best
    return bounds["ibp"]


def certified_mask(model: nn.Module, x: Tensor, y: Tensor, norm: str, eps: float | Tensor,
                   method: str = "crown", **kwargs) -> Tensor:
    """bool (N,): correctly classified at x and every margin's lower bound > 0 over the ball, so
    no x' in the ball (within [0,1]) changes the prediction."""
    bounds = margin_lower_bounds(model, x, y, norm, eps, method, **kwargs)
    return certified_by_bounds(bounds, logits_of(model, x.detach()).argmax(1).cpu() == y.cpu())


def certified_by_bounds(bounds: Tensor, correct: Tensor) -> Tensor:
    """bool (N,) from margin_lower_bounds (N, K) and clean correctness (N,): correct and every
    competitor's margin bound > 0 (certified_mask's rule, for callers that keep the bounds)."""
    return correct.to(bounds.device) & (bounds > 0).all(dim=1)


def certified_accuracy_relaxed(model: nn.Module, x: Tensor, y: Tensor, norm: str, eps: float,
                               method: str = "crown", **kwargs) -> float:
    """Fraction of samples certified at eps: a lower bound on robust accuracy at eps."""
    return float(certified_mask(model, x, y, norm, eps, method, **kwargs).double().mean())


def certified_radius_relaxed(model: nn.Module, x: Tensor, y: Tensor, norm: str, eps_max: float,
                             iters: int = 10, method: str = "crown", **kwargs) -> Tensor:
    """Per-sample radius (N,) float64 by bisection over eps: every returned r > 0 is a radius at
    which the sample was certified (closed ball), so r is a lower bound on the distance to the
    nearest adversarial example; 0 where misclassified or not certified at eps_max / 2**iters.
    Capped at eps_max; bisection leaves at most eps_max / 2**iters on the table."""
    if not (0 < eps_max < math.inf):
        raise ConfigError(f"eps_max must be finite and > 0 (pixel units), but got {eps_max!r}")
    if not isinstance(iters, int) or iters < 1:
        raise ConfigError(f"iters must be an integer >= 1, but got {iters!r}")
    n = len(x)
    lo = torch.zeros(n, dtype=DTYPE)
    hi = torch.full((n,), float(eps_max), dtype=DTYPE)
    at_max = certified_mask(model, x, y, norm, eps_max, method, **kwargs)
    lo[at_max] = eps_max
    correct = logits_of(model, x.detach()).argmax(1).cpu() == y.cpu()
    todo = (correct & ~at_max).nonzero().squeeze(1)
    for _ in range(iters):
        if len(todo) == 0:
            break
        mid = (lo[todo] + hi[todo]) / 2
        ok = certified_mask(model, x[todo], y[todo], norm, mid, method, **kwargs)
        lo[todo] = torch.where(ok, mid, lo[todo])
        hi[todo] = torch.where(ok, hi[todo], mid)
    return lo
