"""A model read as a chain of operations (trainables.metrics._relax._ops), for bound propagation.

Supported: the project's FCN (dense or factorized) and CNN (conv-BN-ReLU stages, 2x2 max-pools,
global average pool), and any torch.nn.Sequential (nested allowed) of Linear, Conv2d, ReLU,
Flatten, BatchNorm1d/2d (read with their running statistics, i.e. as in eval mode), MaxPool2d
(non-overlapping), AdaptiveAvgPool2d(1), Identity, Dropout (identity in eval mode), the project's
low-rank layers (multiplied out: interval bounds through the product are tighter than through the
factors) and input normalization (a module with `mean` / `std` tensors and no parameters). The
ResNet's residual blocks are not supported (its graph is not a chain): a ConfigError says so and
callers fall back to the global certificate.

Every chain is checked against the model on the batch it certifies (`Chain.check`), so a model
whose forward does not follow its modules' order is refused instead of certified wrongly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from trainables.errors import ConfigError
from trainables.metrics._relax._ops import (
    Conv,
    Dense,
    GlobalMean,
    MaxPool,
    Op,
    ReLU,
    Reshape,
    Scale,
)
from trainables.models import CNN, FCN, LowRankConv2d, LowRankLinear, ResNet18

SUPPORTED = (
    "Linear, Conv2d, ReLU, Flatten, BatchNorm1d/2d, MaxPool2d (kernel == stride, no padding), "
    "AdaptiveAvgPool2d(1), Identity, Dropout, LowRankLinear, LowRankConv2d, Normalize"
)


class Chain:
    """ops applied in order to (B, *input_shape) pixel input give the logits (B, K)."""

    def __init__(self, ops: list[Op], input_shape: tuple[int, ...], dtype: torch.dtype) -> None:
        self.ops, self.input_shape, self.dtype = ops, tuple(input_shape), dtype
        h = torch.zeros(1, *self.input_shape, dtype=dtype)
        for op in ops:  # record each op's per-sample input shape (backward needs it)
            op.in_shape = tuple(h.shape[1:])
            h = op.forward(h)
        if h.dim() != 2:
            raise ConfigError(
                f"the linear relaxation needs a network ending in logits (N, K), but its last "
                f"module gives shape {tuple(h.shape)}; end the network with a Linear layer"
            )
        self.num_classes = h.shape[1]

    def forward(self, x: Tensor) -> Tensor:
        h = x.to(self.dtype)
        for op in self.ops:
            h = op.forward(h)
        return h

    def check(self, x: Tensor, logits: Tensor) -> None:
        """Raise unless the chain reproduces the model's logits on x (float tolerance)."""
        ours = self.forward(x)
        if ours.shape != logits.shape:
            gap = math.inf
        else:
            gap = float((ours - logits.to(ours.dtype)).abs().max()) if len(x) else 0.0
        scale = 1.0 + float(logits.abs().max()) if len(x) else 1.0
        if not gap <= 1e-4 * scale:
            raise ConfigError(
                f"the linear relaxation's reading of the model as a chain of modules differs from "
                f"model(x) by {gap:.3g}: its forward is not its modules applied in order; use "
                "the global certificate (trainables.metrics.certified_radius) for this model"
            )


def to_chain(model: nn.Module, input_shape: tuple[int, ...], dtype=torch.float64) -> Chain:
    """Read `model` as a chain of ops on per-sample input shape `input_shape` (ConfigError if it
    holds a module the relaxation does not support)."""
    return Chain(list(_ops_of(_modules_of(model), dtype)), input_shape, dtype)


def _modules_of(model: nn.Module) -> list[nn.Module]:
    if isinstance(model, FCN):
        modules: list[nn.Module] = [model.normalize, nn.Flatten()]
        for layer in model.layers:
            modules += [layer, nn.ReLU()]
        return [*modules, model.head]
    if isinstance(model, CNN):
        modules = [model.normalize]
        last = len(model.convs) - 1
        for i, (conv, bn) in enumerate(zip(model.convs, model.norms)):
            modules += [conv, bn, nn.ReLU()]
            if i < last:
                modules.append(nn.MaxPool2d(2))
        return [*modules, nn.AdaptiveAvgPool2d(1), nn.Flatten(), model.head]
    if isinstance(model, ResNet18):
        raise ConfigError(
            "the linear relaxation does not support residual blocks (ResNet18's BasicBlock: its "
            "graph is not a chain); use the global certificate (trainables.metrics."
            "certified_radius) for resnet18"
        )
    if isinstance(model, nn.Sequential):
        return list(_flatten_sequential(model))
    raise ConfigError(
        f"the linear relaxation supports the project's fcn and cnn and torch.nn.Sequential "
        f"networks of {SUPPORTED}, but got a {type(model).__name__}; wrap it as an nn.Sequential "
        "or use the global certificate (trainables.metrics.certified_radius)"
    )


