"""posthoc_audit: compress a user's trained model after the fact and audit each result.

    python -m sweep.launch --space posthoc_audit --scale cpu \\
        --set model_factory=/abs/models.py:build --set model_weights=/abs/model.pt \\
        --set data_path=/abs/test.npz          # or --dataset fashion_mnist

Side by side over one grid of kept fractions of each encoder layer's weights (trainables.posthoc):
structured compression (SVD truncation, row / filter pruning) and unstructured magnitude pruning
(per layer and global), plus the uncompressed model as the reference point. Every point is
evaluated with the final protocol (the attack ensemble, certificates); --set finetune_epochs=N
adds projected fine-tuning (it needs training samples: x_train / y_train in the .npz, or a
dataset).
"""

from __future__ import annotations

from sweep.spaces._registry import register
from sweep.spaces._space import Cases, Scale, Space

METHODS = ("svd_truncate", "prune_rows", "magnitude_layer", "magnitude_global")


def posthoc_knob(keep: tuple[float, ...]) -> Cases:
    return Cases(
        ({"compression": "none", "keep_frac": 1.0},)
        + tuple({"compression": m, "keep_frac": k} for m in METHODS for k in keep)
    )


_EVAL_SMOKE = {"n_eval": 32, "attack": "apgd-ce", "attack_steps": 5, "norms": ("linf",),
               "eps_linf": (0.05,), "eps_l2": (0.5,)}
_EVAL_CPU = {"n_eval": 1000, "attack": "ensemble", "norms": ("linf", "l2"),
             "eps_linf": (0.01, 0.02, 0.04), "eps_l2": (0.1, 0.25, 0.5)}

register(
    Space(
        name="posthoc_audit",
        description="your model (--set model_factory=, model_weights=, data_path=) compressed "
                    "post hoc: SVD / row pruning vs magnitude pruning over kept fractions",
        # One result per trial (iteration 1): epochs=1 makes it count as completed.
        fixed={"finetune_epochs": 0, "epochs": 1},
        scales={
            "smoke": Scale(fixed=_EVAL_SMOKE, params={"knob": posthoc_knob((0.25,))}),
            "cpu": Scale(fixed=_EVAL_CPU,
                         params={"knob": posthoc_knob((0.05, 0.1, 0.2, 0.35, 0.5, 0.75))}),
            "paper": Scale(fixed=_EVAL_CPU,
                           params={"knob": posthoc_knob((0.02, 0.05, 0.1, 0.2, 0.35, 0.5,
                                                         0.75))}),
        },
        objective="spectral_comp",
        required=("model_factory",),
    )
)
