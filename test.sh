#!/usr/bin/env bash
# Set up (idempotent), then run the whole test suite on a local Ray. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
