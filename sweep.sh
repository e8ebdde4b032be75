#!/usr/bin/env bash
# Quickstart: set up (idempotent), then run the default sweep on an embedded local Ray.
# Extra arguments go to the launcher, e.g. ./sweep.sh --space neuron_l2 --scale smoke
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/python -m sweep.launch --space spectral_linf "$@"
