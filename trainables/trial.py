"""One trial, without Ray: config -> data, model -> train loop -> per-epoch result dicts.

Contract used by sweep/ (the Ray trainable is a thin wrapper):

    trial = Trial(config_dict_or_TrialConfig)       # validates; builds data and model
    if checkpoint_dir: trial.load(checkpoint_dir)   # resume (torch.load(weights_only=True))
    for result in trial.epochs():                   # yields one dict per remaining epoch
        trial.save(tmp_dir)                         # checkpoint = a plain dict in tmp_dir/trial.pt
        report(result)

`result` holds trainables.schema.RESULT_SCALARS plus "robustness" and "layers" (lists of row
dicts, empty on epochs that are not evaluated; the headline scalars then carry the last evaluated
values). A trial whose training loss goes non-finite yields one result with diverged=True and
stops. Same config and seed give the same results on CPU.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainables.attacks import (
    adversarial_training_batch,
    fooling_rate,
    minimal_eps,
    run_attack,
    universal_perturbation,
)
from trainables.compression import get_compression, scale_encoder
from trainables.config import TrialConfig
from trainables.data import load_dataset
from trainables.errors import CheckpointError
from trainables.metrics import (
    SensitivityEstimates,
    certified_accuracy,
    certified_radius,
    layer_metrics,
    lipschitz,
    loss_gap_bound,
    network_summary,
    perturbation_alignment,
    sensitivity_estimates,
)
from trainables.models import build_model

CHECKPOINT_FILE = "trial.pt"
CHECKPOINT_FORMAT = 1
# The bisection for r_emp searches [0, R_EMP_SPAN * largest eps of the grid].
R_EMP_SPAN = 8.0
# Config keys that may differ between a checkpoint and the trial restoring it.
_PLACEMENT_KEYS = {"device", "threads", "data_dir"}


class Trial:
    """A resumable training run that evaluates robustness and compressibility every epoch."""

    def __init__(self, config: TrialConfig | dict[str, Any]):
        cfg = config if isinstance(config, TrialConfig) else TrialConfig.from_dict(config)
        self.config = cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = _resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.data = load_dataset(
            cfg.dataset, data_dir=cfg.data_dir, n_train=cfg.n_train, n_test=cfg.n_test,
            classes=cfg.classes, seed=cfg.seed,
        )
        self.model = build_model(
            cfg.model, input_shape=self.data.input_shape, num_classes=self.data.num_classes,
            mean=self.data.mean, std=self.data.std, width=cfg.width, depth=cfg.depth,
            rank=cfg.rank,
        ).to(self.device)
        self.compression = get_compression(
            cfg.compression, strength=cfg.strength, proximal=cfg.proximal, keep_frac=cfg.keep_frac
        )
        transfer = cfg.pretrain_classes is not None and cfg.pretrain_epochs > 0
        # Fine-tuning a frozen encoder trains (and compresses) nothing but the head.
        self.frozen = transfer and cfg.freeze_encoder
        trained = self.model.head if self.frozen else self.model
        self.optimizer = _make_optimizer(cfg, trained.parameters())
        self.generator = torch.Generator().manual_seed(cfg.seed)  # batch order, attack seeds
        self.epoch = 0  # completed epochs
        self.elapsed = 0.0  # seconds spent in epochs() so far, across resumes
        self.pretrained = not transfer
        self._last: dict[str, float] = {}

    # ---- checkpointing: a plain dict of exactly what resume needs --------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "elapsed": self.elapsed,
            "pretrained": self.pretrained,
            "last": dict(self._last),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(
                f"checkpoint format must be {CHECKPOINT_FORMAT}, but got {state.get('format')!r}"
            )
        ours = {k: v for k, v in self.config.to_dict().items() if k not in _PLACEMENT_KEYS}
        theirs = TrialConfig.from_dict(state["config"]).to_dict()
        theirs = {k: v for k, v in theirs.items() if k not in _PLACEMENT_KEYS}
        if ours != theirs:
            changed = sorted(k for k in ours if ours[k] != theirs.get(k))
            raise CheckpointError(
                f"checkpoint was written by a trial with other settings {changed}; "
                "resume with the same config or start a new trial"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.epoch = int(state["epoch"])
        self.elapsed = float(state["elapsed"])
        self.pretrained = bool(state["pretrained"])
        self._last = dict(state["last"])

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / CHECKPOINT_FILE
        tmp = path.with_suffix(".tmp")
        torch.save(self.state_dict(), tmp)
        tmp.replace(path)  # atomic: a crash never leaves a half-written checkpoint
        return path

    def load(self, directory: str | Path) -> None:
        path = Path(directory) / CHECKPOINT_FILE
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except (OSError, RuntimeError, EOFError) as err:
            raise CheckpointError(
                f"cannot read checkpoint {path} ({type(err).__name__}); start the trial afresh"
            ) from None
        self.load_state_dict(state)

    # ---- the loop ---------------------------------------------------------------------------
    def epochs(self) -> Iterator[dict[str, Any]]:
        cfg = self.config
        if not self.pretrained:
            start = time.perf_counter()
            self._pretrain()
            self.elapsed += time.perf_counter() - start
        while self.epoch < cfg.epochs:
            start = time.perf_counter()
            train_loss, train_acc = self._train_epoch()
            self.epoch += 1
            diverged = not math.isfinite(train_loss)
            evaluate = (self.epoch % cfg.eval_every == 0 or self.epoch == cfg.epochs)
            result = self._evaluate(full=evaluate and not diverged, diverged=diverged)
            epoch_seconds = time.perf_counter() - start
            self.elapsed += epoch_seconds
            result.update(
                iteration=self.epoch, time=self.elapsed, epoch_seconds=epoch_seconds,
                train_loss=train_loss, train_acc=train_acc, diverged=diverged,
            )
            yield result
            if diverged:
                return

    def _pretrain(self) -> None:
        """Transfer: train encoder + a temporary head on pretrain_classes, then keep the encoder."""
        cfg = self.config
        source = load_dataset(
            cfg.dataset, data_dir=cfg.data_dir, n_train=cfg.n_train, n_test=cfg.n_test,
            classes=cfg.pretrain_classes, seed=cfg.seed,
        )
        head = nn.Linear(self.model.head.in_features, source.num_classes).to(self.device)
        params = [p for n, p in self.model.named_parameters() if not n.startswith("head.")]
        optimizer = _make_optimizer(cfg, params + list(head.parameters()))

        def forward(x: torch.Tensor) -> torch.Tensor:
            return head(self.model.features(x))

        for _ in range(cfg.pretrain_epochs):
            _run_epoch(self, forward, optimizer, source.x_train, source.y_train, compress=True)
        self.pretrained = True

    def _train_epoch(self) -> tuple[float, float]:
        return _run_epoch(self, self.model, self.optimizer, self.data.x_train, self.data.y_train,
                          compress=not self.frozen)

    def _attack_seed(self) -> int:
        return int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator))

    # ---- evaluation -------------------------------------------------------------------------
    def _evaluate(self, *, full: bool, diverged: bool) -> dict[str, Any]:
        cfg = self.config
        if diverged:
            nan = float("nan")
            return {"clean_acc": nan, "clean_loss": nan, "robust_acc": nan, "neuron_comp": nan,
                    "neuron_comp_l2": nan, "spectral_comp": nan, "lip_linf": nan, "lip_l2": nan,
                    "robustness": [], "layers": []}
        model = self._compressed_copy()
        model.eval()
        clean_acc, clean_loss = _accuracy_and_loss(model, self.data.x_test, self.data.y_test,
                                                   self.device)
        result: dict[str, Any] = {"clean_acc": clean_acc, "clean_loss": clean_loss,
                                  "robustness": [], "layers": []}
        if not full:
            result.update(self._last or _nan_headlines())
            return result
        layers = layer_metrics(model)
        summary = network_summary(layers)
        headlines = {
            **summary,
            "lip_linf": lipschitz(model, "linf"),
            "lip_l2": lipschitz(model, "l2"),
        }
        x = self.data.x_test[: cfg.n_eval].to(self.device)
        y = self.data.y_test[: cfg.n_eval].to(self.device)
        estimates = sensitivity_estimates(model, x, y)  # one Jacobian pass serves both norms
        rows = []
        for norm in cfg.norms:
            rows += self._robustness_rows(model, x, y, norm, estimates)
        first = [r for r in rows if r["norm"] == cfg.norms[0] and r["attack"] == cfg.attack]
        headlines["robust_acc"] = max(first, key=lambda r: r["eps"])["robust_acc"]
        self._last = headlines
        result.update(headlines, robustness=rows, layers=layers)
        return result

    def _robustness_rows(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, norm: str,
                         estimates: SensitivityEstimates) -> list[dict[str, Any]]:
        cfg = self.config
        eps_grid = cfg.eps_for(norm)
        r_cert = certified_radius(model, x, y, norm, logits=estimates.logits)
        m = min(cfg.r_emp_samples, len(x))
        r_emp = (
            minimal_eps(model, x[:m], y[:m], norm=norm, eps_max=R_EMP_SPAN * max(eps_grid),
                        steps=cfg.attack_steps, seed=self._attack_seed())
            if m and max(eps_grid) > 0 else torch.empty(0)
        )
        clean_logits = estimates.logits.to(x.device, torch.float32)
        clean_loss = F.cross_entropy(clean_logits, y).item()
        clean_correct = clean_logits.argmax(1) == y
        clean_acc = clean_correct.float().mean().item()
        common = {
            "norm": norm, "clean_loss": clean_loss, "clean_acc": clean_acc,
            "median_r_emp": _median(r_emp), "median_r_cert": _median(r_cert),
        }
        rows = []
        for eps in eps_grid:
            x_adv = run_attack(model, x, y, name=cfg.attack, norm=norm, eps=eps,
                               steps=cfg.attack_steps, restarts=cfg.attack_restarts,
                               seed=self._attack_seed())
            align_top, align_rest = perturbation_alignment(model, x_adv - x, norm)
            rows.append({
                **common, **_attacked(model, x_adv, y, clean_correct, clean_loss),
                "eps": float(eps), "attack": cfg.attack,
                "certified_acc": certified_accuracy(r_cert, eps),
                "bound_gap": loss_gap_bound(model, norm, eps),
                "align_est_gap": estimates.alignment_gap(norm, eps),
                "first_order_gap": estimates.first_order_gap(norm, eps),
                "align_top": align_top, "align_rest": align_rest,
                "fooling_rate": float("nan"),
            })
            if cfg.uap:
                delta = universal_perturbation(model, x, y, norm=norm, eps=eps,
                                               seed=self._attack_seed())
                x_uap = (x + delta).clamp(0, 1)
                top, rest = perturbation_alignment(model, x_uap - x, norm)
                rows.append({
                    **rows[-1], **_attacked(model, x_uap, y, clean_correct, clean_loss),
                    "attack": "uap", "align_top": top, "align_rest": rest,
                    "fooling_rate": fooling_rate(model, x, delta),
                })
        return rows

    def _compressed_copy(self) -> nn.Module:
        """The model evaluated: post-hoc compression and weight scaling act on a copy."""
        cfg = self.config
        if not self.compression.post_hoc and cfg.weight_scale == 1.0:
            return self.model
        model = copy.deepcopy(self.model)
        with torch.no_grad():
            self.compression.apply_post_hoc(model)
            if cfg.weight_scale != 1.0:
                scale_encoder(model, cfg.weight_scale)
        return model


def run_trial(config: TrialConfig | dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Run one trial from scratch, yielding a result dict per epoch."""
    yield from Trial(config).epochs()


