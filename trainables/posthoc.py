"""A trial that compresses a user's trained model instead of training one of ours.

Same contract as trainables.trial.Trial (load / save / epochs), so the Ray trainable, the store
and the report take it unchanged; sweep/trainable.py picks it when config.model_factory is set.
It loads the model (trainables.audit_inputs: importlib, weights_only), compresses a copy,
optionally fine-tunes it (projected: the compression is re-applied after every step, so the
kept fraction holds), and evaluates it with the audit (trainables.audit: the final attack
protocol, certificates, layer metrics). It yields ONE result (iteration 1) in the result-dict
format of trainables.trial (schema.RESULT_SCALARS + "robustness" + "layers").

keep_frac, here, is the kept fraction of each encoder layer's weights, for every compression, so
structured and unstructured methods share one x-axis:
- magnitude_layer / magnitude_global: keep_frac of the weights (per layer / over all layers);
- prune_rows: keep_frac of the rows (neurons / filters), i.e. of the layer's weights;
- svd_truncate: rank k = floor(keep_frac * m n / (m + n)) (at least 1, at most min(m, n)):
  the factors U_k (m x k) and V_k (k x n) hold at most keep_frac of the m n weights.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainables.audit import audit
from trainables.audit_inputs import build_user_model, check_model_output, load_npz
from trainables.compression import get_compression
from trainables.compression._layers import as_matrix, assign_weight
from trainables.compression.svd_truncate import best_rank_k
from trainables.config import TrialConfig
from trainables.errors import CheckpointError, ConfigError
from trainables.metrics import network_summary
from trainables.models.adapter import AdaptedModel
from trainables.schema import LAYERS_COLUMNS

CHECKPOINT_FILE = "posthoc.pt"
CHECKPOINT_FORMAT = 1
POSTHOC_COMPRESSIONS = ("none", "svd_truncate", "prune_rows", "magnitude_global", "magnitude_layer")
STRUCTURED = ("svd_truncate", "prune_rows")


class PosthocTrial:
    def __init__(self, config: TrialConfig | dict[str, Any]):
        cfg = config if isinstance(config, TrialConfig) else TrialConfig.from_dict(config)
        if cfg.model_factory is None:
            raise ConfigError("a post-hoc trial needs model_factory (MODULE:FACTORY); set it")
        if cfg.compression not in POSTHOC_COMPRESSIONS:
            raise ConfigError(
                f"post-hoc compression must be one of {list(POSTHOC_COMPRESSIONS)}, but got "
                f"{cfg.compression!r}"
            )
        self.config = cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.model = build_user_model(cfg.model_factory, cfg.model_weights)
        self.x_eval, self.y_eval, self.x_train, self.y_train = _data(cfg)
        self.num_classes = check_model_output(self.model, self.x_eval, self.y_eval)
        self.done = False

    # ---- the Trial contract -------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "config": self.config.to_dict(), "done": self.done}

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / CHECKPOINT_FILE
        tmp = path.with_suffix(".tmp")
        torch.save(self.state_dict(), tmp)
        tmp.replace(path)
        return path

    def load(self, directory: str | Path) -> None:
        path = Path(directory) / CHECKPOINT_FILE
        try:
            state = torch.load(path, weights_only=True)
        except (OSError, RuntimeError, EOFError) as err:
            raise CheckpointError(
                f"cannot read checkpoint {path} ({type(err).__name__}); start the trial afresh"
            ) from None
        if state.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"checkpoint format must be {CHECKPOINT_FORMAT}, but got "
                                  f"{state.get('format')!r}")
        self.done = bool(state["done"])

    @property
    def finished(self) -> bool:
        """Its one result was yielded (set before the yield)."""
        return self.done

    def epochs(self):
        if self.done:
            return
        cfg = self.config
        start = time.perf_counter()
        model = copy.deepcopy(self.model)
        compress(model, cfg.compression, cfg.keep_frac, self.x_eval.shape[1:], self.num_classes)
        train_loss, train_acc = self._finetune(model)
        out = audit(model, self.x_eval, self.y_eval, norms=cfg.norms, eps_linf=cfg.eps_linf,
                    eps_l2=cfg.eps_l2, attack=cfg.attack, n_eval=cfg.n_eval,
                    steps=cfg.attack_steps, restarts=cfg.attack_restarts, seed=cfg.seed,
                    device=cfg.device)
        self.done = True
        seconds = time.perf_counter() - start
        yield _result(out, cfg, seconds, train_loss, train_acc)

    # ---- fine-tuning ------------------------------------------------------------------------
    def _finetune(self, model: nn.Module) -> tuple[float, float]:
        cfg = self.config
        if cfg.finetune_epochs == 0:
            return math.nan, math.nan
        if self.x_train is None:
            raise ConfigError(
                "finetune_epochs > 0 needs training samples: arrays x_train, y_train in the "
                "data_path .npz (or a named dataset)"
            )
        optimizer = (torch.optim.Adam(model.parameters(), lr=cfg.lr)
                     if cfg.optimizer == "adam" else
                     torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum))
        generator = torch.Generator().manual_seed(cfg.seed)
        shape = self.x_eval.shape[1:]
        total = correct = seen = 0.0
        for _ in range(cfg.finetune_epochs):
            model.train()
            order = torch.randperm(len(self.x_train), generator=generator)
            total = correct = seen = 0.0
            for idx in order.split(cfg.batch_size):
                x, y = self.x_train[idx], self.y_train[idx]
                logits = model(x)
                loss = F.cross_entropy(logits, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                # Projected descent: back onto the compressed set after every step.
                compress(model, cfg.compression, cfg.keep_frac, shape, self.num_classes)
                total += loss.item() * len(y)
                correct += (logits.argmax(1) == y).sum().item()
                seen += len(y)
        model.eval()
        return total / seen, correct / seen


def make_trial(config: TrialConfig | dict[str, Any]):
    """The trial a config asks for: a PosthocTrial when it names a user's model_factory, else
    the training trial (trainables.trial.Trial)."""
    cfg = config if isinstance(config, TrialConfig) else TrialConfig.from_dict(config)
    if cfg.model_factory is not None:
        return PosthocTrial(cfg)
    from trainables.trial import Trial

    return Trial(cfg)


def compress(model: nn.Module, kind: str, keep_frac: float, input_shape, num_classes: int
             ) -> None:
    """In place, on the encoder layers the adapter finds (the head is never compressed)."""
    if kind == "none":
        return
    adapted = AdaptedModel(model, tuple(input_shape), num_classes)
    with torch.no_grad():
        if kind == "svd_truncate":
            for _, layer in adapted.encoder_layers():
                matrix = as_matrix(layer.weight)
                m, n = matrix.shape
                k = min(min(m, n), max(1, math.floor(keep_frac * m * n / (m + n))))
                if k < min(m, n):
                    assign_weight(layer, best_rank_k(matrix, k).to(layer.weight.dtype))
        else:
            get_compression(kind, keep_frac=keep_frac).apply_post_hoc(adapted)


def _data(cfg: TrialConfig):
    if cfg.data_path is not None:
        x, y = load_npz(cfg.data_path)
        x_train = y_train = None
        import numpy as np

        with np.load(cfg.data_path, allow_pickle=False) as arrays:
            if "x_train" in arrays.files and "y_train" in arrays.files:
                from trainables.audit_inputs import check_samples

                x_train, y_train = check_samples(arrays["x_train"], arrays["y_train"],
                                                 source=f"{cfg.data_path} (x_train, y_train)")
        return x, y, x_train, y_train
    from trainables.data import load_dataset

    data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, n_train=cfg.n_train,
                        n_test=cfg.n_test, classes=cfg.classes, seed=cfg.seed)
    return data.x_test, data.y_test, data.x_train, data.y_train


def _result(out: dict[str, Any], cfg: TrialConfig, seconds: float, train_loss: float,
            train_acc: float) -> dict[str, Any]:
    nan = math.nan

    def num(v):
        return nan if v is None else float(v)

    rows = [{
        "norm": r["norm"], "eps": r["eps"], "attack": r["attack"],
        "robust_acc": r["robust_acc"], "adv_loss": out["clean_loss"] + r["ce_gap"],
        "clean_loss": out["clean_loss"], "clean_acc": out["clean_acc"],
        "certified_acc": num(r["certified_acc"]), "measured_gap": r["ce_gap"],
        "bound_gap": num(r["bound_gap"]), "align_est_gap": nan, "first_order_gap": nan,
        "median_r_emp": nan, "median_r_cert": nan, "align_top": nan, "align_rest": nan,
        "fooling_rate": nan,
    } for r in out["robustness"]]
    layers = [{k: v for k, v in row.items() if k in LAYERS_COLUMNS} for row in out["layers"]]
    first = [r for r in rows if r["norm"] == cfg.norms[0]]
    return {
        "iteration": 1, "time": seconds, "epoch_seconds": seconds,
        "train_loss": train_loss, "train_acc": train_acc,
        "clean_acc": out["clean_acc"], "clean_loss": out["clean_loss"],
        "robust_acc": max(first, key=lambda r: r["eps"])["robust_acc"],
        **network_summary(layers),
        "lip_linf": num(out["lipschitz"]["linf"]), "lip_l2": num(out["lipschitz"]["l2"]),
        "diverged": False, "robustness": rows, "layers": layers,
    }


__all__ = ["POSTHOC_COMPRESSIONS", "STRUCTURED", "PosthocTrial", "compress", "make_trial"]
