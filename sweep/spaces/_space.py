"""The Space type: a named, declarative, validated sweep definition at three scales.

A space is data, not code: fixed TrialConfig values plus swept parameters per scale. Everything is
checked against trainables.config.TrialConfig when the space is built, so a typo or an impossible
combination (rank > width, negative eps) fails at import time, before any trial starts.
Nothing here imports Ray: the launcher validates and prints plans without starting it.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from trainables import schema
from trainables.config import TrialConfig
from trainables.errors import ConfigError

SCALES: tuple[str, ...] = ("smoke", "cpu", "paper")
# Compressibility metric a space maximizes (beside robust_acc) in multi-objective search.
OBJECTIVES: tuple[str, ...] = schema.HEADLINES
TRIAL_FIELDS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(TrialConfig))
# Read off the dataclass (constructing a TrialConfig validates it, which loads the registries).
_DEFAULT_EPOCHS: int = TrialConfig.__dataclass_fields__["epochs"].default
# Above this many grid corners, validation checks a deterministic subset (the first and last ones
# in every axis are always included through the per-axis pass).
_MAX_CORNERS_CHECKED = 4096


# ---- swept parameters -------------------------------------------------------------------------
@dataclass(frozen=True)
class Grid:
    """Every value is run (grid search); random / optuna search picks among them."""

    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))
        if not self.values:
            raise ConfigError("Grid needs at least one value, but got ()")

    def corners(self) -> tuple[Any, ...]:
        return self.values

    def describe(self) -> str:
        return "grid" + json.dumps(list(self.values), default=str)


@dataclass(frozen=True)
class Uniform:
    """A float drawn uniformly from [low, high]."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ConfigError(f"Uniform needs finite low < high, but got ({self.low}, {self.high})")

    def corners(self) -> tuple[Any, ...]:
        return (float(self.low), float(self.high))

    def describe(self) -> str:
        return f"uniform({self.low:g}, {self.high:g})"


@dataclass(frozen=True)
class LogUniform:
    """A float drawn log-uniformly from [low, high], low > 0."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (0 < self.low < self.high and math.isfinite(self.high)):
            raise ConfigError(f"LogUniform needs 0 < low < high, but got ({self.low}, {self.high})")

    def corners(self) -> tuple[Any, ...]:
        return (float(self.low), float(self.high))

    def describe(self) -> str:
        return f"loguniform({self.low:g}, {self.high:g})"


@dataclass(frozen=True)
class IntRange:
    """An integer drawn uniformly from [low, high] (both inclusive)."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if not (isinstance(self.low, int) and isinstance(self.high, int) and self.low < self.high):
            raise ConfigError(
                f"IntRange needs integers low < high, but got ({self.low!r}, {self.high!r})"
            )

    def corners(self) -> tuple[Any, ...]:
        return (self.low, self.high)

    def describe(self) -> str:
        return f"randint[{self.low}, {self.high}]"


