"""The Parquet result store: layout and schema, the buffered exactly-once writer, the Tune callback.

Import-light: the Tune callback (which imports Ray) loads on first use.
"""

from __future__ import annotations

from typing import Any

from sweep.store._layout import TRIALS_EXTRA_COLUMNS, StoreLayout, table_columns
from sweep.store._writer import ResultStore

__all__ = ["TRIALS_EXTRA_COLUMNS", "ResultStore", "StoreCallback", "StoreLayout", "table_columns"]


def __getattr__(name: str) -> Any:
    if name == "StoreCallback":
        from sweep.store._callback import StoreCallback

        return StoreCallback
    raise AttributeError(name)
