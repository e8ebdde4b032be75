"""Why a run directory cannot be analysed. Each message is one line: the rule, the bad value, and
what to do. All are SweepError, so every CLI turns them into exit code 2."""

from __future__ import annotations

from trainables.errors import SweepError


class StoreError(SweepError):
    """The result store of a run directory cannot be analysed."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """No run directory, or no store/_schema.json inside it."""


class SchemaVersionError(StoreError):
    """The store was written with a schema version this analysis does not read."""


class MalformedStoreError(StoreError):
    """_schema.json, run.json or a Parquet file cannot be read, or a table lacks a column."""


class EmptyRunError(StoreError):
    """The run has no trial rows yet."""


class QueryError(SweepError):
    """A SQL query over the store failed (syntax, unknown table or column, bad types)."""


class ReportError(SweepError):
    """The report cannot be written where the run directory says (report/ a file, read-only)."""
