"""Loading what a user brings to the audit: a model factory, its weights and labelled samples.

Every failure is an AuditInputError (a SweepError: the CLIs print one line and exit 2) naming the
rule, the bad value and what to do. Nothing user-supplied is evaluated: the factory is found with
importlib, weights are read with torch.load(weights_only=True) (a pickle that would run code is
refused), arrays with numpy.load(allow_pickle=False).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainables.errors import SweepError


class AuditInputError(SweepError):
    """A user-supplied model, weights file or data file that cannot be audited."""


def load_factory(spec: str):
    """The callable named by "MODULE:FACTORY" (MODULE dotted, importable from the working
    directory or PYTHONPATH) or "PATH.py:FACTORY"."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr or not attr.isidentifier():
        raise AuditInputError(
            f"--model must be MODULE:FACTORY (e.g. mymodels:build), but got {spec!r}"
        )
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise AuditInputError(f"--model file {module_name} does not exist; check the path")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            cwd = os.getcwd()
            if cwd not in sys.path:
                sys.path.insert(0, cwd)  # "importable from the working directory"
            module = importlib.import_module(module_name)
    except AuditInputError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure of user code is a bad input here
        raise AuditInputError(
            f"--model module {module_name!r} cannot be imported ({type(err).__name__}: "
            f"{_line(err)}); put it in the working directory or on PYTHONPATH"
        ) from None
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise AuditInputError(
            f"--model {spec!r}: {attr!r} is not a callable in {module_name}; name a function "
            "that takes no arguments and returns a torch.nn.Module"
        )
    return factory


def build_user_model(spec: str, weights: str | None = None) -> nn.Module:
    """Call the factory, check it returned a Module, load the state dict (strict)."""
    factory = load_factory(spec)
    try:
        model = factory()
    except Exception as err:  # noqa: BLE001
        raise AuditInputError(
            f"--model factory {spec!r} failed when called with no arguments "
            f"({type(err).__name__}: {_line(err)}); it must build the model without arguments"
        ) from None
    if not isinstance(model, nn.Module):
        raise AuditInputError(
            f"--model factory {spec!r} returned {type(model).__name__}, not a torch.nn.Module"
        )
    if weights is not None:
        load_weights(model, weights)
    return model.float().eval()


def load_weights(model: nn.Module, path: str) -> None:
    if not Path(path).is_file():
        raise AuditInputError(f"--weights file {path} does not exist; check the path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - unpickling refusals come as several types
        raise AuditInputError(
            f"--weights {path} is not a plain state_dict torch.load(weights_only=True) accepts "
            f"({type(err).__name__}: {_line(err)}); save it with torch.save(model.state_dict())"
        ) from None
    if not isinstance(state, dict):
        raise AuditInputError(
            f"--weights {path} holds a {type(state).__name__}, not a state_dict; save it with "
            "torch.save(model.state_dict(), PATH)"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise AuditInputError(
            f"--weights {path} do not fit the model ({_line(err)}); use the weights saved from "
            "the model this factory builds"
        ) from None


def load_npz(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """x (float32, in [0, 1]) and y (int64) from an .npz holding arrays `x` and `y`."""
    if not Path(path).is_file():
        raise AuditInputError(f"--data file {path} does not exist; check the path")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = [k for k in ("x", "y") if k not in arrays.files]
            if missing:
                raise AuditInputError(
                    f"--data {path} lacks array(s) {missing}; save with np.savez(PATH, x=..., y=...)"
                )
            x, y = arrays["x"], arrays["y"]
    except AuditInputError:
        raise
    except Exception as err:  # noqa: BLE001 - zip / format / pickle refusals
        raise AuditInputError(
            f"--data {path} is not a readable .npz without pickles ({type(err).__name__}: "
            f"{_line(err)}); save it with np.savez(PATH, x=..., y=...)"
        ) from None
    return check_samples(x, y, source=f"--data {path}")


def check_samples(x, y, *, source: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype.kind not in "fiu" or x.ndim < 2:
        raise AuditInputError(
            f"{source}: x must be a float array (N, ...) of inputs in [0, 1], but got dtype "
            f"{x.dtype} shape {x.shape}"
        )
    if y.dtype.kind not in "iu" or y.ndim != 1 or len(y) != len(x):
        raise AuditInputError(
            f"{source}: y must be integer labels of shape ({len(x)},), but got dtype {y.dtype} "
            f"shape {y.shape}"
        )
    if len(x) == 0:
        raise AuditInputError(f"{source}: holds no samples")
    lo, hi = float(np.min(x)), float(np.max(x))
    if not (math.isfinite(lo) and math.isfinite(hi) and lo >= 0.0 and hi <= 1.0):
        raise AuditInputError(
            f"{source}: x must lie in [0, 1] (pixel space; the model normalizes itself), but it "
            f"spans [{lo:g}, {hi:g}]; divide by 255 or undo your normalization"
        )
    if int(y.min()) < 0:
        raise AuditInputError(f"{source}: labels must be >= 0, but the smallest is {int(y.min())}")
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)


def check_model_output(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Run one sample; the output must be (1, K) logits with every label < K. Returns K."""
    try:
        with torch.no_grad():
            out = model(x[:1])
    except Exception as err:  # noqa: BLE001
        raise AuditInputError(
            f"the model fails on an input of shape {tuple(x[:1].shape)} ({type(err).__name__}: "
            f"{_line(err)}); give samples of the model's input shape"
        ) from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 1:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise AuditInputError(
            f"the model must map a batch (N, ...) to logits (N, classes), but one sample gave "
            f"{shape}"
        )
    classes = int(out.shape[1])
    if int(y.max()) >= classes:
        raise AuditInputError(
            f"labels must be < the model's {classes} outputs, but the largest is {int(y.max())}"
        )
    return classes


def _line(err: BaseException) -> str:
    """The message on one line (state_dict errors span several), at most 240 characters."""
    return " ".join(str(err).split())[:240]


__all__ = [
    "AuditInputError",
    "build_user_model",
    "check_model_output",
    "check_samples",
    "load_factory",
    "load_npz",
    "load_weights",
]
