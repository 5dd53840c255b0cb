#!/usr/bin/env bash
# Rehearse bench/gpu_check.sh on this CPU machine the way the GPU machine runs it.
#
#   scripts/gpu_rehearse.sh [gpu_check.sh arguments; default: --device cpu --smoke]
#
# The GPU machine's Python has torch, torchvision, numpy, pillow, httpx, onnxruntime and
# prometheus-client (and what they need), requests, uvloop and pyyaml, nothing of ours. This makes a throwaway venv of
# the project venv's base interpreter, without system site-packages, whose only packages
# are those few (symlinked from the project venv, with their own dependencies), then runs
# gpu_check.sh with it, so that everything else must come from the bundle
# (.gpu_bundle/site-<this python>.tar.xz: scripts/gpu_bundle.sh --python-version X.Y).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
source_python=${PYTHON:-}
if [[ -z $source_python ]]; then
    for candidate in "$root/.venv/bin/python" /work/main/.venv/bin/python; do
        if [[ -x $candidate ]]; then source_python=$candidate; break; fi
    done
fi
base=$("$source_python" -c 'import sys; print(sys._base_executable)')
venv=$(mktemp -d)/venv
trap 'rm -rf "$(dirname "$venv")"' EXIT
"$base" -m venv --without-pip "$venv"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$site/../gpu-image"
box=$(cd "$site/../gpu-image" && pwd)

# Symlink the image's packages and their dependencies from the project venv into $box.
"$source_python" - "$box" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement

box = Path(sys.argv[1])
todo = ["torch", "torchvision", "numpy", "pillow", "httpx", "onnxruntime", "prometheus-client"]
todo += ["requests", "uvloop", "pyyaml"]  # also in the image (device KINDS.md)
seen: set[str] = set()
while todo:
    name = todo.pop()
    try:
        dist = distribution(name)
    except PackageNotFoundError:
        continue
    key = dist.metadata["Name"].lower().replace("_", "-")
    if key in seen:
        continue
    seen.add(key)
    for line in dist.requires or []:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            todo.append(requirement.name)
    base = Path(dist.locate_file(""))
    for top in {f.parts[0] for f in dist.files or [] if f.parts and f.parts[0] != ".."}:
        target, link = base / top, box / top
        if target.exists() and not link.exists():
            link.symlink_to(target)
print(f"GPU-image stand-in: {len(seen)} distributions: {', '.join(sorted(seen))}")
EOF
echo "$box" >"$site/gpu-image.pth"

args=("$@")
((${#args[@]})) || args=(--device cpu --smoke)
PYTHON=$venv/bin/python "$root/bench/gpu_check.sh" "${args[@]}"
