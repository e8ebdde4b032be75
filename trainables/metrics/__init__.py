"""Compressibility, operator norms, Lipschitz bounds, certificates and loss-gap estimates
(THEORY.md). Everything reads the model protocol stated in trainables/models/__init__.py."""

from trainables.metrics._alignment import data_alignment, perturbation_alignment
from trainables.metrics._certify import (
    CE_GRADIENT_BOUND,
    certified_accuracy,
    certified_radius,
    loss_gap_bound,
)
from trainables.metrics._compressibility import comp_at_kappas, comp_k
from trainables.metrics._exact import exact_min_margins, exact_robust_mask
from trainables.metrics._estimates import (
    SensitivityEstimates,
    alignment_estimate_gap,
    first_order_gap,
    input_gradient_norms,
    jacobian_op_norms,
    sensitivity_estimates,
)
from trainables.metrics._intervals import clopper_pearson, wilson
from trainables.metrics._layers import layer_metrics, network_summary
from trainables.metrics._lipschitz import head_norm, lipschitz
from trainables.metrics._operator_norms import conv_spectral_norm_lower, op_norm
from trainables.metrics._relax import (
    certified_accuracy_relaxed,
    certified_by_bounds,
    certified_mask,
    certified_radius_relaxed,
    margin_lower_bounds,
)

__all__ = [
    "CE_GRADIENT_BOUND",
    "SensitivityEstimates",
    "alignment_estimate_gap",
    "certified_accuracy",
    "certified_accuracy_relaxed",
    "certified_by_bounds",
    "certified_mask",
    "certified_radius_relaxed",
    "certified_radius",
    "clopper_pearson",
    "comp_at_kappas",
    "comp_k",
    "conv_spectral_norm_lower",
    "exact_min_margins",
    "exact_robust_mask",
    "first_order_gap",
    "head_norm",
    "input_gradient_norms",
    "jacobian_op_norms",
    "layer_metrics",
    "lipschitz",
    "loss_gap_bound",
    "margin_lower_bounds",
    "network_summary",
    "op_norm",
    "data_alignment",
    "perturbation_alignment",
    "sensitivity_estimates",
    "wilson",
]
