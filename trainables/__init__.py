"""What runs inside one trial: data, models, compression, attacks, metrics, the trial loop.

Import-light: `import trainables.schema` does not import torch; the heavy names below load lazily.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Trial", "TrialConfig", "run_trial"]


def __getattr__(name: str) -> Any:
    if name in ("Trial", "run_trial"):
        from trainables import trial

        return getattr(trial, name)
    if name == "TrialConfig":
        from trainables.config import TrialConfig

        return TrialConfig
    raise AttributeError(name)
