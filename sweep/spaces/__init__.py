"""Named sweep spaces. Add one: a module here that calls `register(Space(...))`, plus its import
line below."""

from sweep.spaces import adversarial, neuron, posthoc, smoke, spectral, transfer, uap  # noqa: F401
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
    "get_space",
    "list_spaces",
    "register",
    "trial_options",
]
