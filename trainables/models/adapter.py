"""Our model protocol around a user's own nn.Module, so trainables.metrics and
trainables.compression can read it (the audit and the post-hoc sweeps).

The metrics expect `model.head` (a Linear), `model.encoder_layers()`, `model.lipschitz_upper(p,
op_norm)`, `model.input_shape` and `model.num_classes` (see trainables/models/__init__.py). A
user's model has none of these, so `AdaptedModel` finds them:

- The model is traced with torch.fx. The head is the Linear whose output is the model's output;
  the encoder layers are the other Linear / Conv2d modules, in graph order. A model fx cannot trace
  falls back to module registration order (last Linear = head) and gets no Lipschitz bound.
- The Lipschitz bound of the features (the head's input) is propagated through the graph, node by
  node: a weight layer multiplies by op_norm, BatchNorm by its eval-mode gain, 1-Lipschitz nodes
  (ReLU, Flatten, non-overlapping pools, global means, reshapes) keep it, `a + b` adds the bounds
  of both branches (residual blocks), and arithmetic with constants (the model's own
  normalization, whatever module holds it) scales it. Biases shift but never stretch, so they do
  not enter. Any other node makes the bound unknown, with the node named in the reason.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from trainables.models._base import check_norm

OpNorm = Callable[[nn.Module, str], float]
WEIGHT_TYPES = (nn.Linear, nn.Conv2d)
# Modules that are 1-Lipschitz in L-inf and L2 (elementwise with slope <= 1, or reshapes; dropout
# is the identity in eval mode, where the audit runs).
_ONE_LIPSCHITZ_MODULES = (
    nn.ReLU, nn.ReLU6, nn.Tanh, nn.Hardtanh, nn.Sigmoid, nn.Flatten, nn.Unflatten, nn.Identity,
    nn.Dropout, nn.Dropout2d, nn.ELU, nn.GELU, nn.SiLU,
)
_ONE_LIPSCHITZ_FUNCTIONS = {
    F.relu, torch.relu, F.relu6, torch.tanh, torch.sigmoid, F.dropout, torch.flatten, F.gelu,
    F.silu, F.elu, torch.squeeze, torch.unsqueeze,
}
_ONE_LIPSCHITZ_METHODS = {
    "relu", "flatten", "view", "reshape", "contiguous", "squeeze", "unsqueeze", "tanh", "sigmoid",
}
# Producing Python ints (shapes), not activations: ignored as inputs.
_SHAPE_METHODS = {"size", "dim"}


class LipschitzUnknown(ValueError):
    """The graph holds a node without a Lipschitz rule; the message names it."""


class AdaptedModel(nn.Module):
    """A user's module mapping pixel inputs in [0, 1] to logits, with our model protocol on top.

    `skipped` maps a quantity ("lipschitz", "certificates", "layers") to why it is unavailable.
    """

    def __init__(self, net: nn.Module, input_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        self.net = net
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = int(num_classes)
        self.skipped: dict[str, str] = {}
        self._names = {id(m): name for name, m in net.named_modules()}
        try:
            self._graph: fx.GraphModule | None = fx.symbolic_trace(net)
        except Exception as err:  # noqa: BLE001 - fx raises many types; the reason is reported
            self._graph = None
            self.skipped["lipschitz"] = (
                f"torch.fx cannot trace the model ({type(err).__name__}: {_first_line(err)})"
            )
        head, encoder = self._find_layers()
        # Plain attributes, not submodules: `net` already owns them (no double registration).
        object.__setattr__(self, "_head", head)
        object.__setattr__(self, "_encoder", encoder)
        if head is None:
            self.skipped["certificates"] = (
                "the model's output is not produced by an nn.Linear layer, so there is no head "
                "whose rows the certificates need"
            )
        if not encoder:
            self.skipped["layers"] = "the model has no nn.Linear / nn.Conv2d layer before its head"

    # ---- the protocol -------------------------------------------------------------------------
    @property
    def head(self) -> nn.Linear:
        if self._head is None:
            raise LipschitzUnknown(self.skipped["certificates"])
        return self._head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The head's input, captured by a forward hook."""
        captured: list[torch.Tensor] = []
        handle = self.head.register_forward_hook(lambda m, inp, out: captured.append(inp[0]))
        try:
            self.net(x)
        finally:
            handle.remove()
        return captured[0].flatten(1)

    def encoder_layers(self) -> list[tuple[str, nn.Module]]:
        return list(self._encoder)

    def lipschitz_upper(self, p: str, op_norm: OpNorm) -> float:
        """Upper bound on the Lipschitz constant of the head's input from pixel space in norm p."""
        check_norm(p)
        if self._graph is None:
            raise LipschitzUnknown(self.skipped["lipschitz"])
        head_node = self._head_node()
        if head_node is None:
            raise LipschitzUnknown(self.skipped["certificates"])
        bounds = _propagate(self._graph, p, op_norm, until=head_node)
        return float(bounds[head_node.args[0]])

    # ---- structure --------------------------------------------------------------------------
    def _head_node(self) -> fx.Node | None:
        assert self._graph is not None
        output = next(n for n in self._graph.graph.nodes if n.op == "output")
        node = output.args[0]
        if isinstance(node, fx.Node) and node.op == "call_module":
            module = self._graph.get_submodule(node.target)
            if isinstance(module, nn.Linear):
                return node
        return None

    def _find_layers(self) -> tuple[nn.Linear | None, list[tuple[str, nn.Module]]]:
        if self._graph is not None:
            order = [
                (str(n.target), self._graph.get_submodule(n.target))
                for n in self._graph.graph.nodes if n.op == "call_module"
            ]
            head_node = self._head_node()
            head = self._graph.get_submodule(head_node.target) if head_node is not None else None
        else:
            order = list(self.net.named_modules())
            linears = [m for _, m in order if isinstance(m, nn.Linear)]
            head = linears[-1] if linears else None
        seen: set[int] = set()
        encoder = []
        for name, module in order:
            if isinstance(module, WEIGHT_TYPES) and module is not head and id(module) not in seen:
                seen.add(id(module))
                encoder.append((self._names.get(id(module), name), module))
        return head, encoder


