"""A Tune callback that is built where it runs, from an import path.

Tune pickles callbacks into the experiment (and unpickles them on restore); a callback that owns
a server socket cannot be pickled. This wrapper pickles as (import path, kwargs) and builds the
real callback in `setup`. A missing module or class is a warning, not a failed sweep.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from ray.tune import Callback

from trainables.errors import SweepError

log = logging.getLogger(__name__)


def load_callback_class(target: str) -> type | None:
    """'package.module:Class' -> the class, or None (with a warning) when it is not there."""
    module_name, _, class_name = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        log.warning("callback %s is not available (%s); continuing without it", target, err)
        return None


class DeferredCallback(Callback):
    def __init__(self, target: str, **kwargs: Any) -> None:
        self.target = target
        self.kwargs = kwargs
        self._inner: Callback | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"target": self.target, "kwargs": self.kwargs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["target"], **state["kwargs"])

    def setup(self, **info: Any) -> None:
        cls = load_callback_class(self.target)
        if cls is None:
            return
        try:
            inner = cls(**self.kwargs)
            inner.setup(**info)
        except (OSError, SweepError, ValueError, RuntimeError) as err:
            # e.g. a metrics port taken since the launcher checked it: the sweep matters more
            log.warning("callback %s failed to start (%s); continuing without it", self.target, err)
            return
        self._inner = inner

    def _forward(self, event: str, **info: Any) -> None:
        if self._inner is not None:
            getattr(self._inner, event)(**info)

    def on_step_begin(self, **info: Any) -> None:
        self._forward("on_step_begin", **info)

    def on_step_end(self, **info: Any) -> None:
        self._forward("on_step_end", **info)

    def on_trial_start(self, **info: Any) -> None:
        self._forward("on_trial_start", **info)

    def on_trial_restore(self, **info: Any) -> None:
        self._forward("on_trial_restore", **info)

    def on_trial_save(self, **info: Any) -> None:
        self._forward("on_trial_save", **info)

    def on_trial_result(self, **info: Any) -> None:
        self._forward("on_trial_result", **info)

    def on_trial_complete(self, **info: Any) -> None:
        self._forward("on_trial_complete", **info)

    def on_trial_recover(self, **info: Any) -> None:
        self._forward("on_trial_recover", **info)

    def on_trial_error(self, **info: Any) -> None:
        self._forward("on_trial_error", **info)

    def on_checkpoint(self, **info: Any) -> None:
        self._forward("on_checkpoint", **info)

    def on_experiment_end(self, **info: Any) -> None:
        self._forward("on_experiment_end", **info)

    def get_state(self) -> dict | None:
        return self._inner.get_state() if self._inner is not None else None

    def set_state(self, state: dict) -> None:
        if self._inner is not None:
            self._inner.set_state(state)
