"""Every bad input to the analysis CLIs (report, query): exit 2, exactly one line on stderr, no
traceback, and the file system unchanged. One table per CLI; each row is run in-process through
main(argv) (what `python -m` runs), so the table stays fast."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from analysis import query, report
from tests.analysis.conftest import synthetic_run, write_store


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root with its type, size, mode and mtime."""
    return {
        str(p.relative_to(root)): (p.is_dir(), p.stat().st_size, p.stat().st_mode,
                                   p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


def call(main, argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_rc2(what: str, code: int, out: str, err: str) -> None:
    assert code == 2, (what, code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (what, err)
    assert "Traceback" not in out + err, what


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """One small good run plus broken copies of it, each a case below."""
    root = tmp_path_factory.mktemp("bad")
    good = synthetic_run(root / "good", knobs=("rank",), strengths=(0.0, 1.0), seeds=(0,))
    (root / "empty_dir").mkdir()
    write_store(root / "no_trials", {}, {})
    for name in ("report_is_file", "figures_is_file", "read_only", "bad_version", "bad_schema",
                 "garbage_parquet", "bad_run_json"):
        shutil.copytree(good, root / name)
    (root / "report_is_file" / "report").write_text("not a directory")
    (root / "figures_is_file" / "report").mkdir()
    (root / "figures_is_file" / "report" / "figures").write_text("not a directory")
    schema_json = root / "bad_version" / "store" / "_schema.json"
    layout = json.loads(schema_json.read_text())
    layout["schema_version"] += 1000  # newer than any reader: it cannot know the columns
    schema_json.write_text(json.dumps(layout))
    (root / "bad_schema" / "store" / "_schema.json").write_text("{not json")
    part = next((root / "garbage_parquet" / "store" / "trials").glob("*.parquet"))
    part.write_bytes(os.urandom(300))
    (root / "bad_run_json" / "run.json").write_text("[1, 2")
    (root / "a_file").write_text("x")
    os.chmod(root / "read_only", 0o555)
    yield root
    os.chmod(root / "read_only", 0o755)


# root ignores file modes, so a read-only directory is only bad input for other users
AS_ROOT = os.geteuid() == 0


def report_cases(root: Path) -> dict[str, list[str]]:
    cases = {
        "no such run": [str(root / "missing")],
        "run dir is a file": [str(root / "a_file")],
        "no store": [str(root / "empty_dir")],
        "no trial rows": [str(root / "no_trials")],
        "report/ is a file": [str(root / "report_is_file")],
        "report/figures is a file": [str(root / "figures_is_file")],
        "read-only run dir": [str(root / "read_only")],
        "schema version from the future": [str(root / "bad_version")],
        "_schema.json not JSON": [str(root / "bad_schema")],
        "random bytes as a Parquet part": [str(root / "garbage_parquet")],
        "run.json not JSON": [str(root / "bad_run_json")],
        "negative bootstrap": [str(root / "good"), "--n-boot", "-1"],
        "bootstrap not a number": [str(root / "good"), "--n-boot", "many"],
        "unknown flag": [str(root / "good"), "--colour"],
        "no run dir": [],
    }
    if AS_ROOT:
        del cases["read-only run dir"]
    return cases


def query_cases(root: Path) -> dict[str, list[str]]:
    good = str(root / "good")
    return {
        "no such run": [str(root / "missing"), "SELECT 1"],
        "no store": [str(root / "empty_dir"), "SELECT 1"],
        "schema version from the future": [str(root / "bad_version"), "SELECT 1"],
        "_schema.json not JSON": [str(root / "bad_schema"), "SELECT 1"],
        "syntax error": [good, "SELEC nothing"],
        "unknown column": [good, "SELECT nope FROM trials"],
        "unknown table": [good, "SELECT * FROM missing_table"],
        "csv into a missing folder": [good, "SELECT 1", "--csv", str(root / "no" / "a.csv")],
        "csv onto a directory": [good, "SELECT 1", "--csv", str(root / "empty_dir")],
        "csv and parquet together": [good, "SELECT 1", "--csv", "a", "--parquet", "b"],
        "max rows not a number": [good, "SELECT 1", "--max-rows", "x"],
        "--with a missing run": [good, "SELECT 1", "--with", str(root / "missing")],
        "no sql": [good],
    }


@pytest.mark.parametrize("cli, cases", [(report.main, report_cases), (query.main, query_cases)],
                         ids=["analysis.report", "analysis.query"])
def test_every_bad_input_exits_2_with_one_line_and_changes_nothing(runs, capsys, cli, cases):
    table = cases(runs)
    before = snapshot(runs)
    for what, argv in table.items():
        code, out, err = call(cli, argv, capsys)
        assert_one_line_rc2(what, code, out, err)
        assert snapshot(runs) == before, what
    # the same good run still works: the failures above were about the input, not the code
    good = runs / "good"
    if cli is query.main:
        assert call(cli, [str(good), "SELECT COUNT(*) AS n FROM trials"], capsys)[0] == 0
    assert json.loads((good / "run.json").read_text())["run_id"] == "good"
