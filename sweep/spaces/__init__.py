"""Named sweep spaces. Add one: a module here that calls `register(Space(...))`, plus its import
line below (before `controls`, which derives the _fixed and _rescaled variants of every family)."""

from sweep.spaces import (  # noqa: F401
    adversarial,
    mechanism,
    neuron,
    posthoc,
    smoke,
    spectral,
    transfer,
    uap,
)
from sweep.spaces import controls  # noqa: F401  (last: derives variants of the spaces above)
from sweep.spaces._registry import get_space, list_spaces, register
from sweep.spaces._space import (
    OBJECTIVES,
    SCALES,
    Cases,
    Grid,
    IntRange,
    LogUniform,
    Plan,
    Scale,
    Space,
    Uniform,
    column_type,
    column_value,
    configured_epochs,
    trial_options,
)

__all__ = [
    "OBJECTIVES",
    "SCALES",
    "Cases",
    "Grid",
    "IntRange",
    "LogUniform",
    "Plan",
    "Scale",
    "Space",
    "Uniform",
    "column_type",
    "column_value",
    "configured_epochs",
    "get_space",
    "list_spaces",
    "register",
    "trial_options",
]
