#!/usr/bin/env bash
# Create .venv and install facesvc into it. `--dev` adds the test and lint tools.
# torch/torchvision are pinned to the builds that install offline on our CI machines;
# on another machine any torch >= 2.2 works (edit TORCH_PINS or preinstall torch).
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_PINS=${TORCH_PINS:-"torch==2.14.1 torchvision==0.29.1"}
PYTHON=${PYTHON:-python3}
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# shellcheck disable=SC2086
.venv/bin/python -m pip install --quiet $TORCH_PINS
.venv/bin/python -m pip install --quiet -e ".${extras}"
echo "facesvc installed in .venv"