# ---- small pure helpers -----------------------------------------------------------------------
def _run_epoch(trial: Trial, forward, optimizer, x_all, y_all, *, compress: bool
               ) -> tuple[float, float]:
    """One pass over (x_all, y_all) in seeded random order; returns mean loss and accuracy.

    `forward` is the model, or encoder + a temporary head while pretraining (no adversarial
    training there); `compress` adds the compression penalty and proximal step.
    """
    cfg, model, device = trial.config, trial.model, trial.device
    model.train()
    order = torch.randperm(len(x_all), generator=trial.generator)
    total_loss, correct, seen = 0.0, 0, 0
    for start in range(0, len(order), cfg.batch_size):
        idx = order[start:start + cfg.batch_size]
        x, y = x_all[idx].to(device), y_all[idx].to(device)
        if cfg.at_eps > 0 and forward is model:
            x = adversarial_training_batch(model, x, y, norm=cfg.at_norm, eps=cfg.at_eps,
                                           steps=cfg.at_steps, frac=cfg.at_frac,
                                           seed=trial._attack_seed())
        logits = forward(x)
        loss = F.cross_entropy(logits, y)
        objective = loss + trial.compression.penalty(model) if compress else loss
        if not torch.isfinite(objective):
            return float("nan"), float("nan")
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        optimizer.step()
        if compress:
            trial.compression.after_step(model, optimizer.param_groups[0]["lr"])
        total_loss += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
    return total_loss / seen, correct / seen


