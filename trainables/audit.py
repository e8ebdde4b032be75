"""Audit a user's trained model: clean and robust accuracy with intervals, certificates, layer
compressibility and Lipschitz estimates, in one call.

    python -m trainables.audit --model mymodels:build --weights model.pt --data test.npz --json

The Python entry point is `audit(model, x, y, ...) -> dict` (same keys as --json). The model maps
pixel inputs in [0, 1] to logits and normalizes itself; trainables.models.adapter gives it our
model protocol so the project's own metric functions measure it. What cannot be measured for a
given model (a layer type without a Lipschitz rule, an output not produced by a Linear head) is
listed under "skipped" with the reason, and the rest is still reported. "environment" names the
code's commit and the library versions (trainables.provenance).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

from trainables.config import ATTACKS
from trainables.errors import ConfigError, SweepError
from trainables.provenance import environment
from trainables.schema import NORMS

# The final evaluation protocol (APGD-CE + APGD-T at AutoAttack's budgets, trainables.attacks).
DEFAULT_ATTACK = "ensemble"
# Tightest first: the relaxation (CROWN, at least as tight as IBP) and the global-product bound.
CERTIFICATES = ("crown", "global")
DEFAULT_EPS = {"linf": (0.01, 0.02, 0.04), "l2": (0.1, 0.25, 0.5)}
CONFIDENCE = 0.95


def audit(
    model,
    x,
    y,
    *,
    norms: Sequence[str] = NORMS,
    eps_linf: Sequence[float] = DEFAULT_EPS["linf"],
    eps_l2: Sequence[float] = DEFAULT_EPS["l2"],
    attack: str | Sequence[str] = DEFAULT_ATTACK,
    n_eval: int | None = None,
    steps: int = 100,
    restarts: int = 1,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, Any]:
    """Audit `model` (an nn.Module, inputs in [0, 1] -> logits) on the first n_eval of (x, y).

    attack: one name of trainables.config.ATTACKS or several; a sample counts as robust only if it
    survives every one of them (the strongest combination). Every attack call gets `seed`.
    Returns a JSON-ready dict: n_eval, clean_acc, clean_acc_ci, clean_loss, num_classes,
    robustness (one row per (norm, eps): attack, robust_acc, robust_acc_ci (95% Clopper-Pearson),
    certified_acc / certified_method (the tightest of CERTIFICATES), certified_acc_crown,
    certified_acc_global, bound_gap (G_p ||C|| Lhat_p eps), ce_gap (measured adv - clean CE)),
    layers (trainables.schema.LAYERS_COLUMNS values per Linear / Conv2d before the head, plus
    type and bias), lipschitz (Lhat_p of the features and head norms, None when unknown),
    skipped (quantity -> why) and seconds. None marks a quantity that was skipped.
    """
    import torch
    import torch.nn.functional as F

    from trainables.attacks import run_attack
    from trainables.audit_inputs import check_model_output, check_samples
    from trainables.metrics import clopper_pearson, layer_metrics, op_norm
    from trainables.models.adapter import AdaptedModel

    attacks = (attack,) if isinstance(attack, str) else tuple(attack)
    _check_settings(norms, {"linf": eps_linf, "l2": eps_l2}, attacks, n_eval, steps, restarts)
    start = time.perf_counter()
    x, y = check_samples(x, y, source="samples")
    if n_eval is not None:
        x, y = x[:n_eval], y[:n_eval]
    dev = _device(device)
    model = model.to(dev).eval()
    x, y = x.to(dev), y.to(dev)
    num_classes = check_model_output(model, x, y)
    adapted = AdaptedModel(model, tuple(x.shape[1:]), num_classes)
    skipped = dict(adapted.skipped)

    with torch.no_grad():
        logits = torch.cat([model(chunk) for chunk in x.split(256)])
    clean_correct = logits.argmax(1) == y
    clean_loss = F.cross_entropy(logits, y).item()
    n = len(y)

    lips = _lipschitz(adapted, op_norm, skipped)
    rows = []
    for norm in norms:
        radius = _global_radius(adapted, x, y, norm, logits, lips, skipped)
        for eps in (eps_linf if norm == "linf" else eps_l2):
            survived = clean_correct.clone()
            adv_loss = clean_loss
            for name in attacks:
                x_adv = run_attack(model, x, y, name=name, norm=norm, eps=float(eps),
                                   steps=steps, restarts=restarts, seed=seed)
                with torch.no_grad():
                    adv_logits = torch.cat([model(c) for c in x_adv.split(256)])
                survived &= adv_logits.argmax(1) == y
                adv_loss = max(adv_loss, F.cross_entropy(adv_logits, y).item())
            robust = int(survived.sum())
            certified_global = (
                float((radius > eps).double().mean()) if radius is not None else None
            )
            certificates = {"crown": _relaxed(model, x, y, norm, float(eps), skipped),
                            "global": certified_global}
            best = max(((certificates[k], -i, k) for i, k in enumerate(CERTIFICATES)
                        if certificates[k] is not None), default=None)
            rows.append({
                "norm": norm,
                "eps": float(eps),
                "attack": "+".join(attacks),
                "robust_acc": robust / n,
                "robust_acc_ci": [float(v) for v in clopper_pearson(robust, n, CONFIDENCE)],
                "certified_acc": best[0] if best else None,
                "certified_method": best[2] if best else None,
                "certified_acc_crown": certificates["crown"],
                "certified_acc_global": certified_global,
                "bound_gap": _bound_gap(adapted, norm, float(eps), lips),
                "ce_gap": adv_loss - clean_loss,
            })
    layers = _layers(adapted, layer_metrics, skipped)
    clean = int(clean_correct.sum())
    return {
        "n_eval": n,
        "clean_acc": clean / n,
        "clean_acc_ci": [float(v) for v in clopper_pearson(clean, n, CONFIDENCE)],
        "clean_loss": clean_loss,
        "num_classes": num_classes,
        "robustness": rows,
        "layers": layers,
        "lipschitz": lips,
        "skipped": skipped,
        "seconds": time.perf_counter() - start,
        "environment": environment(),  # the code and library versions behind these numbers
    }


# ---- the pieces ---------------------------------------------------------------------------------
def _lipschitz(adapted, op_norm, skipped: dict[str, str]) -> dict[str, float | None]:
    """Lhat_p of the features and ||C||_{p->p} of the head, None where unknown."""
    from trainables.models.adapter import lipschitz_or_reason

    out: dict[str, float | None] = {}
    for p in NORMS:
        value, reason = lipschitz_or_reason(adapted, p, op_norm)
        out[p] = None if reason else value
        if reason:
            skipped.setdefault(f"lipschitz_{p}", reason)
        out[f"head_{p}"] = op_norm(adapted.head, p) if adapted._head is not None else None
    return out


def _global_radius(adapted, x, y, norm, logits, lips, skipped):
    from trainables.metrics import certified_radius

    if lips[norm] is None or adapted._head is None:
        skipped.setdefault(f"certified_global_{norm}",
                           "needs the Lipschitz bound and a Linear head (see the other reasons)")
        return None
    return certified_radius(adapted, x, y, norm, logits=logits)


def _relaxed(model, x, y, norm: str, eps: float, skipped: dict[str, str]) -> float | None:
    """CROWN certified accuracy (the larger of CROWN's and IBP's margin bounds), None with the
    reason when the model is not a chain the relaxation reads (a residual block, say)."""
    from trainables.metrics import certified_mask

    if f"certified_crown_{norm}" in skipped:
        return None
    try:
        return float(certified_mask(model, x, y, norm, eps, method="crown").double().mean())
    except ConfigError as err:
        skipped[f"certified_crown_{norm}"] = str(err)
        return None


def _bound_gap(adapted, norm: str, eps: float, lips) -> float | None:
    from trainables.metrics import CE_GRADIENT_BOUND

    if lips[norm] is None or lips[f"head_{norm}"] is None:
        return None
    return CE_GRADIENT_BOUND[norm] * lips[f"head_{norm}"] * lips[norm] * eps


def _layers(adapted, layer_metrics, skipped) -> list[dict[str, Any]]:
    rows = []
    for index, (name, module) in enumerate(adapted.encoder_layers()):
        from trainables.metrics._layers import weight_layer_metrics

        rows.append({**weight_layer_metrics(name, index, module),
                     "type": type(module).__name__,
                     "bias": getattr(module, "bias", None) is not None})
    other = sorted({
        type(m).__name__ for m in adapted.net.modules()
        if getattr(m, "weight", None) is not None and not isinstance(m, _readable_types())
    })
    if other:
        skipped.setdefault("layers_other", f"no layer metrics for {other}: only Linear / Conv2d "
                           "weights are read as matrices (BatchNorm enters the Lipschitz bound)")
    return rows


def _readable_types():
    from torch import nn

    return (nn.Linear, nn.Conv2d, nn.modules.batchnorm._BatchNorm)


def _check_settings(norms, eps, attacks, n_eval, steps, restarts) -> None:
    if not norms:
        raise ConfigError(f"norms must name at least one of {list(NORMS)}, but got none")
    for norm in norms:
        if norm not in NORMS:
            raise ConfigError(f"norms must be among {list(NORMS)}, but got {norm!r}")
        for e in eps[norm]:
            if not (isinstance(e, (int, float)) and math.isfinite(e) and e >= 0):
                raise ConfigError(f"eps_{norm} must hold finite eps >= 0, but got {e!r}")
    for name in attacks:
        if name not in ATTACKS:
            raise ConfigError(f"attack must be among {list(ATTACKS)}, but got {name!r}")
    for label, value in (("n_eval", n_eval), ("steps", steps), ("restarts", restarts)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"{label} must be an integer >= 1, but got {value!r}")


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name!r} asked for but CUDA is not available; use cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise ConfigError(f"--device must be cpu, cuda, cuda:N or auto, but got {name!r}")
    return torch.device(name)


# ---- command line -------------------------------------------------------------------------------
class _OneLineParser(argparse.ArgumentParser):
    """Bad flags: one line on stderr and exit 2 (argparse alone adds the usage block)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {message}; see python -m trainables.audit --help", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _OneLineParser(
        prog="python -m trainables.audit",
        description="Audit a trained model: accuracy, robustness under attack with 95%% "
                    "intervals, certificates, per-layer compressibility, Lipschitz estimates.",
    )
    p.add_argument("--model", required=True, metavar="MODULE:FACTORY",
                   help="a no-argument callable returning the nn.Module (inputs in [0,1] -> "
                        "logits); MODULE importable from the working directory or PYTHONPATH, "
                        "or a path to a .py file")
    p.add_argument("--weights", metavar="PATH", help="state_dict saved with torch.save")
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", metavar="PATH.npz", help="arrays x (in [0,1]) and y (int labels)")
    data.add_argument("--dataset", help="one of the project's datasets (its test split)")
    p.add_argument("--data-dir", help="where --dataset's files are")
    p.add_argument("--n-eval", type=int, default=1000, help="first N samples (default 1000)")
    p.add_argument("--norms", nargs="+", default=list(NORMS), choices=NORMS)
    p.add_argument("--eps-linf", nargs="+", type=float, default=list(DEFAULT_EPS["linf"]))
    p.add_argument("--eps-l2", nargs="+", type=float, default=list(DEFAULT_EPS["l2"]))
    p.add_argument("--attack", nargs="+", default=[DEFAULT_ATTACK], choices=ATTACKS,
                   help=f"one or more attacks (default {DEFAULT_ATTACK}); a sample is robust "
                        "only if it survives all")
    p.add_argument("--steps", type=int, default=100, help="attack iterations (default 100)")
    p.add_argument("--restarts", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object on stdout and nothing else there")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.threads is not None and args.threads < 1:
            raise ConfigError(f"--threads must be an integer >= 1, but got {args.threads}")
        if args.n_eval < 1:
            raise ConfigError(f"--n-eval must be an integer >= 1, but got {args.n_eval}")
        import torch  # only once the flags parsed

        from trainables.audit_inputs import build_user_model, load_npz

        if args.threads:
            torch.set_num_threads(args.threads)
        if args.data is not None:
            x, y = load_npz(args.data)
        else:
            from trainables.data import load_dataset

            if args.dataset not in _dataset_names():
                raise ConfigError(f"--dataset must be one of {_dataset_names()}, but got "
                                  f"{args.dataset!r}")
            data = load_dataset(args.dataset, data_dir=args.data_dir)
            x, y = data.x_test, data.y_test
        model = build_user_model(args.model, args.weights)
        # Libraries (AutoAttack) print progress; with --json stdout holds the object only.
        quiet = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
        with quiet:
            result = audit(model, x, y, norms=args.norms, eps_linf=args.eps_linf,
                           eps_l2=args.eps_l2, attack=args.attack, n_eval=args.n_eval,
                           steps=args.steps, restarts=args.restarts, seed=args.seed,
                           device=args.device)
    except SweepError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(_finite(result)) if args.json else format_table(result), flush=True)
    return 0


