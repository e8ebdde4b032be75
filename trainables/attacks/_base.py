"""The shared base of every attack: the boring parts, so each attack module is only its math.

`Attack.__call__` checks the input, puts the model in eval mode (and restores the mode it had),
turns eps into a per-sample tensor, seeds a private torch.Generator, calls the subclass's
`_perturb`, and finally projects onto the eps ball and the [0,1] box, so every attack, ours or a
wrapped library's, returns x_adv within eps of x and in [0,1]. Nothing is frozen globally: gradients
are taken with torch.autograd.grad with respect to the input only, so parameters' .grad are never
touched.
"""

from __future__ import annotations

import contextlib
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.errors import ConfigError
from trainables.schema import check_norm  # noqa: F401  (re-exported to the attack modules)

# Inputs may overshoot [0,1] by float error after normalization round trips; more is a user error.
_BOX_TOLERANCE = 1e-5


class Attack(ABC):
    """An untargeted attack on true labels within an L-inf or L2 ball, in pixel space [0,1].

    Subclasses implement `_perturb(x, y, eps)`; it is called with the model already in eval mode,
    x detached, and eps a (N,) tensor with at least one positive entry. It may return points
    slightly outside the ball or box: `__call__` projects them back.
    """

    def __init__(self, model: nn.Module, *, norm: str, seed: int | None = None) -> None:
        check_norm(norm)
        self.model = model
        self.norm = norm
        self.seed = seed
        self.generator: torch.Generator | None = None

    def __call__(self, x: Tensor, y: Tensor, eps: float | Tensor) -> Tensor:
        x, y = check_batch(x, y)
        eps_t = per_sample_eps(eps, x)
        if not bool((eps_t > 0).any()):
            return x.clone()
        self.generator = make_generator(self.seed, x.device)
        with eval_mode(self.model):
            x_adv = self._perturb(x, y, eps_t)
        return project(x_adv.detach(), x, eps_t, self.norm)

    @abstractmethod
    def _perturb(self, x: Tensor, y: Tensor, eps: Tensor) -> Tensor:
        """Return adversarial examples for (x, y) with per-sample budgets eps (N,)."""

    def child_seed(self) -> int:
        """A seed drawn from this call's generator, for libraries that seed torch themselves."""
        assert self.generator is not None, "child_seed is only valid inside __call__"
        return int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator,
                                 device=self.generator.device))


# ---- validation --------------------------------------------------------------------------------
def check_positive_int(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, but got {value!r}")


def check_batch(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Detached x (N, ...) in [0,1] and int64 labels y (N,)."""
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
        raise ConfigError(
            f"attacks need x of shape (N, ...) and labels y of shape (N,), but got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    if len(x) and (x.min() < -_BOX_TOLERANCE or x.max() > 1 + _BOX_TOLERANCE):
        raise ConfigError(
            f"attacks work in pixel space: x must lie in [0,1], but got values in "
            f"[{x.min().item():.4g}, {x.max().item():.4g}]; pass unnormalized inputs"
        )
    return x.detach().clamp(0, 1), y.detach().long()


def per_sample_eps(eps: float | Tensor, x: Tensor) -> Tensor:
    """eps as a float tensor (N,) on x's device; a scalar is broadcast to every sample."""
    eps_t = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
    if eps_t.ndim == 0:
        eps_t = eps_t.expand(len(x))
    if eps_t.shape != (len(x),):
        raise ConfigError(
            f"eps must be a number or a tensor of shape ({len(x)},), but got shape "
            f"{tuple(eps_t.shape)}"
        )
    if not bool(torch.isfinite(eps_t).all()) or bool((eps_t < 0).any()):
        raise ConfigError(f"eps must be finite and >= 0 (pixel units), but got {eps}")
    return eps_t.clone()


# ---- model mode and randomness -----------------------------------------------------------------
@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside the block; the previous train/eval state of every submodule after."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def make_generator(seed: int | None, device: torch.device) -> torch.Generator:
    """A private generator; seed None draws one from torch's global RNG (so manual_seed rules)."""
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, (1,)))
    return torch.Generator(device=device).manual_seed(int(seed))


@contextlib.contextmanager
def forked_rng(device: torch.device, seed: int) -> Iterator[None]:
    """Run code that seeds torch's global RNG itself without disturbing the caller's RNG."""
    # torch.manual_seed reseeds every CUDA device, so every one of them must be forked.
    devices = list(range(torch.cuda.device_count())) if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


# ---- geometry ----------------------------------------------------------------------------------
def batch_view(v: Tensor, x: Tensor) -> Tensor:
    """(N,) -> (N, 1, ..., 1) so it broadcasts against x."""
    return v.view(-1, *([1] * (x.ndim - 1)))


def lp_norm(delta: Tensor, norm: str) -> Tensor:
    """Per-sample norm (N,) of a batch of perturbations."""
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


def project(x_adv: Tensor, x: Tensor, eps: Tensor, norm: str) -> Tensor:
    """A point of the eps ball around x and of the box [0,1], close to x_adv.

    Clamp to the box first, then pull into the ball (L-inf: per coordinate, which is the exact
    projection onto the intersection; L2: radial scaling, which stays in the box because the box is
    convex and holds x). Box first matters for L2: scaling first and clamping after would shrink
    the perturbation below eps wherever pixels saturate, wasting budget.
    """
    delta = x_adv.clamp(0, 1) - x
    if norm == "linf":
        radius = batch_view(eps, x)
        delta = torch.maximum(torch.minimum(delta, radius), -radius)
    else:
        length = batch_view(lp_norm(delta, "l2"), x)
        delta = delta * torch.clamp(batch_view(eps, x) / length.clamp_min(1e-12), max=1.0)
    return (x + delta).clamp(0, 1)  # the clamp only removes float rounding here


def random_start(x: Tensor, eps: Tensor, norm: str, generator: torch.Generator) -> Tensor:
    """A point drawn uniformly from the eps ball around each sample, clamped to [0,1]."""
    if norm == "linf":
        unit = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1
    else:
        # Uniform in the unit L2 ball: a Gaussian direction and radius U^(1/d).
        direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        direction = direction / batch_view(lp_norm(direction, "l2").clamp_min(1e-12), x)
        dim = math.prod(x.shape[1:])
        radius = torch.rand(len(x), generator=generator, device=x.device, dtype=x.dtype)
        unit = direction * batch_view(radius ** (1.0 / dim), x)
    return (x + unit * batch_view(eps, x)).clamp(0, 1)


def ascent_direction(grad: Tensor, norm: str) -> Tensor:
    """The steepest-ascent direction of unit norm: sign(g) for L-inf, g / ||g||_2 for L2."""
    if norm == "linf":
        return grad.sign()
    return grad / batch_view(lp_norm(grad, "l2").clamp_min(1e-12), grad)


# ---- losses ------------------------------------------------------------------------------------
def loss_and_grad(model: nn.Module, x_adv: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample CE on the true labels, its gradient w.r.t. the input, and the logits."""
    x_adv = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x_adv)
        loss = F.cross_entropy(logits, y, reduction="none")
        (grad,) = torch.autograd.grad(loss.sum(), x_adv)
    return loss.detach(), grad, logits.detach()


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 1024) -> Tensor:
    """Predicted labels (N,), in batches so large evaluation sets fit in memory."""
    return torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


def num_classes(model: nn.Module, x: Tensor) -> int:
    """model.num_classes when the model says so, else the width of its logits on one sample."""
    declared = getattr(model, "num_classes", None)
    if isinstance(declared, int):
        return declared
    with torch.no_grad():
        return int(model(x[:1]).shape[1])