def _propagate(graph: fx.GraphModule, p: str, op_norm: OpNorm, *, until: fx.Node
               ) -> dict[fx.Node, float]:
    """Lipschitz bound of every node's output w.r.t. the model input, up to `until`.

    Constants (parameters / buffers read by get_attr, numbers) have bound 0 and keep their value,
    so `(x - mean) / std` is recognised as a scaling by 1 / min |std|.
    """
    bounds: dict[fx.Node, float] = {}
    constants: dict[fx.Node, Any] = {}
    shapes: set[fx.Node] = set()
    for node in graph.graph.nodes:
        if node is until:
            break
        if node.op == "placeholder":
            bounds[node] = 1.0
        elif node.op == "get_attr":
            constants[node] = _attr(graph, node.target)
        elif node.op == "call_module":
            module = graph.get_submodule(node.target)
            bounds[node] = _module_factor(module, p, op_norm, node) * bounds[_tensor_arg(node)]
        elif node.op in ("call_function", "call_method"):
            if node.op == "call_method" and node.target in _SHAPE_METHODS or (
                node.target is getattr and node.args[1] in ("shape", "ndim")
            ) or (node.target is operator.getitem and node.args[0] in shapes):
                shapes.add(node)
                continue
            bounds[node] = _function_bound(node, p, bounds, constants)
        else:
            raise LipschitzUnknown(f"graph node {node.op} {node.target} has no Lipschitz rule")
    return bounds


def _module_factor(module: nn.Module, p: str, op_norm: OpNorm, node: fx.Node) -> float:
    if isinstance(module, (*WEIGHT_TYPES, nn.modules.batchnorm._BatchNorm)):
        return op_norm(module, p)
    if isinstance(module, _ONE_LIPSCHITZ_MODULES):
        return 1.0
    if isinstance(module, nn.LeakyReLU):
        return max(1.0, abs(module.negative_slope))
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        return _pool_factor(module.kernel_size, module.stride, module.dilation
                            if isinstance(module, nn.MaxPool2d) else 1, p, node)
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        # Global pooling (1x1 output): one window per channel, 1-Lipschitz in both norms; any
        # adaptive pool is 1-Lipschitz in L-inf (each output is a mean / max of inputs).
        size = module.output_size
        if size in (1, (1, 1)) or p == "linf":
            return 1.0
    raise LipschitzUnknown(
        f"module {node.target} ({type(module).__name__}) has no Lipschitz rule in {p}"
    )


