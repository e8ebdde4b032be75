"""Every bad input to `python -m trainables.run`: exit 2, exactly one line on stderr, no traceback,
the file system unchanged, and no code from a checkpoint ever run. One table, run in-process
through main(argv), which is all `python -m trainables.run` runs (tests/trainables/test_trial.py
runs the real process once)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

from trainables.config import TrialConfig
from trainables.run import main
from trainables.trial import CHECKPOINT_FILE, CHECKPOINT_FORMAT

BASE = ["--dataset", "digits", "--epochs", "1", "--width", "32", "--n-eval", "32",
        "--r-emp-samples", "4", "--attack-steps", "3", "--threads", "1"]
# root ignores file modes, so a read-only directory is only bad input for other users
AS_ROOT = os.geteuid() == 0


class TouchOnLoad:
    """A pickle payload: unpickling it creates the marker file (code run from storage)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def snapshot(root: Path) -> dict[str, tuple]:
    return {
        str(p.relative_to(root)): (p.is_dir(), p.stat().st_size, p.stat().st_mode,
                                   p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


def bad_checkpoints(root: Path, marker: Path) -> dict[str, Path]:
    """A checkpoint directory per way a trial.pt can be broken."""
    config = TrialConfig.from_dict(_config_of(BASE)).to_dict()
    made = {}

    def folder(name: str) -> Path:
        made[name] = root / name.replace(" ", "_")
        made[name].mkdir()
        return made[name] / CHECKPOINT_FILE

    folder("random bytes").write_bytes(os.urandom(4096))
    folder("empty file").write_bytes(b"")
    folder("plain pickle payload").write_bytes(pickle.dumps(TouchOnLoad(marker)))
    torch.save({"format": CHECKPOINT_FORMAT, "config": config, "model": TouchOnLoad(marker)},
               folder("torch zip payload"))
    torch.save({"format": CHECKPOINT_FORMAT, "config": config}, folder("missing keys"))
    torch.save({"format": CHECKPOINT_FORMAT, "config": config, "model": {"w": torch.ones(2)},
                "optimizer": {}, "generator": torch.zeros(1), "epoch": 0, "elapsed": 0.0,
                "pretrained": True, "last": {}}, folder("wrong tensors"))
    torch.save([1, 2, 3], folder("not a dict"))
    torch.save({"format": 99}, folder("other format"))
    torch.save({"format": CHECKPOINT_FORMAT, "config": {**config, "width": 64}},
               folder("other settings"))
    truncated = folder("truncated zip")
    torch.save({"format": CHECKPOINT_FORMAT, "config": config}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    return made


def _config_of(argv: list[str]) -> dict:
    pairs = dict(zip(argv[::2], argv[1::2]))
    return {
        "dataset": pairs["--dataset"], "epochs": 1, "width": 32, "n_eval": 32,
        "r_emp_samples": 4, "attack_steps": 3, "threads": 1,
    }


def bad_inputs(root: Path, marker: Path) -> dict[str, list[str]]:
    a_file = root / "a_file"
    a_file.write_text("x")
    cases = {
        "string for a float": [*BASE, "--strength", "abc"],
        "infinite lr": [*BASE, "--lr", "inf"],
        "NaN lr": [*BASE, "--lr", "nan"],
        "infinite eps": [*BASE, "--eps-linf", "inf"],
        "overflowing eps": [*BASE, "--eps-linf", "0.01", "1e400"],
        "NaN momentum": [*BASE, "--momentum", "nan"],
        "string for an eps": [*BASE, "--eps-linf", "x"],
        "negative eps": [*BASE, "--eps-l2", "-1"],
        "float for an int": [*BASE, "--epochs", "1.5"],
        "zero width": [*BASE, "--width", "0"],
        "rank above width": [*BASE, "--rank", "999"],
        "unknown dataset": [*BASE, "--dataset", "imagenet"],
        "unknown norm": [*BASE, "--norms", "l3"],
        "unknown flag": [*BASE, "--widht", "3"],
        "keep_frac above 1": [*BASE, "--keep-frac", "2"],
        "missing data dir": [*BASE, "--dataset", "fashion_mnist", "--data-dir", str(root / "no")],
        "cifar10 without data": [*BASE, "--dataset", "cifar10", "--data-dir", str(root / "no")],
        "checkpoint dir is a file": [*BASE, "--checkpoint-dir", str(a_file)],
        "checkpoint dir under a file": [*BASE, "--checkpoint-dir", str(a_file / "ck")],
    }
    if not AS_ROOT:
        read_only = root / "read_only"
        read_only.mkdir()
        os.chmod(read_only, 0o555)
        cases["read-only checkpoint dir"] = [*BASE, "--checkpoint-dir", str(read_only)]
    for what, folder in bad_checkpoints(root, marker).items():
        cases[f"checkpoint: {what}"] = [*BASE, "--checkpoint-dir", str(folder)]
    return cases


def test_every_bad_input_exits_2_with_one_line_and_changes_nothing(tmp_path, capsys):
    root, marker = tmp_path / "files", tmp_path / "payload_ran"
    root.mkdir()
    table = bad_inputs(root, marker)
    before = snapshot(root)
    for what, argv in table.items():
        try:
            code = main(argv)
        except SystemExit as stop:
            code = stop.code
        out, err = capsys.readouterr()
        assert code == 2, (what, code, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (what, err)
        assert "Traceback" not in out + err and out == "", what
        assert snapshot(root) == before, what
        assert not marker.exists(), f"{what}: a checkpoint ran code"

