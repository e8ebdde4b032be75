"""`python -m analysis.query`: SQL over the tables, output files, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pytest

from analysis.errors import QueryError
from analysis.query import main, run_query


def test_sql_answers_over_registered_tables(run_dir):
    answer = run_query(run_dir, "SELECT status, COUNT(*) AS n FROM trials GROUP BY status "
                                "ORDER BY status")
    assert answer.rows() == [("completed", 30), ("errored", 1)]
    joined = run_query(
        run_dir,
        "SELECT t.compression, MIN(r.robust_acc) AS worst FROM robustness r "
        "JOIN trials t ON r.trial_id = t.trial_id AND r.run_id = t.run_id "
        "WHERE r.attack = 'pgd' GROUP BY t.compression ORDER BY t.compression",
    )
    raw = pl.read_parquet(run_dir / "store/robustness/*.parquet")
    assert joined["compression"].to_list() == ["nuclear", "rank"]
    assert joined["worst"].min() == raw.filter(pl.col("attack") == "pgd")["robust_acc"].min()


def test_cli_prints_and_writes_csv_and_parquet(run_dir, tmp_path, capsys):
    sql = "SELECT trial_id, iteration, clean_acc FROM history WHERE iteration = 3"
    assert main([str(run_dir), sql]) == 0
    assert "trial_id" in capsys.readouterr().out
    assert main([str(run_dir), sql, "--csv", str(tmp_path / "a.csv")]) == 0
    assert main([str(run_dir), sql, "--parquet", str(tmp_path / "a.parquet")]) == 0
    csv, parquet = pl.read_csv(tmp_path / "a.csv"), pl.read_parquet(tmp_path / "a.parquet")
    assert csv.height == parquet.height == 31 - 1  # one row per trial with a third epoch
    assert (parquet["iteration"] == 3).all()


def test_bad_sql_exits_2_with_one_line(run_dir, capsys):
    for sql in ("SELEC nothing", "SELECT nope FROM trials", "SELECT * FROM missing_table"):
        assert main([str(run_dir), sql]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: query failed:") and "\n" not in err


def test_cli_process_exit_codes(tmp_path):
    store = tmp_path / "old" / "store"
    store.mkdir(parents=True)
    (store / "_schema.json").write_text(json.dumps({"schema_version": 0, "tables": {}}))
    cases = [
        ([str(tmp_path / "missing"), "SELECT 1"], 2, "no run directory"),
        ([str(tmp_path / "old"), "SELECT 1"], 2, "schema_version must be 1"),
    ]
    for args, code, text in cases:
        done = subprocess.run([sys.executable, "-m", "analysis.query", *args],
                              check=False, capture_output=True, text=True, timeout=60)
        assert done.returncode == code, done.stderr
        assert done.stderr.count("\n") == 1 and text in done.stderr
        assert done.stdout == ""


def test_with_combines_runs(run_dir, tmp_path, capsys):
    from tests.analysis.conftest import synthetic_run

    other = synthetic_run(tmp_path / "other", knobs=("rank",), strengths=(0.5,), seeds=(0, 1))
    sql = "SELECT run_id, COUNT(*) AS n FROM trials GROUP BY run_id ORDER BY run_id"
    path = tmp_path / "runs.csv"
    assert main([str(run_dir), sql, "--with", str(other), "--csv", str(path)]) == 0
    assert pl.read_csv(path).rows() == [("other", 3), (run_dir.name, 31)]


SECRET_LINE = "do-not-print-me-4242"
FILE_QUERIES = [
    "SELECT * FROM read_csv('{f}')",
    "select * from READ_CSV ( '{f}' )",
    'SELECT * FROM "read_csv"(\'{f}\')',
    "SELECT * FROM /* a comment */ read_csv -- another\n ('{f}')",
    "SELECT * FROM trials WHERE trial_id IN (SELECT column_1 FROM read_csv('{f}'))",
    "WITH x AS (SELECT * FROM Read_Parquet('{f}')) SELECT * FROM x",
    "SELECT * FROM read_ipc('{f}')",
    "SELECT * FROM read_json('{f}')",
    "SELECT * FROM trials UNION ALL SELECT * FROM read_csv('{f}', has_headers => false)",
]


def test_file_reading_table_functions_are_refused(run_dir, tmp_path, capsys):
    secret = tmp_path / "secret.csv"
    secret.write_text(f"column_1\n{SECRET_LINE}\n")
    for template in FILE_QUERIES:
        sql = template.format(f=secret)
        assert main([str(run_dir), sql]) == 2, sql
        out, err = capsys.readouterr()
        assert SECRET_LINE not in out + err, sql
        assert out == "" and err.startswith("error: query refused") and err.count("\n") == 1, sql
    # A string or a column that merely names such a function is no call, and still works.
    fine = run_query(run_dir, "SELECT 'read_csv(x)' AS s, COUNT(*) AS n FROM trials")
    assert fine.rows() == [("read_csv(x)", 31)]


def test_the_engine_really_reads_files_without_the_check(run_dir, tmp_path, monkeypatch):
    """Why the check exists: without it Polars SQL returns the file (and the test above fails)."""
    import analysis.query as query

    secret = tmp_path / "secret.csv"
    secret.write_text(f"column_1\n{SECRET_LINE}\n")
    monkeypatch.setattr(query, "check_sql", lambda sql, tables: None)
    sql = f"SELECT * FROM trials WHERE trial_id IN (SELECT column_1 FROM read_csv('{secret}'))"
    with pytest.raises(QueryError, match="scans"):  # the plan check is the second line of defence
        run_query(run_dir, sql)
    monkeypatch.setattr(query, "check_plan", lambda frame, dirs: None)
    leaked = run_query(run_dir, f"SELECT * FROM read_csv('{secret}')")
    assert leaked["column_1"].to_list() == [SECRET_LINE]


def test_cli_process_prints_nothing_of_etc_passwd(run_dir):
    sql = "SELECT * FROM read_csv('/etc/passwd')"
    done = subprocess.run(
        [sys.executable, "-m", "analysis.query", str(run_dir), sql],
        check=False, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "root" not in done.stderr
