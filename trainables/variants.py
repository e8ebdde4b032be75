"""The names of every variant (datasets, models, compressions, attacks), without torch.

The sweep driver validates thousands of trial configs by name (sweep.spaces at import, the
launcher, the store callback) and never builds a model: importing the registries there pulled in
torch, about 230 MiB of driver RSS for nothing (bench/driver_memory.py). So the names live here,
and each registry checks at its own import that its keys are exactly these, in this order: a
variant added to a registry but not here (or the reverse) fails in the first trial process and in
the registry's tests, never silently.

Adding a variant: its module, its registry line, and its name here.
"""

from __future__ import annotations

from collections.abc import Iterable

VARIANTS: dict[str, tuple[str, ...]] = {
    "DATASETS": ("gaussian", "teacher", "digits", "fashion_mnist", "mnist", "cifar10"),
    "MODELS": ("fcn", "cnn", "resnet18"),
    "COMPRESSIONS": (
        "none",
        "l1",
        "group_lasso",
        "row_sparsity",
        "nuclear",
        "rank",
        "prune_rows",
        "svd_truncate",
        "spectral_ratio",
        "magnitude_global",
        "magnitude_layer",
    ),
    "ATTACKS": ("pgd", "apgd-ce", "apgd-dlr", "autoattack", "ensemble"),
}


# The compressibility each compression raises (a LAYERS_COLUMNS prefix, "" for none): the class
# attribute `raises` of trainables.compression, kept here for readers without torch (the analysis
# picks each knob's findings axis by it); the compression registry checks the two agree.
RAISES: dict[str, str] = {
    "none": "",
    "l1": "neuron_comp_l1",
    "group_lasso": "neuron_comp_l2",
    "row_sparsity": "neuron_comp_l2",
    "nuclear": "spectral_comp",
    "rank": "spectral_comp",
    "prune_rows": "neuron_comp_l2",
    "svd_truncate": "spectral_comp",
    "spectral_ratio": "spectral_comp",
    "magnitude_global": "neuron_comp_l1",
    "magnitude_layer": "neuron_comp_l1",
}


def check_registry(kind: str, registry: Iterable[str]) -> None:
    """Raise if a registry's keys differ from VARIANTS[kind] (called by each registry module)."""
    keys = tuple(registry)
    if keys != VARIANTS[kind]:
        raise RuntimeError(
            f"the {kind} registry has {list(keys)} but trainables/variants.py lists "
            f"{list(VARIANTS[kind])}; add the name to both (same order)"
        )


def check_raises(raises: dict[str, str]) -> None:
    """Raise if the compressions' `raises` attributes differ from RAISES."""
    if raises != RAISES:
        raise RuntimeError(
            f"the compressions' `raises` are {raises} but trainables/variants.py RAISES is "
            f"{RAISES}; keep them equal"
        )


__all__ = ["RAISES", "VARIANTS", "check_raises", "check_registry"]
