"""The sweep service: named spaces, launcher, Tuner assembly, Parquet result store.

Import-light: spaces, options and the store writer need no Ray; the Ray-facing names (the
service, the Tune callbacks, the trainable) load on first use.
"""

from __future__ import annotations

from typing import Any

from sweep.options import LaunchOptions
from sweep.preflight import Launch, prepare_launch
from sweep.spaces import Space, get_space, list_spaces, register
from sweep.store import ResultStore

__all__ = [
    "Launch",
    "LaunchOptions",
    "ResultStore",
    "Space",
    "StoreCallback",
    "SweepOutcome",
    "get_space",
    "list_spaces",
    "prepare_launch",
    "register",
    "run_sweep",
    "tune_trial",
]

_LAZY = {
    "run_sweep": "sweep.service",
    "SweepOutcome": "sweep.service",
    "StoreCallback": "sweep.store",
    "tune_trial": "sweep.trainable",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
