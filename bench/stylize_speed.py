"""Seconds per style-transfer step: ours against pastiche's own command line.

    python bench/stylize_speed.py [--size 256] [--steps 20] [--rounds 2] [--threads N]
    python bench/stylize_speed.py --only ours --device cuda --size 256 512   # GPU: ours alone

Same inputs, same settings for both: VGG19 with pastiche's quantised ImageNet weights,
long side --size, L-BFGS with one evaluation per step, content layer block4_relu2, style
layers block1..5_relu1, start from the content image, on the CPU. Each tool runs in its
own process, alternating (pastiche, ours, pastiche, ours, ...) so both see the same load;
the first --warmup steps of every run are left out (start-up, first allocations). Prints
the median seconds per step of each tool over its runs. `--device cuda` runs ours on the
GPU (pastiche's command line is CPU-only here, so `--only ours` goes with it); several
--size values give one line each, with the time a 60-step job would take.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "styles"


def pastiche_seconds(
    content: Path, style: Path, args: argparse.Namespace, env: dict[str, str]
) -> float:
    """pastiche prints 'step elapsed loss' every --info-step: per-step time from that."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            str(ROOT / ".venv" / "bin" / "pastiche"),
            "--content", str(content), "--styles", str(style),
            "--output", str(Path(tmp) / "out.png"),
            "--size", str(args.size), "--num-steps", str(args.steps),
            "--optimizer", "lbfgs", "--device", "cpu", "--seed", "1", "--info-step", "1",
        ]  # fmt: skip
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    elapsed = {
        int(m.group(1)): float(m.group(2))
        for m in re.finditer(r"^(\d+)\s+([\d.]+)\s+\S+$", out, re.MULTILINE)
    }
    first, last = args.warmup, args.steps
    return (elapsed[last] - elapsed[first]) / (last - first)


OURS = """
import json, sys, time, numpy as np, torch
from PIL import Image
from app.core.config import Settings
from app.core.model.device import resolve_device
from app.core.style.networks import NetworkCache
from app.core.style.optimise import stylize
from app.core.style.options import StyleOptions, plan
content, style, size, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
device = sys.argv[5]
settings = Settings(_env_file=None, device=device)
network = NetworkCache(settings, resolve_device(device)).get("vgg19")
options = StyleOptions(network="vgg19", steps=steps, max_side=size, init="content", seed=1)
stamps = []
def on_step(step, costs):
    if device.startswith("cuda"):
        torch.cuda.synchronize()  # a step ends when its kernels do
    stamps.append(time.perf_counter())
    return True
rgb = lambda p: np.asarray(Image.open(p).convert("RGB"))
stylize(network, rgb(content), rgb(style), plan(options, settings), on_step)
print(json.dumps(stamps))
"""


def our_seconds(content: Path, style: Path, args: argparse.Namespace, env: dict[str, str]) -> float:
    command = [
        sys.executable, "-c", OURS, str(content), str(style), str(args.size), str(args.steps),
        args.device,
    ]  # fmt: skip
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    stamps = json.loads(out.stdout.strip().splitlines()[-1])
    first, last = args.warmup, args.steps
    return (stamps[last - 1] - stamps[first - 1]) / (last - first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--content", type=Path, default=SHARED / "content_astronaut.png")
    parser.add_argument("--style", type=Path, default=SHARED / "starry_night.jpg")
    parser.add_argument("--size", type=int, nargs="+", default=[256])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, help="OMP/torch threads for both (default: torch's)")
    parser.add_argument("--device", default="cpu", help="ours: cpu, cuda or cuda:N")
    parser.add_argument("--only", choices=["ours", "pastiche"], help="run one tool alone")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
        env["FACESVC_TORCH_THREADS"] = str(args.threads)
    tools = [("pastiche", pastiche_seconds), ("ours", our_seconds)]
    tools = [(name, run) for name, run in tools if args.only in (None, name)]
    sizes = args.size
    for size in sizes:
        args.size = size
        print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.2f}; {args.content.name} x {args.style.name}, "
              f"{args.size} px, L-BFGS, {args.steps} steps (first {args.warmup} left out), "
              f"threads {args.threads or 'default'}, ours on {args.device}")  # fmt: skip
        times: dict[str, list[float]] = {name: [] for name, _ in tools}
        started = time.time()
        for round_ in range(args.rounds):
            for name, run in tools:
                seconds = run(args.content, args.style, args, env)
                times[name].append(seconds)
                print(f"round {round_ + 1} {name:8s} {seconds:.3f} s/step", flush=True)
        medians = {name: statistics.median(values) for name, values in times.items()}
        line = ", ".join(f"{name} {value:.3f}" for name, value in medians.items())
        if len(medians) == 2:
            line += f" (ours/pastiche {medians['ours'] / medians['pastiche']:.2f})"
        job = ", ".join(f"{name} {60 * v:.1f} s" for name, v in medians.items())
        print(f"{size} px median s/step: {line}; a 60-step job: {job}; "
              f"load {os.getloadavg()[0]:.2f}; {time.time() - started:.0f} s in all")  # fmt: skip


if __name__ == "__main__":
    main()
