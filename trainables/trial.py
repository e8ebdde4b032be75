"""One trial, without Ray: config -> data, model -> train loop -> per-epoch result dicts.

Contract used by sweep/ (the Ray trainable is a thin wrapper):

    trial = Trial(config_dict_or_TrialConfig)       # validates; builds data and model
    if checkpoint_dir: trial.load(checkpoint_dir)   # resume (torch.load(weights_only=True))
    for result in trial.epochs():                   # yields one dict per remaining epoch
        if trial.finished or result["diverged"] or due:  # its final result, or time to save
            trial.save(tmp_dir)                     # checkpoint = a plain dict in tmp_dir/trial.pt
        report(result)

`result` holds trainables.schema.RESULT_SCALARS plus "robustness" and "layers" (lists of row
dicts, empty on epochs that are not evaluated; the headline scalars then carry the last evaluated
values). A trial whose training loss goes non-finite yields one result with diverged=True and
stops. A trial with `patience` whose validation loss stopped improving yields its last result with
early_stopped=True and stops: it is complete, with fewer than `epochs` iterations. Same config
and seed give the same results on CPU.

Final evaluation protocol (the last epoch, the one the trial reports as final; off with
final_attack="none"): on the first n_eval_final test samples, per (norm, eps), rows for
cfg.attack and for cfg.final_attack (the "ensemble": APGD-CE then APGD-T on survivors, every eps
of a norm in one stacked batch), plus the linear-relaxation certificate (cfg.certify), exact MILP
verification on exact_samples samples (one-hidden-layer FCN, L-inf) and the radius ratios. One
clean forward and one r_cert per norm serve every row. The final attack's row counts a sample
robust only if it survives every attack run on it (cfg.attack's example stands where the final
attack's does not fool), so per sample certified (global) <= certified (relaxed) <= exact <=
attacked <= clean, and the headline robust_acc is that row's. Other epochs: cfg.attack on n_eval.
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
    ensemble_robust,
    fooling_rate,
    minimal_eps,
    run_attack,
    universal_perturbation,
)
from trainables import schema
from trainables.compression import fro_targets, get_compression, project_fro_, scale_encoder
from trainables.config import NO_FINAL, TrialConfig
from trainables.data import load_dataset
from trainables.errors import CheckpointError, SweepError
from trainables.metrics import (
    SensitivityEstimates,
    certified_by_bounds,
    certified_radius,
    certified_radius_relaxed,
    clopper_pearson,
    data_alignment,
    exact_robust_mask,
    layer_metrics,
    lipschitz,
    loss_gap_bound,
    margin_lower_bounds,
    network_summary,
    perturbation_alignment,
    sensitivity_estimates,
)
from trainables.models import build_model
from trainables.timing import PhaseTimer

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
        self.timer = PhaseTimer()  # the time budget (schema.TIME_BUDGET) reported per epoch
        self.timer.begin("t_data")
        self.data = load_dataset(
            cfg.dataset, data_dir=cfg.data_dir, n_train=cfg.n_train, n_test=cfg.n_test,
            classes=cfg.classes, seed=cfg.seed,
        )
        self.x_train, self.y_train, self.x_val, self.y_val = _validation_split(
            self.data.x_train, self.data.y_train, cfg.val_frac, cfg.seed
        )
        self.timer.end()
        self.timer.begin("t_build")
        self.model = build_model(
            cfg.model, input_shape=self.data.input_shape, num_classes=self.data.num_classes,
            mean=self.data.mean, std=self.data.std, width=cfg.width, depth=cfg.depth,
            rank=cfg.rank, head_bias=cfg.head_bias,
        ).to(self.device)
        self.compression = get_compression(
            cfg.compression, strength=cfg.strength, proximal=cfg.proximal, keep_frac=cfg.keep_frac
        )
        # Fixed scale: the per-layer Frobenius targets, read once from the freshly built model.
        self.fro_targets = fro_targets(self.model, cfg.target_fro) if cfg.fixed_fro else None
        if self.fro_targets is not None:
            project_fro_(self.model, self.fro_targets)
        transfer = cfg.pretrain_classes is not None and cfg.pretrain_epochs > 0
        # Fine-tuning a frozen encoder trains (and compresses) nothing but the head.
        self.frozen = transfer and cfg.freeze_encoder
        trained = self.model.head if self.frozen else self.model
        self.optimizer = _make_optimizer(cfg, trained.parameters())
        self.timer.end()
        self.generator = torch.Generator().manual_seed(cfg.seed)  # batch order, attack seeds
        self.epoch = 0  # completed epochs
        self.elapsed = 0.0  # seconds spent in epochs() so far, across resumes
        self.pretrained = not transfer
        self._last: dict[str, float] = {}
        # Model selection: {"epoch", "loss", "model" (state dict, only with select_best)} of the
        # epoch with the lowest validation loss so far; `stopped` once patience ran out.
        self.best: dict[str, Any] | None = None
        self.stopped = False
        self.eval_seconds = 0.0  # the last robustness evaluation's seconds (measurement aid)

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
            "best": self.best,
            "stopped": self.stopped,
            "timing": self.timer.state_dict(),
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
        self.best = state.get("best")
        self.stopped = bool(state.get("stopped", False))
        self.timer.load_state_dict(state.get("timing"))

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / CHECKPOINT_FILE
        tmp = path.with_suffix(".tmp")
        torch.save(self.state_dict(), tmp)
        tmp.replace(path)  # atomic: a crash never leaves a half-written checkpoint
        return path

    def load(self, directory: str | Path) -> None:
        path = Path(directory) / CHECKPOINT_FILE
        try:
            # weights_only refuses pickles naming other globals (code): an UnpicklingError here.
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as err:  # noqa: BLE001  untrusted bytes: any parse failure = unreadable
            # (torch's weights-only unpickler raises IndexError, struct.error, ... on garbage).
            raise CheckpointError(
                f"cannot read checkpoint {path} ({type(err).__name__}: "
                f"{str(err).splitlines()[0][:200] if str(err) else 'unreadable'}); "
                "start the trial afresh (delete it)"
            ) from None
        if not isinstance(state, dict):
            raise CheckpointError(
                f"checkpoint {path} holds a {type(state).__name__}, not a trial's state; "
                "start the trial afresh (delete it)"
            )
        try:
            self.load_state_dict(state)
        except SweepError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
            raise CheckpointError(
                f"checkpoint {path} is incomplete or does not fit this model "
                f"({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}); "
                "start the trial afresh (delete it)"
            ) from None

    # ---- the loop ---------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """No epoch left to yield: the config's epochs done, or patience ran out (both set before
        the yield, so a caller can checkpoint a final result). A diverged result is final too:
        it says so itself (diverged=True)."""
        return self.stopped or self.epoch >= self.config.epochs

    def epochs(self) -> Iterator[dict[str, Any]]:
        cfg = self.config
        if not self.pretrained:
            start = time.perf_counter()
            with self.timer.phase("t_train"):
                self._pretrain()
            self.elapsed += time.perf_counter() - start
        while self.epoch < cfg.epochs and not self.stopped:
            start = time.perf_counter()
            self.timer.begin("t_train")
            train_loss, train_acc = self._train_epoch()
            self.epoch += 1
            diverged = not math.isfinite(train_loss)
            val_loss = self._validation_loss() if not diverged else math.nan
            self.timer.end()
            self._track_best(val_loss)
            patience_out = (cfg.patience is not None and self.best is not None
                            and self.epoch - self.best["epoch"] >= cfg.patience)
            last = self.epoch == cfg.epochs or patience_out
            selected = self.epoch
            if last and cfg.select_best and self.best is not None and not diverged:
                # Model selection: the final evaluation is of the best validation epoch's weights.
                self.model.load_state_dict(self.best["model"])
                selected = self.best["epoch"]
            evaluate = self.epoch % cfg.eval_every == 0 or last
            with self.timer.phase("t_final" if last else "t_eval"):
                result = self._evaluate(full=evaluate and not diverged, diverged=diverged,
                                        last=last)
            epoch_seconds = time.perf_counter() - start
            self.elapsed += epoch_seconds
            result.update(
                iteration=self.epoch, time=self.elapsed, epoch_seconds=epoch_seconds,
                train_loss=train_loss, train_acc=train_acc, diverged=diverged,
                val_loss=val_loss, selected_epoch=selected, early_stopped=patience_out,
                **self.timer.totals(),
            )
            # Set before the yield: the checkpoint written after it must not train on.
            self.stopped = patience_out
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
        head = nn.Linear(self.model.head.in_features, source.num_classes,
                         bias=cfg.head_bias).to(self.device)
        params = [p for n, p in self.model.named_parameters() if not n.startswith("head.")]
        optimizer = _make_optimizer(cfg, params + list(head.parameters()))

        def forward(x: torch.Tensor) -> torch.Tensor:
            return head(self.model.features(x))

        for _ in range(cfg.pretrain_epochs):
            _run_epoch(self, forward, optimizer, source.x_train, source.y_train, compress=True)
        self.pretrained = True

    def _train_epoch(self) -> tuple[float, float]:
        return _run_epoch(self, self.model, self.optimizer, self.x_train, self.y_train,
                          compress=not self.frozen)

    def _validation_loss(self) -> float:
        """Mean CE of the current weights on the validation split (NaN without one)."""
        if self.x_val is None:
            return math.nan
        self.model.eval()
        return _accuracy_and_loss(self.model, self.x_val, self.y_val, self.device)[1]

    def _track_best(self, val_loss: float) -> None:
        if not math.isfinite(val_loss) or (self.best is not None and val_loss >= self.best["loss"]):
            return
        self.best = {"epoch": self.epoch, "loss": val_loss}
        if self.config.select_best:
            self.best["model"] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def _attack_seed(self) -> int:
        return int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator))

    # ---- evaluation -------------------------------------------------------------------------
    def _evaluate(self, *, full: bool, diverged: bool, last: bool = False) -> dict[str, Any]:
        cfg = self.config
        if diverged:
            nan = float("nan")
            return {"clean_acc": nan, "clean_loss": nan, **_nan_headlines(),
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
        self.timer.begin("t_metrics")
        layers = layer_metrics(model)
        summary = network_summary(layers)
        headlines = {
            **summary,
            "lip_linf": lipschitz(model, "linf"),
            "lip_l2": lipschitz(model, "l2"),
        }
        self.timer.end()
        # The final protocol runs at the last epoch (the one the trial reports as final), on the
        # first n_eval_final samples; other epochs stay cheap (cfg.attack on n_eval samples).
        final = last and cfg.final_attack != NO_FINAL
        start = time.perf_counter()
        n = (cfg.n_eval_final or cfg.n_eval) if final else cfg.n_eval
        x = self.data.x_test[:n].to(self.device)
        y = self.data.y_test[:n].to(self.device)
        estimates = sensitivity_estimates(model, x, y)  # one Jacobian pass serves both norms
        self.timer.begin("t_metrics")
        headlines.update(data_alignment(model, x))
        self.timer.end()
        rows = []
        for norm in cfg.norms:
            rows += self._robustness_rows(model, x, y, norm, estimates, final)
        self.eval_seconds = time.perf_counter() - start
        headline = cfg.final_attack if final else cfg.attack
        first = [r for r in rows if r["norm"] == cfg.norms[0] and r["attack"] == headline]
        headlines["robust_acc"] = max(first, key=lambda r: r["eps"])["robust_acc"]
        self._last = headlines
        result.update(headlines, robustness=rows, layers=layers)
        return result

    def _robustness_rows(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, norm: str,
                         estimates: SensitivityEstimates, final: bool) -> list[dict[str, Any]]:
        """Rows of one norm: cfg.attack at every eps (and UAP); with `final`, also the final
        protocol's rows (cfg.final_attack) and the certificates, on the same samples."""
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
        certified, unreachable = (
            self._relaxed_certified(model, x, y, norm, eps_grid, r_cert, clean_correct)
            if final else ({}, {}))
        # The per-epoch attack first: the final attack starts from the samples it left robust.
        attacked = {eps: run_attack(model, x, y, name=cfg.attack, norm=norm, eps=eps,
                                    steps=cfg.attack_steps, restarts=cfg.attack_restarts,
                                    seed=self._attack_seed()) for eps in eps_grid}
        strong = (self._final_attack(model, x, y, norm, eps_grid, certified, unreachable,
                                     attacked) if final else {})
        if strong and m:
            # A sample the strong attack fools at a grid eps has r_emp <= that eps.
            fooled_at = _fooled_at(model, strong, x[:m], y[:m])
            r_emp = torch.minimum(r_emp, fooled_at.to(r_emp.device, r_emp.dtype))
        extras = (self._final_extras(model, x, y, norm, eps_grid, r_cert, r_emp, clean_correct,
                                     certified) if final else {eps: {} for eps in eps_grid})
        common = {
            "norm": norm, "clean_loss": clean_loss, **_accuracy("clean_acc", clean_correct),
            "median_r_emp": _median(r_emp), "median_r_cert": _median(r_cert),
            "n_eval": len(x), **_NOT_FINAL,
            "cert_ratio_global": _median_ratio(r_cert[:m], r_emp, clean_correct[:m]),
        }
        rows, final_rows = [], []
        for eps in eps_grid:
            x_adv = attacked[eps]
            align_top, align_rest = perturbation_alignment(model, x_adv - x, norm)
            rows.append({
                **common, **_attacked(model, x_adv, y, clean_correct, clean_loss),
                "eps": float(eps), "attack": cfg.attack,
                **_accuracy("certified_acc", (r_cert > eps).to(clean_correct.device)),
                "bound_gap": loss_gap_bound(model, norm, eps),
                "align_est_gap": estimates.alignment_gap(norm, eps),
                "first_order_gap": estimates.first_order_gap(norm, eps),
                "align_top": align_top, "align_rest": align_rest,
                "fooling_rate": float("nan"), **extras[eps],
            })
            if eps in strong:
                # Robust only if it survives every attack run on it: where the strong attack
                # failed but cfg.attack succeeded, cfg.attack's example stands.
                with torch.no_grad():
                    keep = (model(x_adv).argmax(1) != y) & (model(strong[eps]).argmax(1) == y)
                combined = torch.where(keep.view(-1, *[1] * (x.dim() - 1)), x_adv, strong[eps])
                top, rest = perturbation_alignment(model, combined - x, norm)
                final_rows.append({
                    **rows[-1], **_attacked(model, combined, y, clean_correct, clean_loss),
                    "attack": cfg.final_attack, "align_top": top, "align_rest": rest,
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
        return rows + final_rows

    def _relaxed_certified(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, norm: str,
                           eps_grid: tuple[float, ...], r_cert: torch.Tensor,
                           clean_correct: torch.Tensor,
                           ) -> tuple[dict[float, torch.Tensor], dict[float, torch.Tensor]]:
        """(certified, unreachable), each eps -> on x's device: certified, bool (N,), by the
        linear relaxation (cfg.certify) or the global product, the union of two sound
        certificates; unreachable, bool (N, classes), the classes whose margin the relaxation
        proves positive over the ball (the final attack skips them as targets). Both {} when
        certify is "none"."""
        cfg = self.config
        if cfg.certify == "none":
            return {}, {}
        # The bounds are computed on the CPU in float64 from the weights: a CPU copy of the model.
        cpu = model if x.device.type == "cpu" else copy.deepcopy(model).cpu()
        x_cpu, y_cpu, correct = x.detach().cpu(), y.cpu(), clean_correct.cpu()
        certified, unreachable = {}, {}
        for eps in eps_grid:
            bounds = margin_lower_bounds(cpu, x_cpu, y_cpu, norm, float(eps), cfg.certify)
            certified[eps] = (certified_by_bounds(bounds, correct)
                              | (r_cert > eps).cpu()).to(x.device)
            unreachable[eps] = (bounds > 0).to(x.device)
        return certified, unreachable

    def _final_attack(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, norm: str,
                      eps_grid: tuple[float, ...], certified: dict[float, torch.Tensor],
                      unreachable: dict[float, torch.Tensor], attacked: dict[float, torch.Tensor]
                      ) -> dict[float, torch.Tensor]:
        """eps -> adversarial examples of cfg.final_attack ({} when it is cfg.attack itself: its
        rows are then the per-epoch attack's). Certified (sample, eps) pairs are not attacked
        (no attack can fool them; their example is x itself). The ensemble runs every other pair
        of all eps in one stacked batch (ensemble_robust), attacking only the samples still
        robust after each stage, and APGD-T only towards targets the certificate leaves
        reachable. Samples the per-epoch attack (`attacked`) already fooled keep its example and
        are not attacked again: the final rows are robust only against both attacks anyway."""
        cfg = self.config
        if cfg.final_attack in (cfg.attack, NO_FINAL):
            return {}
        grid = [float(e) for e in eps_grid]
        todo = {eps: (~certified[eps]).nonzero().squeeze(1) if certified
                else torch.arange(len(x), device=x.device) for eps in grid}
        out = {eps: x.clone() for eps in grid}
        if cfg.final_attack == "ensemble":
            found = ensemble_robust(model, x, y, norm, grid, seed=self._attack_seed(),
                                    proven=certified or None,
                                    unreachable=unreachable or None, given=attacked)
            return {eps: found[eps].x_adv for eps in grid}
        for eps in grid:
            seed = self._attack_seed()
            if len(todo[eps]):
                out[eps][todo[eps]] = run_attack(
                    model, x[todo[eps]], y[todo[eps]], name=cfg.final_attack, norm=norm,
                    eps=eps, steps=cfg.attack_steps, restarts=cfg.attack_restarts, seed=seed)
        return out

    def _final_extras(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, norm: str,
                      eps_grid: tuple[float, ...], r_cert: torch.Tensor, r_emp: torch.Tensor,
                      clean_correct: torch.Tensor, certified: dict[float, torch.Tensor]
                      ) -> dict[float, dict[str, Any]]:
        """eps -> the final epoch's certificate columns (linear relaxation, exact) of one norm."""
        cfg = self.config
        device = x.device
        # The bounds are computed on the CPU in float64 from the weights: a CPU copy of the model.
        model = model if device.type == "cpu" else copy.deepcopy(model).cpu()
        x, y = x.cpu(), y.cpu()
        m = min(cfg.r_emp_samples, len(x))
        extras: dict[float, dict[str, Any]] = {}
        ratio, median_relaxed = float("nan"), float("nan")
        if cfg.certify != "none" and m and max(eps_grid) > 0:
            r_relaxed = certified_radius_relaxed(model, x[:m], y[:m], norm,
                                                 eps_max=R_EMP_SPAN * max(eps_grid),
                                                 method=cfg.certify)
            # Both are certified radii; the larger is one too.
            r_relaxed = torch.maximum(r_relaxed, r_cert[:m].double())
            median_relaxed = _median(r_relaxed)
            ratio = _median_ratio(r_relaxed, r_emp, clean_correct[:m])
        k = min(cfg.exact_samples, len(x)) if norm == "linf" else 0
        for eps in eps_grid:
            row: dict[str, Any] = {"median_r_cert_relaxed": median_relaxed,
                                   "cert_ratio_relaxed": ratio}
            if certified:
                row.update(_accuracy("certified_acc_relaxed", certified[eps]),
                           certified_method=cfg.certify)
            if k:
                robust, unknown = exact_robust_mask(model, x[:k], y[:k], float(eps))
                row.update(n_exact=k, exact_acc=robust.double().mean().item(),
                           exact_unknown=int(unknown.sum()))
            extras[eps] = row
        return extras

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
            if trial.fro_targets is not None:
                project_fro_(model, trial.fro_targets)
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
        **_accuracy("robust_acc", (logits.argmax(1) == y) & clean_correct),
        "adv_loss": adv_loss,
        "measured_gap": adv_loss - clean_loss,
    }


def _accuracy(name: str, correct: torch.Tensor) -> dict[str, float]:
    """An accuracy over samples and its 95% Clopper-Pearson interval: name, name_lo, name_hi."""
    k, n = int(correct.sum()), len(correct)
    lo, hi = clopper_pearson(k, n)
    return {name: k / n if n else float("nan"), f"{name}_lo": lo, f"{name}_hi": hi}


@torch.no_grad()
def _fooled_at(model: nn.Module, strong: dict[float, torch.Tensor], x: torch.Tensor,
               y: torch.Tensor) -> torch.Tensor:
    """Per sample, the smallest eps whose adversarial example (first len(x) rows) fools the model
    on a correctly classified x (inf where none does, 0 where x itself is misclassified)."""
    found = torch.where(model(x).argmax(1) == y, math.inf, 0.0).double()
    for eps, x_adv in strong.items():
        fooled = model(x_adv[: len(x)]).argmax(1) != y
        found = torch.where(fooled, found.clamp(max=float(eps)), found)
    return found


def _median_ratio(r_cert: torch.Tensor, r_emp: torch.Tensor, correct: torch.Tensor) -> float:
    """Median of r_cert / r_emp over the correct samples with a finite r_emp > 0: how much of the
    empirical radius the certificate proves, per sample (scale-free; in [0, 1] when sound)."""
    r_cert, r_emp = r_cert.double().cpu(), r_emp.double().cpu()
    if r_emp.numel() == 0:
        return float("nan")
    valid = correct.cpu()[: len(r_emp)] & torch.isfinite(r_emp) & (r_emp > 0)
    if not valid.any():
        return float("nan")
    return float((r_cert[valid] / r_emp[valid]).median())


def _median(values: torch.Tensor) -> float:
    """Lower median; inf (no adversarial example found) is a valid value, so no interpolation."""
    return float(values.float().median()) if values.numel() else float("nan")


# Row columns the final protocol fills in (NaN / 0 / "" when it does not run).
_NOT_FINAL: dict[str, Any] = {
    **dict.fromkeys(("certified_acc_relaxed", "certified_acc_relaxed_lo",
                     "certified_acc_relaxed_hi", "median_r_cert_relaxed", "cert_ratio_relaxed",
                     "exact_acc"), float("nan")),
    "certified_method": "", "n_exact": 0, "exact_unknown": 0,
}


def _nan_headlines() -> dict[str, float]:
    return dict.fromkeys(schema.EVALUATED_SCALARS, float("nan"))


def _validation_split(x: torch.Tensor, y: torch.Tensor, frac: float, seed: int):
    """(x_train, y_train, x_val, y_val): a seeded random val_frac of the training split held out
    (x_val None when frac is 0). Its own generator: without a split, nothing else changes."""
    if frac == 0:
        return x, y, None, None
    n_val = round(frac * len(x))
    if not 1 <= n_val < len(x):
        from trainables.errors import ConfigError

        raise ConfigError(
            f"val_frac {frac} of {len(x)} training samples leaves {n_val} for validation; "
            "pick a val_frac that holds out at least one sample and keeps one for training"
        )
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed + 7919))
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val]


def _make_optimizer(cfg: TrialConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "adamw":  # decoupled weight decay (Loshchilov & Hutter)
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
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
