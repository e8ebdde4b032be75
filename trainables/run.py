"""Run one trial from the command line and print its metrics: `python -m trainables.run --help`.

Every TrialConfig field is a flag (--rank 8, --norms linf l2, --proximal / --no-proximal).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import typing
from pathlib import Path

from trainables import schema
from trainables.config import TrialConfig
from trainables.errors import SweepError


class _OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus the error; the contract is one line on stderr, then exit 2."""

    def error(self, message: str) -> typing.NoReturn:
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="python -m trainables.run",
        description="Train one model, attack it and measure its compressibility, epoch by epoch.",
    )
    hints = typing.get_type_hints(TrialConfig)
    for field in dataclasses.fields(TrialConfig):
        flag = "--" + field.name.replace("_", "-")
        kind, many = _flag_type(hints[field.name])
        default = field.default
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            parser.add_argument(flag, type=kind, nargs="+" if many else None, default=default,
                                metavar=field.name.upper(), help=f"default: {default}")
    parser.add_argument("--checkpoint-dir", type=Path, default=None,
                        help="resume from DIR/trial.pt if present and save there every epoch")
    parser.add_argument("--json", action="store_true",
                        help="print each epoch's full result (with robustness and layer rows) "
                             "as one JSON line")
    return parser


def _flag_type(hint) -> tuple[type, bool]:
    """(element type, is a list) for a TrialConfig annotation such as `tuple[int, ...] | None`."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is tuple:
        return typing.get_args(hint)[0], True
    if args and typing.get_origin(args[0]) is tuple:
        return typing.get_args(args[0])[0], True
    return (args[0] if args else hint), False


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    checkpoint_dir, as_json = args.pop("checkpoint_dir"), args.pop("json")
    try:
        config = TrialConfig.from_dict(args)
        if checkpoint_dir:
            check_checkpoint_dir(checkpoint_dir)
        from trainables.posthoc import make_trial  # torch loads only after the cheap checks
        from trainables.trial import CHECKPOINT_FILE

        trial = make_trial(config)  # --model-factory: a user's model
        if checkpoint_dir and (checkpoint_dir / CHECKPOINT_FILE).exists():
            trial.load(checkpoint_dir)
        if checkpoint_dir:
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
        for result in trial.epochs():
            if checkpoint_dir:
                trial.save(checkpoint_dir)
            print(json.dumps(_finite(result)) if as_json else _summary(result),
                  flush=True)
    except SweepError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the last finished epoch's checkpoint (if any) is complete
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # a full disk or a vanished directory while saving a checkpoint
        print(f"error: cannot write the checkpoint in {checkpoint_dir} ({err.strerror or err}); "
              "free space or pass another --checkpoint-dir", file=sys.stderr)
        return 1
    return 0


def check_checkpoint_dir(directory: Path) -> None:
    """--checkpoint-dir must be (or become) a writable directory; checked before training."""
    probe = directory
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise SweepError(
            f"--checkpoint-dir {directory}: {probe} is not a directory; pass a directory path"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise SweepError(
            f"--checkpoint-dir {directory}: {probe} is not writable; pass a directory you can "
            "write to"
        )


def _summary(result: dict) -> str:
    headlines = "  ".join(f"{name} {result[name]:.3f}" for name in schema.HEADLINES)
    line = (
        f"epoch {result['iteration']:3d}  loss {result['train_loss']:.4f}  "
        f"clean {result['clean_acc']:.4f}  robust {result['robust_acc']:.4f}  {headlines}  "
        f"Lhat_inf {result['lip_linf']:.3g}  Lhat_2 {result['lip_l2']:.3g}  "
        f"{result['epoch_seconds']:.1f}s"
    )
    rows = [
        f"    {r['norm']:>4} eps={r['eps']:<7g} {r['attack']:<9} robust {r['robust_acc']:.4f}  "
        f"certified {r['certified_acc']:.4f}  gap {r['measured_gap']:.4f} <= bound "
        f"{r['bound_gap']:.4g}  (align est {r['align_est_gap']:.4f}, first order "
        f"{r['first_order_gap']:.4f})"
        for r in result["robustness"]
    ]
    return "\n".join([line + (" DIVERGED" if result["diverged"] else ""), *rows])


def _finite(value):
    """Strict JSON has no NaN/inf: write them as null / "inf" strings."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    return value


if __name__ == "__main__":
    sys.exit(main())
