"""TrialConfig: everything one trial needs, with defaults, units and validation in one place.

A Ray Tune trial receives a plain dict (the space's sample); `TrialConfig.from_dict` validates it and
rejects unknown keys, so a typo in a space definition fails before any trial starts.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from dataclasses import dataclass
from typing import Any

from trainables.errors import ConfigError
from trainables.schema import NORMS
from trainables.variants import VARIANTS

OPTIMIZERS = ("sgd", "adam", "adamw")
CERTIFY_METHODS = ("crown", "ibp", "none")  # trainables.metrics._relax.METHODS, plus "none"
NO_FINAL = "none"

# Variant names come from trainables/variants.py, which imports no torch (each registry checks
# its keys against it): sweep.spaces, the launcher and the analysis import this module for names
# and defaults only. DATASETS / MODELS / COMPRESSIONS / ATTACKS stay importable from here.


def registered(names: str) -> tuple[str, ...]:
    """The names in one variant registry: "DATASETS", "MODELS", "COMPRESSIONS" or "ATTACKS"."""
    return VARIANTS[names]


def __getattr__(name: str) -> Any:
    if name in VARIANTS:
        return registered(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class TrialConfig:
    # data
    dataset: str = "digits"
    data_dir: str | None = None  # None: the dataset's default location
    n_train: int | None = None  # None: the whole training split
    n_test: int | None = None  # evaluation split size (clean accuracy)
    n_eval: int = 256  # samples attacked / certified per epoch
    classes: tuple[int, ...] | None = None  # keep only these classes (relabelled 0..k-1)
    # model
    model: str = "fcn"
    width: int = 256
    depth: int = 1  # hidden layers (FCN) — the encoder has `depth` layers, then the head
    rank: int | None = None  # explicit rank of every hidden layer (FCN) / conv (CNN, ResNet)
    head_bias: bool = True  # False: a bias-free head (the paper's code); the network is then
    # positively homogeneous in each encoder layer's scale
    # compression
    compression: str = "none"
    # regularizer weight (l1, group_lasso, row_sparsity, nuclear, spectral_ratio)
    strength: float = 0.0
    proximal: bool = False  # group_lasso / l1: proximal step after each update (exact zeros)
    keep_frac: float = 1.0  # prune_rows / svd_truncate: fraction of rows / singular values kept
    weight_scale: float = 1.0  # multiply encoder weights after training (UAP control)
    # fixed scale: after every optimizer step each encoder layer is rescaled to its Frobenius norm
    # at initialization, or to target_fro when set (the control that holds weight scale fixed)
    fixed_fro: bool = False
    target_fro: float | None = None
    # evaluation
    norms: tuple[str, ...] = ("linf",)
    eps_linf: tuple[float, ...] = (0.01, 0.02, 0.04)
    eps_l2: tuple[float, ...] = (0.1, 0.25, 0.5)
    attack: str = "pgd"
    attack_steps: int = 20
    attack_restarts: int = 1
    r_emp_samples: int = 64  # samples whose minimal adversarial eps is found by bisection
    uap: bool = False  # also report universal-perturbation fooling rate
    eval_every: int = 1  # attack / certify every n epochs (and always at the last)
    # final evaluation protocol, at the last epoch (trainables/trial.py): `attack` and
    # `final_attack` on the same first n_eval_final samples, plus the linear-relaxation certificate
    final_attack: str = "ensemble"  # any registered attack, or "none" (no final protocol)
    n_eval_final: int | None = None  # None: n_eval
    certify: str = "crown"  # linear relaxation: "crown" (best of CROWN/IBP/global), "ibp", "none"
    exact_samples: int = 0  # MILP exact verification (one-hidden-layer FCN, L-inf); 0: off
    # adversarial training
    at_eps: float = 0.0  # 0 disables adversarial training
    at_norm: str = "linf"
    at_steps: int = 7
    at_frac: float = 1.0  # fraction of each batch replaced by adversarial examples
    # transfer: pretrain the encoder on `pretrain_classes`, then fine-tune on `classes`
    pretrain_classes: tuple[int, ...] | None = None
    pretrain_epochs: int = 0
    freeze_encoder: bool = False
    # optimization
    epochs: int = 5
    batch_size: int = 128
    lr: float = 0.01  # SGD at 0.05 diverges for rank <= 8 factorized FCNs on Fashion-MNIST
    optimizer: str = "sgd"  # "adamw": decoupled weight decay (the paper's code); "adam": coupled
    momentum: float = 0.9
    weight_decay: float = 5e-4
    # validation split and model selection (the paper's code): val_frac of the training split is
    # held out; select_best evaluates the weights of the epoch with the lowest validation loss;
    # patience stops training after that many epochs without a lower validation loss
    val_frac: float = 0.0
    select_best: bool = False
    patience: int | None = None
    seed: int = 0
    device: str = "cpu"  # "cpu", "cuda", or "auto" (cuda when available)
    threads: int | None = None  # torch intra-op threads; None leaves torch's default
    # post-hoc audit of a user's model (trainables.posthoc): set model_factory to load it instead
    # of training ours; keep_frac then counts kept encoder weights for every compression
    model_factory: str | None = None  # "MODULE:FACTORY" (on PYTHONPATH) or "/abs/file.py:FACTORY"
    model_weights: str | None = None  # absolute path of a torch.save'd state_dict
    data_path: str | None = None  # absolute .npz with x, y (eval), optional x_train, y_train
    finetune_epochs: int = 0  # projected fine-tuning epochs after compression

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrialConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown trial option(s) {unknown}; valid options are {sorted(known)}"
            )
        cooked = {}
        for f in dataclasses.fields(cls):
            if f.name not in values:
                continue
            v = values[f.name]
            if f.name in _TUPLE_FIELDS and v is not None:
                v = tuple(v) if isinstance(v, (list, tuple)) else (v,)
            cooked[f.name] = v
        return cls(**cooked)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def eps_for(self, norm: str) -> tuple[float, ...]:
        return self.eps_linf if norm == "linf" else self.eps_l2

    def __post_init__(self) -> None:
        _check_types(self)
        _one_of("dataset", self.dataset, registered("DATASETS"))
        _one_of("model", self.model, registered("MODELS"))
        _one_of("compression", self.compression, registered("COMPRESSIONS"))
        _one_of("attack", self.attack, registered("ATTACKS"))
        _one_of("optimizer", self.optimizer, OPTIMIZERS)
        _one_of("final_attack", self.final_attack, (*registered("ATTACKS"), NO_FINAL))
        _one_of("certify", self.certify, CERTIFY_METHODS)
        _one_of("at_norm", self.at_norm, NORMS)
        if not self.norms:
            raise ConfigError("norms must name at least one of ['linf', 'l2'], but got ()")
        for n in self.norms:
            _one_of("norms", n, NORMS)
        for name in ("eps_linf", "eps_l2"):
            for e in getattr(self, name):
                if not (e >= 0):  # also rejects NaN
                    raise ConfigError(f"{name} must hold eps >= 0 (pixel units), but got {e}")
        for name in ("width", "depth", "epochs", "batch_size", "n_eval", "attack_steps",
                     "attack_restarts", "eval_every", "at_steps"):
            _at_least(name, getattr(self, name), 1)
        for name in ("n_train", "n_test", "threads", "rank"):
            if getattr(self, name) is not None:
                _at_least(name, getattr(self, name), 1)
        _at_least("r_emp_samples", self.r_emp_samples, 0)
        _at_least("exact_samples", self.exact_samples, 0)
        if self.n_eval_final is not None:
            _at_least("n_eval_final", self.n_eval_final, 1)
            if self.n_test is not None and self.n_eval_final > self.n_test:
                raise ConfigError(
                    f"n_eval_final must be <= n_test ({self.n_test}), but got "
                    f"{self.n_eval_final}; lower n_eval_final or raise n_test"
                )
        if self.exact_samples and (self.model != "fcn" or self.depth != 1):
            raise ConfigError(
                f"exact_samples > 0 needs a one-hidden-layer FCN (model 'fcn', depth 1), but got "
                f"model {self.model!r} with depth {self.depth}; set exact_samples to 0"
            )
        _at_least("pretrain_epochs", self.pretrain_epochs, 0)
        _at_least("finetune_epochs", self.finetune_epochs, 0)
        _check_user_model(self)
        for name in ("strength", "at_eps", "weight_decay", "momentum"):
            if not (getattr(self, name) >= 0):
                raise ConfigError(f"{name} must be >= 0, but got {getattr(self, name)}")
        if not (self.lr > 0):
            raise ConfigError(f"lr must be > 0, but got {self.lr}")
        if self.target_fro is not None and not (self.target_fro > 0 and self.fixed_fro):
            raise ConfigError(
                f"target_fro must be > 0 and needs fixed_fro=True, but got target_fro="
                f"{self.target_fro} with fixed_fro={self.fixed_fro}"
            )
        if not (self.weight_scale > 0):
            raise ConfigError(f"weight_scale must be > 0, but got {self.weight_scale}")
        if not (0 <= self.val_frac < 1):
            raise ConfigError(f"val_frac must be in [0, 1), but got {self.val_frac}")
        if (self.select_best or self.patience is not None) and self.val_frac == 0:
            raise ConfigError(
                "select_best and patience need a validation split; set val_frac > 0 (e.g. 0.1)"
            )
        if self.patience is not None:
            _at_least("patience", self.patience, 1)
        for name in ("keep_frac", "at_frac"):
            v = getattr(self, name)
            if not (0 < v <= 1):
                raise ConfigError(f"{name} must be in (0, 1], but got {v}")
        if self.rank is not None and self.rank > self.width:
            raise ConfigError(
                f"rank must be <= width ({self.width}), but got {self.rank}; lower rank or raise width"
            )
        if self.compression == "rank" and self.rank is None:
            raise ConfigError("compression 'rank' needs rank set (explicit rank of hidden layers)")
        if self.device not in ("cpu", "cuda", "auto") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be cpu, cuda, cuda:N or auto, but got {self.device!r}")


def _check_user_model(cfg: TrialConfig) -> None:
    """Paths must be absolute: Ray workers run in their own directories."""
    for name in ("model_weights", "data_path"):
        value = getattr(cfg, name)
        if value is not None and (not isinstance(value, str) or not value.startswith("/")):
            raise ConfigError(
                f"{name} must be an absolute path (Ray workers run elsewhere), but got {value!r}"
            )
        if value is not None and cfg.model_factory is None:
            raise ConfigError(f"{name} is only used with model_factory; set model_factory too")
    factory = cfg.model_factory
    if factory is not None:
        module, sep, attr = factory.partition(":") if isinstance(factory, str) else ("", "", "")
        if not (sep and module and attr.isidentifier()) or (
            module.endswith(".py") and not module.startswith("/")
        ):
            raise ConfigError(
                "model_factory must be MODULE:FACTORY (MODULE on PYTHONPATH) or "
                f"/absolute/file.py:FACTORY, but got {factory!r}"
            )
    elif cfg.finetune_epochs:
        raise ConfigError("finetune_epochs is only used with model_factory; set model_factory")


_TUPLE_FIELDS = {"norms", "eps_linf", "eps_l2", "classes", "pretrain_classes"}


def _check_types(config: TrialConfig) -> None:
    """Every field against its annotation, before any comparison: a str where a number belongs
    would raise TypeError below, and inf / NaN (JSON's Infinity, 1e400) would pass `>= 0` and make
    a trial diverge or an attack meaningless. One generic rule, so a new float field is covered."""
    for name, (kind, many, optional) in _FIELD_KINDS.items():
        value = getattr(config, name)
        if value is None and optional:
            continue
        ok = (isinstance(value, tuple) and all(_is_kind(v, kind) for v in value)
              if many else _is_kind(value, kind))
        if not ok:
            shown = list(value) if isinstance(value, tuple) else value
            one, several = _KIND_WORDS[kind]
            raise ConfigError(
                f"{name} must be {'a list of ' + several if many else one}"
                f"{' or null' if optional else ''}, but got {shown!r}"
            )


_KIND_WORDS = {
    float: ("a finite number", "finite numbers"),
    int: ("an integer", "integers"),
    str: ("a string", "strings"),
    bool: ("true or false", "booleans"),
}


def _is_kind(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, numbers.Real) and math.isfinite(value)
    if kind is int:
        return isinstance(value, numbers.Integral)
    return isinstance(value, kind)


def _field_kinds() -> dict[str, tuple[type, bool, bool]]:
    """name -> (element type, is a tuple, may be None) from TrialConfig's annotations."""
    kinds = {}
    for name, hint in typing.get_type_hints(TrialConfig).items():
        args = typing.get_args(hint)
        optional = type(None) in args
        if optional:
            hint = next(a for a in args if a is not type(None))
        many = typing.get_origin(hint) is tuple
        kinds[name] = (typing.get_args(hint)[0] if many else hint, many, optional)
    return kinds


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {list(allowed)}, but got {value!r}")


def _at_least(name: str, value: Any, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, but got {value!r}")


_FIELD_KINDS = _field_kinds()
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrialConfig)}

# DATASETS, MODELS, COMPRESSIONS and ATTACKS resolve through __getattr__ (see VARIANTS).
__all__ = ["TrialConfig", "registered"]