@dataclass(frozen=True)
class Cases:
    """Several options swept jointly: each case is a dict of TrialConfig values.

    For knobs that only make sense together (compression kind with its own strength range).
    Ray sees one categorical parameter whose values are the cases as JSON strings; the trainable
    merges the chosen case back into the trial options (see `trial_options`).
    """

    cases: tuple[Mapping[str, Any], ...]

    def __post_init__(self) -> None:
        cooked = tuple(MappingProxyType(dict(c)) for c in self.cases)
        if not cooked or any(not c for c in cooked):
            raise ConfigError("Cases needs at least one non-empty case dict")
        object.__setattr__(self, "cases", cooked)

    def corners(self) -> tuple[Any, ...]:
        return tuple(encode_case(c) for c in self.cases)

    def keys(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for c in self.cases:
            seen.update(dict.fromkeys(c))
        return tuple(seen)

    def describe(self) -> str:
        return "cases" + json.dumps([dict(c) for c in self.cases], default=str)


Param = Grid | Uniform | LogUniform | IntRange | Cases


def encode_case(case: Mapping[str, Any]) -> str:
    return json.dumps(dict(case), sort_keys=True)


# The one Tune config key of a resumed run's trials: {"trial_id", "config", "restore"}.
RESUME_KEY = "_resume"


def trial_options(sample: Mapping[str, Any], *, strict: bool = True) -> dict[str, Any]:
    """A sampled configuration (plain TrialConfig keys plus encoded Cases) -> TrialConfig keys.

    strict=False skips keys that are neither (a foreign trainable's config) instead of raising.
    """
    options: dict[str, Any] = {}
    for key, value in sample.items():
        if key == RESUME_KEY:  # a resumed trial's entry (sweep/resume.py): its config is whole
            options.update(value["config"])
        elif key in TRIAL_FIELDS:
            options[key] = value
        elif isinstance(value, str) and value.startswith("{"):
            options.update(json.loads(value))
        elif isinstance(value, Mapping):
            options.update(value)
        elif strict:
            raise ConfigError(
                f"unknown trial option {key!r}; valid options: {sorted(TRIAL_FIELDS)}"
            )
    return options


def configured_epochs(sample: Mapping[str, Any] | None) -> int:
    """The epoch budget a sampled configuration gives its trial (Cases decoded, TrialConfig's
    default when unset): what schema.trial_status compares the last iteration against."""
    epochs = trial_options(sample or {}, strict=False).get("epochs", _DEFAULT_EPOCHS)
    return epochs if isinstance(epochs, int) else _DEFAULT_EPOCHS


# ---- one scale of a space ---------------------------------------------------------------------
@dataclass(frozen=True)
class Scale:
    """What runs at one scale: fixed TrialConfig values and the swept parameters.

    num_samples: repeats of the grid (grid search), and the default trial count of random / optuna
    search is num_samples * grid size.
    """

    fixed: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Param] = field(default_factory=dict)
    num_samples: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "fixed", MappingProxyType(dict(self.fixed)))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        if not isinstance(self.num_samples, int) or self.num_samples < 1:
            raise ConfigError(f"num_samples must be an integer >= 1, but got {self.num_samples!r}")


@dataclass(frozen=True)
class Space:
    """A named sweep: `fixed` applies at every scale, `scales` adds per-scale values and params."""

    name: str
    description: str
    scales: Mapping[str, Scale]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    objective: str = "spectral_comp"
    # Options the launch must give (--set KEY=VALUE), e.g. the user's model of posthoc_audit.
    required: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "fixed", MappingProxyType(dict(self.fixed)))
        object.__setattr__(self, "scales", MappingProxyType(dict(self.scales)))
        if not self.name.replace("_", "").isalnum():
            raise ConfigError(f"space name must be letters, digits and '_', but got {self.name!r}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(
                f"objective must be one of {list(OBJECTIVES)}, but got {self.objective!r}"
            )
        unknown = sorted(set(self.scales) - set(SCALES))
        if not self.scales or unknown:
            raise ConfigError(
                f"space {self.name}: scales must be among {list(SCALES)}, but got {sorted(self.scales)}"
            )
        for scale in self.scales:
            self.resolve(scale)  # validates every scale up front

    def resolve(self, scale: str, overrides: Mapping[str, Any] | None = None) -> Plan:
        """The space at one scale, with fixed-value overrides (e.g. --dataset), validated."""
        if scale not in self.scales:
            raise ConfigError(
                f"space {self.name} has no scale {scale!r}; choose one of {sorted(self.scales)}"
            )
        s = self.scales[scale]
        missing = [k for k in self.required if overrides is not None and k not in overrides]
        if missing:
            raise ConfigError(
                f"space {self.name} needs {', '.join(f'--set {k}=...' for k in missing)}; "
                "see its description (--list-spaces)"
            )
        fixed = {**self.fixed, **s.fixed, **(overrides or {})}
        params = {k: v for k, v in s.params.items() if k not in (overrides or {})}
        plan = Plan(
            space=self.name,
            scale=scale,
            fixed=MappingProxyType(fixed),
            params=MappingProxyType(params),
            num_samples=s.num_samples,
            objective=self.objective,
        )
        try:
            plan.validate()
        except ConfigError as err:
            raise ConfigError(f"space {self.name} (scale {scale}): {err}") from None
        return plan


