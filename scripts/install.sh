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
if [ -n "$extras" ]; then
  # CompreFace's SDK for tests/domains/compreface: it pins requests-toolbelt 0.9.1, which
  # fails to import under urllib3 2; the dev extra brings toolbelt >= 1.0 instead.
  .venv/bin/python -m pip install --quiet --no-deps compreface-sdk==0.6.0
fi
echo "facesvc installed in .venv"
