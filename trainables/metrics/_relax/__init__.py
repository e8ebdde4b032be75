"""Linear-relaxation certificates (IBP, CROWN) for networks that are chains of Linear / Conv2d /
ReLU / Flatten / BatchNorm (eval) / max-pool layers: margin lower bounds, certified accuracy and a
per-sample certified radius. See _bounds.py for the threat model and the choices made."""

from trainables.metrics._relax._bounds import (
    METHODS,
    certified_accuracy_relaxed,
    certified_by_bounds,
    certified_mask,
    certified_radius_relaxed,
    margin_lower_bounds,
)
from trainables.metrics._relax._chain import Chain, to_chain

__all__ = [
    "METHODS",
    "Chain",
    "certified_accuracy_relaxed",
    "certified_by_bounds",
    "certified_mask",
    "certified_radius_relaxed",
    "margin_lower_bounds",
    "to_chain",
]
