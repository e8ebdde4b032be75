"""Ray Tune callbacks that pickle as their constructor arguments only.

Tune pickles its callbacks with the experiment (tuner.pkl) and unpickles them on Tuner.restore.
Servers, locks, registries and store buffers cannot (and must not) travel, so each callback keeps
the arguments it was built from in `self._args` and an unpickled copy runs `__init__` again.
"""

from __future__ import annotations

from typing import Any


class PicklesAsArguments:
    """Mixin: `__init__` records its keyword arguments in `self._args`; pickling keeps only them."""

    _args: dict[str, Any]

    def __getstate__(self) -> dict[str, Any]:
        return dict(self._args)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)