def _dataset_names() -> list[str]:
    from trainables.config import DATASETS

    return list(DATASETS)


def format_table(result: dict[str, Any]) -> str:
    def num(v, fmt=".4f"):
        return "-" if v is None else format(v, fmt)

    lines = [
        f"clean accuracy {result['clean_acc']:.4f}  95% [{result['clean_acc_ci'][0]:.4f}, "
        f"{result['clean_acc_ci'][1]:.4f}]  on the first {result['n_eval']} samples  "
        f"({result['seconds']:.1f}s)",
        "",
        f"{'norm':>4} {'eps':>8} {'attack':>10} {'robust':>7} {'95% interval':>17} "
        f"{'certified':>9} {'method':>7} {'global':>7} {'CE gap':>8} {'bound':>9}",
    ]
    for r in result["robustness"]:
        ci = f"[{r['robust_acc_ci'][0]:.3f}, {r['robust_acc_ci'][1]:.3f}]"
        lines.append(
            f"{r['norm']:>4} {r['eps']:>8g} {r['attack']:>10} {r['robust_acc']:>7.4f} {ci:>17} "
            f"{num(r['certified_acc']):>9} {r['certified_method'] or '-':>7} "
            f"{num(r['certified_acc_global']):>7} {r['ce_gap']:>8.4f} "
            f"{num(r['bound_gap'], '.3g'):>9}"
        )
    lips = result["lipschitz"]
    lines += ["", f"Lipschitz bound of the features: L-inf {num(lips['linf'], '.4g')}  "
                  f"L2 {num(lips['l2'], '.4g')};  head norm: L-inf "
                  f"{num(lips['head_linf'], '.4g')}  L2 {num(lips['head_l2'], '.4g')}", ""]
    lines.append(f"{'layer':<20} {'type':<7} {'bias':<5} {'spec':>8} {'inf':>8} "
                 f"{'stable rk':>9} {'eff rk':>7} {'spectral_comp':>13} {'neuron_comp':>11}")
    for row in result["layers"]:
        lines.append(
            f"{row['layer']:<20} {row['type']:<7} {str(row['bias']):<5} {row['spec_norm']:>8.3g} "
            f"{row['inf_norm']:>8.3g} {row['stable_rank']:>9.2f} {row['effective_rank']:>7.1f} "
            f"{row['spectral_comp_k10']:>13.3f} {row['neuron_comp_l1_k10']:>11.3f}"
        )
    for quantity, reason in result["skipped"].items():
        lines.append(f"skipped {quantity}: {reason}")
    return "\n".join(lines)


def _finite(value):
    """Strict JSON has no NaN/inf: NaN -> null, inf -> "inf"."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    return value


if __name__ == "__main__":
    sys.exit(main())
