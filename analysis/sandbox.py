"""Keep a SQL query over a run inside that run's registered tables.

Polars SQL offers table functions that read any path the user can read (read_csv, read_parquet,
read_ipc, read_json, ...), and it runs them while *building* the plan (schema inference), before
anything is collected. So the check is made on the SQL text first, by a small lexer that sees
through comments, case, whitespace and quoted identifiers; any call of a file-reading function
name is refused. A second check, on the plan the engine built, refuses a scan of any file outside
the run directories (a defence against a function this lexer does not know).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import polars as pl

from analysis.errors import QueryError

# Table functions of Polars SQL and the names other engines use for the same thing; any name
# starting with read_ or scan_ is refused too, so a future reader function is covered.
_FILE_FUNCTIONS = frozenset({"glob", "read_blob", "read_text", "read_file", "load", "copy"})
_FILE_PREFIXES = ("read_", "scan_")
_SCAN = re.compile(r"\b(\w+) SCAN \[([^\]]*)\]")


def check_sql(sql: str, tables: Iterable[str]) -> None:
    """Raise QueryError when the SQL calls a function that reads files."""
    tokens = list(_tokens(sql))
    for (kind, text), following in zip(tokens, tokens[1:] + [("end", "")]):
        if kind != "name" or following != ("punct", "("):
            continue
        name = text.lower()
        if name in _FILE_FUNCTIONS or name.startswith(_FILE_PREFIXES):
            raise QueryError(
                f"query refused: {name}(...) reads files, and a query may read only the run's "
                f"tables ({', '.join(tables)}); select FROM those tables"
            )


def check_plan(frame: pl.LazyFrame, run_dirs: Iterable[Path]) -> None:
    """Raise QueryError when the engine's plan scans a file outside the run directories."""
    roots = [str(Path(d).resolve()) + "/" for d in run_dirs]
    for kind, sources in _SCAN.findall(frame.explain(optimized=False)):
        first = sources.split(", ")[0].strip()
        if first and not any(str(Path(first).resolve()).startswith(r) for r in roots):
            raise QueryError(
                f"query refused: it scans {kind} file {first}, outside the run's store; "
                "select FROM the run's tables only"
            )


def _tokens(sql: str) -> Iterator[tuple[str, str]]:
    """("name", identifier) for bare and quoted identifiers, ("punct", char) for symbols;
    comments, whitespace and string literals are dropped (a string is never a name)."""
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c.isspace():
            i += 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif c == "'":
            i = _close_quote(sql, i, "'")
            yield ("string", "")
        elif c in "\"`":
            end = _close_quote(sql, i, c)
            yield ("name", sql[i + 1 : end - 1].replace(c * 2, c))
            i = end
        elif c.isalnum() or c == "_" or c == "$":
            j = i
            while j < n and (sql[j].isalnum() or sql[j] in "_$"):
                j += 1
            yield ("name", sql[i:j])
            i = j
        else:
            yield ("punct", c)
            i += 1


def _close_quote(sql: str, start: int, close: str) -> int:
    """Index just after the quote closing the one at start (a doubled quote is an escape)."""
    i = start + 1
    while i < len(sql):
        if sql[i] == close:
            if sql.startswith(close * 2, i):
                i += 2
                continue
            return i + 1
        i += 1
    return len(sql)