def _flatten_sequential(seq: nn.Sequential) -> Iterable[nn.Module]:
    for module in seq:
        if isinstance(module, nn.Sequential):
            yield from _flatten_sequential(module)
        else:
            yield module


def _t(tensor: Tensor | None, dtype) -> Tensor | None:
    return None if tensor is None else tensor.detach().to("cpu", dtype)


def _ops_of(modules: list[nn.Module], dtype) -> Iterable[Op]:
    for module in modules:
        if isinstance(module, (nn.Identity, nn.Dropout)):
            continue
        if isinstance(module, LowRankLinear):  # the product in float64, not float32's u @ v
            yield Dense(_t(module.u, dtype) @ _t(module.v, dtype), None)
        elif isinstance(module, nn.Linear):
            yield Dense(_t(module.weight, dtype), _t(module.bias, dtype))
        elif isinstance(module, (nn.Conv2d, LowRankConv2d)):
            yield _conv(module, dtype)
        elif isinstance(module, nn.ReLU):
            yield ReLU()
        elif isinstance(module, nn.Flatten):
            if module.start_dim != 1 or module.end_dim != -1:
                raise _unsupported(module, "only Flatten(start_dim=1, end_dim=-1)")
            yield _Flatten()
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            yield _batch_norm(module, dtype)
        elif isinstance(module, nn.MaxPool2d):
            yield _max_pool(module)
        elif isinstance(module, nn.AdaptiveAvgPool2d):
            if module.output_size not in (1, (1, 1)):
                raise _unsupported(module, "only AdaptiveAvgPool2d(1)")
            yield GlobalMean()
        elif _is_normalization(module):
            std = _t(module.std, dtype)
            yield Scale(1.0 / std, -_t(module.mean, dtype) / std)
        else:
            raise _unsupported(module, f"supported modules: {SUPPORTED}")


class _Flatten(Reshape):
    """Reshape whose output shape is known once the input shape is."""

    def __init__(self) -> None:
        super().__init__(())

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(len(x), -1)

    forward_abs = forward_sq = forward


def _is_normalization(module: nn.Module) -> bool:
    return (
        isinstance(getattr(module, "mean", None), Tensor)
        and isinstance(getattr(module, "std", None), Tensor)
        and not any(True for _ in module.parameters())
    )


def _conv(module: nn.Module, dtype) -> Conv:
    if getattr(module, "groups", 1) != 1 or tuple(getattr(module, "dilation", (1, 1))) != (1, 1):
        raise _unsupported(module, "only groups=1 and dilation=1 convolutions")
    if getattr(module, "padding_mode", "zeros") != "zeros" or isinstance(module.padding, str):
        raise _unsupported(module, "only numeric zero padding")
    if isinstance(module, LowRankConv2d):
        weight = torch.einsum("or,rchw->ochw", _t(module.u, dtype), _t(module.v, dtype))
    else:
        weight = _t(module.weight, dtype)
    return Conv(weight, _t(module.bias, dtype) if isinstance(module, nn.Conv2d) else None,
                module.stride, module.padding)


def _batch_norm(module: nn.Module, dtype) -> Scale:
    if module.running_mean is None or module.running_var is None:
        raise _unsupported(module, "BatchNorm needs running statistics (track_running_stats)")
    scale = 1.0 / torch.sqrt(_t(module.running_var, dtype) + module.eps)
    shift = -_t(module.running_mean, dtype) * scale
    if module.affine:
        scale, shift = scale * _t(module.weight, dtype), shift * _t(module.weight, dtype)
        shift = shift + _t(module.bias, dtype)
    view = (-1, 1, 1) if isinstance(module, nn.BatchNorm2d) else (-1,)
    return Scale(scale.reshape(view), shift.reshape(view))


def _max_pool(module: nn.MaxPool2d) -> MaxPool:
    k = module.kernel_size if isinstance(module.kernel_size, int) else None
    if isinstance(module.kernel_size, tuple) and len(set(module.kernel_size)) == 1:
        k = module.kernel_size[0]
    stride = module.stride if module.stride is not None else module.kernel_size
    stride = stride if isinstance(stride, int) else (stride[0] if len(set(stride)) == 1 else -1)
    if k is None or stride != k or module.padding not in (0, (0, 0)) or module.ceil_mode \
            or module.dilation not in (1, (1, 1)):
        raise _unsupported(module, "only MaxPool2d with square kernel == stride, no padding")
    return MaxPool(k)


def _unsupported(module: nn.Module, what: str) -> ConfigError:
    return ConfigError(
        f"the linear relaxation does not support module {module!r} ({what}); use the global "
        "certificate (trainables.metrics.certified_radius) for this model"
    )
