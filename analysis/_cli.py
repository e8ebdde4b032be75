"""What every analysis CLI does with bad input: one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

EXIT_BAD_INPUT = 2


def fail(err: BaseException | str) -> int:
    print(f"error: {err}", file=sys.stderr)
    return EXIT_BAD_INPUT


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus the error; the contract is one line, then exit 2."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see --help)")
        raise SystemExit(EXIT_BAD_INPUT)