# ---- a resolved space: what the launcher runs ---------------------------------------------------
@dataclass(frozen=True)
class Plan:
    space: str
    scale: str
    fixed: Mapping[str, Any]
    params: Mapping[str, Param]
    num_samples: int
    objective: str

    def validate(self) -> None:
        for key, param in self.params.items():
            inner = param.keys() if isinstance(param, Cases) else (key,)
            if not isinstance(param, Cases) and key not in TRIAL_FIELDS:
                raise ConfigError(
                    f"unknown swept option {key!r}; valid options: {sorted(TRIAL_FIELDS)}"
                )
            for k in inner:
                if k not in TRIAL_FIELDS:
                    raise ConfigError(f"unknown option {k!r} in Cases {key!r}")
                if k in self.fixed:
                    raise ConfigError(f"option {k!r} is both fixed and swept; remove one")
        clash = _duplicated_keys(self.params)
        if clash:
            raise ConfigError(f"option(s) {clash} swept by more than one parameter")
        for k in self.fixed:
            if k not in TRIAL_FIELDS:
                raise ConfigError(
                    f"unknown fixed option {k!r}; valid options: {sorted(TRIAL_FIELDS)}"
                )
        for _ in self.corner_configs():
            pass

    def corner_configs(self) -> Iterator[TrialConfig]:
        """Validated TrialConfigs at the grid points and distribution ends (raises ConfigError)."""
        for sample in self._corners():
            yield TrialConfig.from_dict(trial_options(sample))

    def grid_size(self) -> int:
        return math.prod(len(p.corners()) for p in self.params.values() if _is_discrete(p))

    def has_distributions(self) -> bool:
        return any(not _is_discrete(p) for p in self.params.values())

    def trial_count(self, search: str, num_samples: int | None = None) -> int:
        n = self.default_num_samples(search) if num_samples is None else num_samples
        return n * self.grid_size() if search == "grid" else n

    def default_num_samples(self, search: str) -> int:
        return self.num_samples if search == "grid" else self.num_samples * self.grid_size()

    def grid_samples(self) -> Iterator[dict[str, Any]]:
        """Every grid point (distributions shown by their description), for dry runs."""
        keys = list(self.params)
        axes = [
            self.params[k].corners()
            if _is_discrete(self.params[k])
            else (self.params[k].describe(),)
            for k in keys
        ]
        for values in itertools.product(*axes):
            yield dict(zip(keys, values))

    def hyperparameters(self) -> dict[str, str]:
        """Swept TrialConfig options and their store column types ("int64", "float64", ...)."""
        names: list[str] = []
        for key, param in self.params.items():
            names.extend(param.keys() if isinstance(param, Cases) else (key,))
        return {n: column_type(n) for n in names}

    def _corners(self) -> Iterator[dict[str, Any]]:
        keys = list(self.params)
        axes = [self.params[k].corners() for k in keys]
        base = dict(self.fixed)
        # Per-axis pass: every value of every parameter once, others at their first corner.
        for i, axis in enumerate(axes):
            for v in axis:
                yield {**base, **{k: a[0] for k, a in zip(keys, axes)}, keys[i]: v}
        for values in itertools.islice(itertools.product(*axes), _MAX_CORNERS_CHECKED):
            yield {**base, **dict(zip(keys, values))}


def _is_discrete(param: Param) -> bool:
    return isinstance(param, (Grid, Cases))


def _duplicated_keys(params: Mapping[str, Param]) -> list[str]:
    seen: dict[str, int] = {}
    for key, param in params.items():
        for k in param.keys() if isinstance(param, Cases) else (key,):
            seen[k] = seen.get(k, 0) + 1
    return sorted(k for k, n in seen.items() if n > 1)


_HINTS = typing.get_type_hints(TrialConfig)


def column_type(option: str) -> str:
    """Store column type of a TrialConfig option; tuples are stored as JSON strings."""
    hint = str(_HINTS[option])
    if "tuple" in hint:
        return "str"
    for py, col in (("bool", "bool"), ("int", "int64"), ("float", "float64"), ("str", "str")):
        if py in hint:
            return col
    raise ConfigError(f"option {option!r} has a type the store cannot hold: {hint}")


def column_value(option: str, value: Any) -> Any:
    """A TrialConfig value as stored in its typed column."""
    if value is None:
        return None
    kind = column_type(option)
    if kind == "str" and not isinstance(value, str):
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    if kind == "float64":
        return float(value)
    return value
