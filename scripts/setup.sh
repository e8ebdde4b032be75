#!/usr/bin/env bash
# Idempotent set-up: the Fashion-MNIST Debian package (when root on Debian), a .venv with the
# project and its test extra. Re-installs only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

fmnist=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ ! -f "$fmnist" ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "setup: installing dataset-fashion-mnist (Debian package)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi

# The report's browser test (tests/analysis/test_report_browser.py) drives headless Chromium.
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "setup: installing chromium (Debian package, for the report's browser test)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "setup: installing the project into .venv"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    # The torch range first, so pip takes the CPU build on disk rather than a CUDA download.
    .venv/bin/python -m pip install -q "torch>=2.4,<2.14"
    .venv/bin/python -m pip install -q -e ".[test]"
    rm -f .venv/.installed-*
    touch "$stamp"
fi