@torch.no_grad()
def _accuracy_and_loss(model: nn.Module, x_all, y_all, device, batch: int = 1024):
    correct, loss = 0, 0.0
    for start in range(0, len(x_all), batch):
        x, y = x_all[start:start + batch].to(device), y_all[start:start + batch].to(device)
        logits = model(x)
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    return correct / len(x_all), loss / len(x_all)


@torch.no_grad()
def _attacked(model: nn.Module, x_adv, y, clean_correct, clean_loss: float) -> dict[str, float]:
    """Robust means correct both clean and perturbed (a universal perturbation can "fix" a
    misclassified sample; that does not make it robust), so robust_acc <= clean_acc always."""
    logits = model(x_adv)
    adv_loss = F.cross_entropy(logits, y).item()
    return {
        "robust_acc": ((logits.argmax(1) == y) & clean_correct).float().mean().item(),
        "adv_loss": adv_loss,
        "measured_gap": adv_loss - clean_loss,
    }


def _median(values: torch.Tensor) -> float:
    """Lower median; inf (no adversarial example found) is a valid value, so no interpolation."""
    return float(values.float().median()) if values.numel() else float("nan")


def _nan_headlines() -> dict[str, float]:
    keys = ("robust_acc", "neuron_comp", "neuron_comp_l2", "spectral_comp", "lip_linf", "lip_l2")
    return dict.fromkeys(keys, float("nan"))


def _make_optimizer(cfg: TrialConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay)


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        from trainables.errors import ConfigError

        raise ConfigError(f"device {name!r} asked for but CUDA is not available; use device=cpu")
    return torch.device(name)


__all__ = ["CHECKPOINT_FILE", "Trial", "run_trial"]
