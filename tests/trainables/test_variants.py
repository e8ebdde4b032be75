"""trainables.variants: the torch-free names the driver validates by match the registries."""

from __future__ import annotations

import pytest

from trainables.attacks._registry import ATTACK_RUNNERS
from trainables.compression._registry import COMPRESSION_KINDS
from trainables.config import TrialConfig
from trainables.data._registry import DATASET_SOURCES
from trainables.errors import ConfigError
from trainables.models._registry import MODEL_BUILDERS
from trainables.variants import VARIANTS, check_registry


def test_every_registry_has_exactly_the_listed_names():
    registries = {"DATASETS": DATASET_SOURCES, "MODELS": MODEL_BUILDERS,
                  "COMPRESSIONS": COMPRESSION_KINDS, "ATTACKS": ATTACK_RUNNERS}
    assert {kind: tuple(r) for kind, r in registries.items()} == VARIANTS


def test_a_name_missing_from_the_list_fails_loudly():
    with pytest.raises(RuntimeError, match="add the name to both"):
        check_registry("ATTACKS", {**ATTACK_RUNNERS, "new_attack": None})


def test_configs_are_validated_against_the_listed_names():
    TrialConfig(attack="apgd-ce", model="cnn", dataset="mnist", compression="nuclear")
    with pytest.raises(ConfigError, match="attack must be one of"):
        TrialConfig(attack="fgsm")


def test_raises_agree_with_the_compression_classes():
    from trainables.compression._registry import COMPRESSION_KINDS
    from trainables.variants import RAISES, check_raises

    assert RAISES == {kind: cls.raises for kind, cls in COMPRESSION_KINDS.items()}
    with pytest.raises(RuntimeError, match="RAISES"):
        check_raises({**RAISES, "rank": "neuron_comp_l2"})