def _pool_factor(kernel, stride, dilation, p: str, node: fx.Node) -> float:
    """Max / average pools are 1-Lipschitz in L-inf; in L2 when windows do not overlap."""
    if p == "linf":
        return 1.0
    k = _pair(kernel)
    s = _pair(stride if stride is not None else kernel)
    d = _pair(dilation)
    if all(si >= di * (ki - 1) + 1 for ki, si, di in zip(k, s, d)):
        return 1.0
    raise LipschitzUnknown(f"pool {node.target} has overlapping windows; no L2 rule")


def _function_bound(node: fx.Node, p: str, bounds: dict, constants: dict) -> float:
    target = node.target
    tensor_args = [a for a in node.args if isinstance(a, fx.Node) and a in bounds]
    name = target if isinstance(target, str) else getattr(target, "__name__", str(target))
    if target in _ONE_LIPSCHITZ_FUNCTIONS or (node.op == "call_method"
                                              and target in _ONE_LIPSCHITZ_METHODS):
        return bounds[node.args[0]]
    if target in (F.max_pool2d, F.avg_pool2d):
        kernel = node.kwargs.get("kernel_size", node.args[1] if len(node.args) > 1 else None)
        stride = node.kwargs.get("stride", node.args[2] if len(node.args) > 2 else None)
        return _pool_factor(kernel, stride or None, 1, p, node) * bounds[node.args[0]]
    if target in (torch.mean, F.adaptive_avg_pool2d) or (
        node.op == "call_method" and target == "mean"
    ):
        # A mean of k entries moves by at most the largest entry change (L-inf) and by at most
        # 1/sqrt(k) of the window's L2 change; disjoint windows: factor <= 1 in both norms.
        return bounds[node.args[0]]
    if target in (operator.add, torch.add, operator.sub, torch.sub) or (
        node.op == "call_method" and target in ("add", "sub")
    ):
        return sum(bounds[a] for a in tensor_args)
    if target in (operator.truediv, torch.div) or (node.op == "call_method" and target == "div"):
        num, den = node.args[0], node.args[1]
        if num in bounds and den not in bounds:
            return bounds[num] / _min_abs(_value(den, constants), node)
    if target in (operator.mul, torch.mul) or (node.op == "call_method" and target == "mul"):
        a, b = node.args[0], node.args[1]
        if (a in bounds) != (b in bounds):
            live, const = (a, b) if a in bounds else (b, a)
            return bounds[live] * _max_abs(_value(const, constants))
    if target is operator.neg or (node.op == "call_method" and target == "neg"):
        return bounds[node.args[0]]
    if not tensor_args:
        return 0.0  # arithmetic on constants only
    raise LipschitzUnknown(f"operation {name} ({node.name}) has no Lipschitz rule")


def _value(arg: Any, constants: dict) -> Any:
    return constants[arg] if isinstance(arg, fx.Node) else arg


def _min_abs(value: Any, node: fx.Node) -> float:
    smallest = float(torch.as_tensor(value).abs().min())
    if smallest <= 0:
        raise LipschitzUnknown(f"{node.name} divides by zero")
    return smallest


def _max_abs(value: Any) -> float:
    return float(torch.as_tensor(value).abs().max())


def _attr(graph: fx.GraphModule, target: str) -> Any:
    obj: Any = graph
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj.detach() if isinstance(obj, torch.Tensor) else obj


def _tensor_arg(node: fx.Node) -> fx.Node:
    return node.args[0]


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value), int(value))


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:160] if text else ""


def lipschitz_or_reason(model: AdaptedModel, p: str, op_norm: OpNorm) -> tuple[float, str]:
    """(bound, "") or (nan, why it is unknown)."""
    try:
        return model.lipschitz_upper(p, op_norm), ""
    except LipschitzUnknown as err:
        return math.nan, str(err)


__all__ = ["AdaptedModel", "LipschitzUnknown", "lipschitz_or_reason"]
