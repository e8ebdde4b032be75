"""Every bad input to python -m trainables.audit: exit 2, one line on stderr, nothing on stdout,
no traceback; a malicious pickle is refused without running."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from trainables.audit import main

REPO = Path(__file__).resolve().parents[2]

FACTORIES = textwrap.dedent(
    """
    import torch
    from torch import nn

    NOT_CALLABLE = 3

    def good():
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(4, 3))

    def scalar_output():
        return nn.Sequential(nn.Flatten(), nn.Linear(4, 1), nn.Flatten(0))

    def not_a_module():
        return "model"

    def needs_arguments(width):
        return nn.Linear(4, width)
    """
)


class _Exploit:
    """Unpickling this would run a shell command that creates a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    (root / "bad_factories.py").write_text(FACTORIES)
    (root / "broken_import.py").write_text("raise RuntimeError('half-written module')\n")
    rng = np.random.default_rng(0)
    x = rng.random((10, 4)).astype(np.float32)
    y = rng.integers(0, 3, 10)
    np.savez(root / "good.npz", x=x, y=y)
    np.savez(root / "x_above_one.npz", x=x * 255, y=y)
    np.savez(root / "label_too_big.npz", x=x, y=np.full(10, 3))
    np.savez(root / "label_negative.npz", x=x, y=np.full(10, -1))
    np.savez(root / "float_labels.npz", x=x, y=y.astype(np.float32))
    np.savez(root / "no_y.npz", x=x)
    np.savez(root / "wrong_shape.npz", x=rng.random((10, 5)).astype(np.float32), y=y)
    np.savez(root / "pickled.npz", x=np.array([{"a": 1}] * 10, dtype=object), y=y)
    (root / "not_npz.npz").write_text("hello")
    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).state_dict(), root / "good.pt")
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(5, 3)).state_dict(), root / "misfit.pt")
    torch.save({"1.weight": torch.zeros(3, 4)}, root / "missing_key.pt")
    torch.save(torch.zeros(3), root / "tensor.pt")
    torch.save({"1.weight": _Exploit(root / "PWNED")}, root / "malicious.pt")
    return root


_GOOD = ["--model", "bad_factories:good", "--data", "good.npz"]

# (case, argv, words the one error line must contain)
CASES = [
    ("module not importable", ["--model", "no_such_module:build", "--data", "good.npz"],
     "cannot be imported"),
    ("module raises on import", ["--model", "broken_import:build", "--data", "good.npz"],
     "half-written module"),
    ("no colon", ["--model", "bad_factories", "--data", "good.npz"], "MODULE:FACTORY"),
    ("factory missing", ["--model", "bad_factories:nope", "--data", "good.npz"], "not a callable"),
    ("factory not callable", ["--model", "bad_factories:NOT_CALLABLE", "--data", "good.npz"],
     "not a callable"),
    ("factory needs arguments", ["--model", "bad_factories:needs_arguments", "--data", "good.npz"],
     "no arguments"),
    ("factory returns no module", ["--model", "bad_factories:not_a_module", "--data", "good.npz"],
     "not a torch.nn.Module"),
    ("wrong output shape", ["--model", "bad_factories:scalar_output", "--data", "good.npz"],
     "logits (N, classes)"),
    ("missing .py file", ["--model", "nowhere.py:build", "--data", "good.npz"], "does not exist"),
    ("weights do not fit", [*_GOOD, "--weights", "misfit.pt"], "do not fit"),
    ("weights miss a key", [*_GOOD, "--weights", "missing_key.pt"], "do not fit"),
    ("weights not a dict", [*_GOOD, "--weights", "tensor.pt"], "not a state_dict"),
    ("malicious pickle", [*_GOOD, "--weights", "malicious.pt"], "weights_only"),
    ("weights missing", [*_GOOD, "--weights", "nowhere.pt"], "does not exist"),
    ("data missing", ["--model", "bad_factories:good", "--data", "nowhere.npz"], "does not exist"),
    ("data not npz", ["--model", "bad_factories:good", "--data", "not_npz.npz"], "np.savez"),
    ("data with pickles", ["--model", "bad_factories:good", "--data", "pickled.npz"], "np.savez"),
    ("data without y", ["--model", "bad_factories:good", "--data", "no_y.npz"], "lacks"),
    ("x outside [0, 1]", ["--model", "bad_factories:good", "--data", "x_above_one.npz"],
     "[0, 1]"),
    ("label out of range", ["--model", "bad_factories:good", "--data", "label_too_big.npz"],
     "labels must be <"),
    ("negative label", ["--model", "bad_factories:good", "--data", "label_negative.npz"], ">= 0"),
    ("float labels", ["--model", "bad_factories:good", "--data", "float_labels.npz"],
     "integer labels"),
    ("input shape mismatch", ["--model", "bad_factories:good", "--data", "wrong_shape.npz"],
     "input shape"),
    ("unknown dataset", ["--model", "bad_factories:good", "--dataset", "imagenet"], "--dataset"),
    ("no data flag", ["--model", "bad_factories:good"], "--data"),
    ("bad norm", [*_GOOD, "--norms", "l3"], "--norms"),
    ("negative eps", [*_GOOD, "--eps-linf", "-0.1"], "eps_linf"),
    ("nan eps", [*_GOOD, "--eps-l2", "nan"], "eps_l2"),
    ("eps not a number", [*_GOOD, "--eps-l2", "big"], "--eps-l2"),
    ("n-eval zero", [*_GOOD, "--n-eval", "0"], "--n-eval"),
    ("threads zero", [*_GOOD, "--threads", "0"], "--threads"),
    ("steps zero", [*_GOOD, "--steps", "0"], "steps"),
    ("unknown attack", [*_GOOD, "--attack", "fgsm"], "--attack"),
    ("bad device", [*_GOOD, "--device", "tpu"], "--device"),
]


@pytest.mark.parametrize("case, argv, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line(files, monkeypatch, capsys, case, argv, words):
    monkeypatch.chdir(files)
    monkeypatch.syspath_prepend(str(files))
    for name in ("bad_factories", "broken_import"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own refusals
        code = stop.code
    out, err = capsys.readouterr()
    assert code == 2, (case, err)
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert words in lines[0], lines[0]
    assert not (files / "PWNED").exists()


def test_malicious_pickle_through_the_real_cli(files):
    """In a fresh process: exit 2, one line, no traceback, and the payload never ran."""
    proc = subprocess.run(
        [sys.executable, "-m", "trainables.audit", *_GOOD, "--weights", "malicious.pt"],
        cwd=files, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (files / "PWNED").exists()


def test_good_input_passes(files, monkeypatch, capsys):
    """The same fixtures with good values audit fine (the cases above fail for their reason)."""
    monkeypatch.chdir(files)
    monkeypatch.syspath_prepend(str(files))
    monkeypatch.delitem(sys.modules, "bad_factories", raising=False)
    code = main([*_GOOD, "--weights", "good.pt", "--norms", "linf", "--eps-linf", "0.1",
                 "--attack", "pgd", "--steps", "3", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert '"clean_acc"' in out
