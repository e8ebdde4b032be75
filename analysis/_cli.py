"""What every analysis CLI does with a SweepError: one line on stderr and exit code 2."""

from __future__ import annotations

import sys

EXIT_BAD_INPUT = 2


def fail(err: BaseException) -> int:
    print(f"error: {err}", file=sys.stderr)
    return EXIT_BAD_INPUT
