"""Our final attack protocol (trainables.attacks.ensemble: APGD-CE + APGD-T) vs AutoAttack standard.

Models, trained briefly here on a subsample of Fashion-MNIST (Adam, pixel input, normalization
inside; seed 0):
- fcn: the project's FCN 784-256-10, dense;          - rank8: the same with rank-8 factorized layers;
- sparse: fcn with 90% of each encoder layer's smallest-magnitude weights zeroed after training;
- nuclear: FCN trained with the nuclear-norm penalty (trainables.compression, strength 0.01);
- at: FCN adversarially trained (PGD-7 L-inf eps 0.1 on half of each batch);
- cnn: the project's small CNN (width 64);
- foreign: a model this project did not build: torch.nn.Sequential 784-200-100-10 with biases and
  its own fixed input scaling (x - 0.5) / 0.5, trained by plain torch code (SGD, momentum).
Times are CPU seconds of this process (time.process_time): with one torch thread that is the
compute time, robust to other jobs sharing the machine (wall time is not, on a shared machine).
For each (model, norm, eps): robust accuracy (RA) of the final protocol as the trial runs it (the
ensemble handed PGD-10's examples, skipping samples CROWN certifies and APGD-T targets CROWN proves
unreachable; its time includes PGD-10 and CROWN), of AutoAttack standard
(trainables.attacks.autoattack, the authors' package, full ensemble), their difference in points,
the time ratio ensemble / AutoAttack, how many samples AutoAttack fools that the ensemble does not,
and RA of PGD-10 (1 restart) for reference. Samples: the first --n of the test split.

--cost measures instead the final protocol's cost (ensemble_robust over the cpu-scale eps grids,
L-inf (0.01, 0.02, 0.04) and L2 (0.1, 0.25, 0.5), 1000 test samples, one thread) against training
the FCN 784-256-10 for 10 epochs on 10,000 samples (batch 128, SGD), and prints the ratio.

    PYTHONPATH=$PWD .venv/bin/python bench/attack_strength.py [--n 1000] [--eps-linf 0.02]
        [--eps-l2 0.25] [--models fcn,cnn] [--threads 1] [--quick] [--cost]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from trainables.attacks import adversarial_training_batch, autoattack, ensemble_robust, pgd
from trainables.compression import get_compression
from trainables.data import load_dataset
from trainables.errors import SweepError
from trainables.metrics import certified_by_bounds, margin_lower_bounds
from trainables.models import build_model

MODELS = ("fcn", "rank8", "sparse", "nuclear", "at", "cnn", "foreign")
TARGET_POINTS = 0.5


def _parse_eps(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or any(not v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated eps > 0, got {text!r}")
    return values


def _parse_models(text: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    if not names or any(n not in MODELS for n in names):
        raise argparse.ArgumentTypeError(f"models must be a comma-separated subset of "
                                         f"{','.join(MODELS)}, got {text!r}")
    return names


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


# ---- models ------------------------------------------------------------------------------------
def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float = 1e-3,
           extra_loss=None, batch_hook=None, optimizer: str = "adam") -> nn.Module:
    gen = torch.Generator().manual_seed(0)
    opt = (torch.optim.Adam(model.parameters(), lr=lr) if optimizer == "adam"
           else torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9))
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 128):
            idx = order[i:i + 128]
            xb, yb = x[idx], y[idx]
            if batch_hook is not None:
                xb = batch_hook(model, xb, yb, seed=epoch * 100_000 + i)
            loss = F.cross_entropy(model(xb), yb)
            if extra_loss is not None:
                loss = loss + extra_loss(model)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def _project_model(data, name: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, input_shape=data.input_shape, num_classes=data.num_classes,
                       mean=data.mean, std=data.std, **kwargs)


@torch.no_grad()
def _magnitude_prune(model: nn.Module, keep: float) -> nn.Module:
    for _, layer in model.encoder_layers():
        w = layer.weight
        k = max(1, round(keep * w.numel()))
        threshold = w.abs().flatten().kthvalue(w.numel() - k + 1).values
        w.mul_((w.abs() >= threshold).to(w.dtype))
    return model


class _Scale(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - 0.5) / 0.5


def boundable(model: nn.Module) -> nn.Module:
    """A model the linear relaxation can read, computing the same function (up to float rounding): the foreign model's
    input scaling (x - 0.5) / 0.5 = 2x - 1, which the relaxation does not know, folded into its
    first Linear layer (W(2x - 1) + b = 2W x + (b - W 1)). A certificate of the copy is one of the
    model. Other models are returned as they are."""
    if not (isinstance(model, nn.Sequential) and isinstance(model[0], _Scale)):
        return model
    first = model[2]
    folded = nn.Linear(first.in_features, first.out_features)
    with torch.no_grad():
        folded.weight.copy_(2 * first.weight)
        folded.bias.copy_(first.bias - first.weight.sum(1))
    return nn.Sequential(model[1], folded, *model[3:]).eval()


def build(name: str, data, epochs: int) -> nn.Module:
    x, y = data.x_train, data.y_train
    if name == "fcn":
        return _train(_project_model(data, "fcn"), x, y, epochs=epochs)
    if name == "rank8":
        return _train(_project_model(data, "fcn", rank=8), x, y, epochs=epochs)
    if name == "sparse":
        return _magnitude_prune(_train(_project_model(data, "fcn"), x, y, epochs=epochs), 0.1)
    if name == "nuclear":
        knob = get_compression("nuclear", strength=0.01)
        return _train(_project_model(data, "fcn"), x, y, epochs=epochs, extra_loss=knob.penalty)
    if name == "at":
        def hook(model, xb, yb, seed):
            return adversarial_training_batch(model, xb, yb, norm="linf", eps=0.1, steps=7,
                                              frac=0.5, seed=seed)
        return _train(_project_model(data, "fcn"), x, y, epochs=epochs, batch_hook=hook)
    if name == "cnn":
        return _train(_project_model(data, "cnn", width=64), x, y, epochs=epochs)
    if name == "foreign":
        torch.manual_seed(1)
        model = nn.Sequential(_Scale(), nn.Flatten(), nn.Linear(784, 200), nn.ReLU(),
                              nn.Linear(200, 100), nn.ReLU(), nn.Linear(100, 10))
        return _train(model, x, y, epochs=epochs, lr=0.05, optimizer="sgd")
    raise AssertionError(name)


# ---- measurements ------------------------------------------------------------------------------
@torch.no_grad()
def _correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.cat([model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]
                      for i in range(0, len(x), 1000)])


def compare(model: nn.Module, x: torch.Tensor, y: torch.Tensor, norm: str, eps: float
            ) -> dict[str, float]:
    # Our protocol as the trial runs it: handed PGD-10's examples, samples CROWN certifies and
    # targets it proves unreachable skipped; its time includes PGD-10's and CROWN's.
    start = time.process_time()
    x_pgd = pgd(model, x, y, norm=norm, eps=eps, steps=10, restarts=1, seed=0)
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    bounds = margin_lower_bounds(boundable(model), x, y, norm, eps)
    ens = ensemble_robust(model, x, y, norm, [eps], seed=0,
                          proven={eps: certified_by_bounds(bounds, correct)},
                          unreachable={eps: bounds > 0}, given={eps: x_pgd})[eps].robust
    t_ens = time.process_time() - start
    start = time.process_time()
    aa = _correct(model, autoattack(model, x, y, norm=norm, eps=eps, version="standard", seed=0),
                  y)
    t_aa = time.process_time() - start
    pgd10 = _correct(model, x_pgd, y)
    return {"clean": _correct(model, x, y).float().mean().item() * 100,
            "ens": ens.float().mean().item() * 100, "aa": aa.float().mean().item() * 100,
            "pgd": pgd10.float().mean().item() * 100, "t_ens": t_ens, "t_aa": t_aa,
            "aa_only": int((ens & ~aa).sum()), "ens_only": int((aa & ~ens).sum())}


def strength(args: argparse.Namespace) -> None:
    n_train = 2000 if args.quick else 5000
    epochs = 1 if args.quick else 3
    data = load_dataset("fashion_mnist", n_train=n_train, n_test=args.n, seed=0)
    x, y = data.x_test, data.y_test
    print(f"Fashion-MNIST, {len(x)} test samples, models trained {epochs} epochs on {n_train}; "
          f"torch threads {torch.get_num_threads()}; ensemble = APGD-CE + APGD-T (100 it, "
          f"9 targets); AA = AutoAttack standard; RA in %")
    header = (f"{'model':8} {'norm':4} {'eps':>6} {'clean':>6} {'ens RA':>7} {'AA RA':>7} "
              f"{'diff':>6} {'PGD10':>6} {'AAonly':>6} {'t_ens':>7} {'t_AA':>7} {'ratio':>6}")
    print(header, flush=True)
    misses = []
    for name in args.models:
        start = time.process_time()
        model = build(name, data, epochs)
        t_train = time.process_time() - start
        for norm, grid in (("linf", args.eps_linf), ("l2", args.eps_l2)):
            for eps in grid:
                r = compare(model, x, y, norm, eps)
                diff = r["ens"] - r["aa"]
                if abs(diff) > TARGET_POINTS:
                    misses.append((name, norm, eps, diff))
                print(f"{name:8} {norm:4} {eps:6.3g} {r['clean']:6.1f} {r['ens']:7.2f} "
                      f"{r['aa']:7.2f} {diff:+6.2f} {r['pgd']:6.2f} {r['aa_only']:6d} "
                      f"{r['t_ens']:6.1f}s {r['t_aa']:6.1f}s {r['t_ens'] / r['t_aa']:6.2f}",
                      flush=True)
        print(f"  ({name}: trained in {t_train:.1f} s)", flush=True)
    print(f"rows beyond {TARGET_POINTS} points of AutoAttack standard: {len(misses)}"
          + "".join(f"\n  {m[0]} {m[1]} eps={m[2]}: {m[3]:+.2f}" for m in misses))


def cost(args: argparse.Namespace) -> None:
    """Final protocol vs training time for the FCN 784-256-10 (the cpu scale's trial)."""
    n_eval = 200 if args.quick else 1000
    data = load_dataset("fashion_mnist", n_train=10_000, n_test=n_eval, seed=0)
    torch.manual_seed(0)
    model = _project_model(data, "fcn")
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    start = time.process_time()
    model.train()
    for _ in range(1 if args.quick else 10):
        order = torch.randperm(len(data.x_train), generator=gen)
        for i in range(0, len(order), 128):
            idx = order[i:i + 128]
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    t_train = time.process_time() - start
    x, y = data.x_test, data.y_test
    times, ras = {}, {}
    for norm, grid in (("linf", (0.01, 0.02, 0.04)), ("l2", (0.1, 0.25, 0.5))):
        start = time.process_time()
        result = ensemble_robust(model, x, y, norm, grid, seed=0)
        times[norm] = time.process_time() - start
        ras[norm] = [round(r.robust.float().mean().item() * 100, 1) for r in result.values()]
    clean = _correct(model, x, y).float().mean().item() * 100
    total = sum(times.values())
    print(f"FCN 784-256-10, clean {clean:.1f}%; torch threads {torch.get_num_threads()}; "
          "CPU seconds of this process")
    print(f"training {1 if args.quick else 10} epochs on {len(data.x_train)} samples "
          f"(batch 128, SGD): {t_train:.1f} s")
    for norm in times:
        print(f"ensemble_robust {norm} on {len(x)} samples: {times[norm]:.1f} s, RA {ras[norm]}")
    print(f"final protocol / training = {total:.1f} / {t_train:.1f} = {total / t_train:.2f}x")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line on stderr, exit 2 (no usage block)
        print(f"error: {message}; see --help", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    parser = _Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=_positive_int, default=1000, help="test samples (default 1000)")
    parser.add_argument("--eps-linf", type=_parse_eps, default=(0.02,), help="e.g. 0.01,0.02")
    parser.add_argument("--eps-l2", type=_parse_eps, default=(0.25,), help="e.g. 0.1,0.25")
    parser.add_argument("--models", type=_parse_models, default=MODELS,
                        help=f"comma-separated subset of {','.join(MODELS)}")
    parser.add_argument("--threads", type=_positive_int, default=1, help="torch threads")
    parser.add_argument("--quick", action="store_true", help="shorter training (smoke test)")
    parser.add_argument("--cost", action="store_true",
                        help="measure the final protocol's cost against training instead")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        cost(args) if args.cost else strength(args)
    except SweepError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
