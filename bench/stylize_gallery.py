"""The gallery of docs/stylize.md: real style transfers, their cost curves, timings.

    python bench/stylize_gallery.py [--out docs/stylize] [--size 256] [--only NAME ...]

Content: a face from ../shared/faces/lfw_dev and the photos in ../shared/styles; style:
the paintings there. Each run writes <name>.png (content | style | output side by side)
and appends its plan, seconds per step, final costs, identity distance and cost history
to runs.json; costs.png plots J / J(step 1) of every run, one panel per network.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from app.core.config import Settings
from app.core.model.device import resolve_device
from app.core.model.pipeline import FacePipeline
from app.core.style.networks import NetworkCache
from app.core.style.optimise import prepare, stylize
from app.core.style.options import StyleOptions, plan
from app.domains.jobs.identity import with_pipeline
from app.domains.jobs.runner import encode_png

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
STYLES = SHARED / "styles"
FACE = SHARED / "faces" / "lfw_dev" / "Aaron_Sorkin" / "Aaron_Sorkin_0001.jpg"

RUNS: list[dict[str, Any]] = [
    {"name": "vgg19-astronaut-starry", "content": STYLES / "content_astronaut.png",
     "style": STYLES / "starry_night.jpg", "network": "vgg19", "steps": 60},
    {"name": "vgg19-lfw-scream", "content": FACE,
     "style": STYLES / "the_scream.jpg", "network": "vgg19", "steps": 60},
    {"name": "vgg19-chelsea-wave", "content": STYLES / "content_chelsea.png",
     "style": STYLES / "great_wave.jpg", "network": "vgg19", "steps": 60},
    {"name": "face-astronaut-starry", "content": STYLES / "content_astronaut.png",
     "style": STYLES / "starry_night.jpg", "network": "dlib-resnet", "steps": 150},
    {"name": "face-lfw-scream", "content": FACE,
     "style": STYLES / "the_scream.jpg", "network": "dlib-resnet", "steps": 150},
    {"name": "face-chelsea-wave", "content": STYLES / "content_chelsea.png",
     "style": STYLES / "great_wave.jpg", "network": "dlib-resnet", "steps": 150},
    # the face network without its extra care: plain Gatys (raw pixels, no shifts, no TV,
    # no RGB Gram), for comparison with face-lfw-scream
    {"name": "face-plain-lfw-scream", "content": FACE,
     "style": STYLES / "the_scream.jpg", "network": "dlib-resnet", "steps": 150,
     "options": {"pyramid_levels": 0, "shift_average": False, "tv_weight": 0.0,
                 "style_layers": {"stem": 1.0, "level0_block2": 1.0, "level1_block3": 1.0,
                                  "level2_block2": 1.0}}},
]  # fmt: skip


def side_by_side(images: list[np.ndarray], height: int) -> Image.Image:
    tiles = []
    for image in images:
        tile = Image.fromarray(image)
        width = round(tile.width * height / tile.height)
        tiles.append(tile.resize((width, height), Image.Resampling.LANCZOS))
    gap = 4
    out = Image.new("RGB", (sum(t.width for t in tiles) + gap * (len(tiles) - 1), height), "white")
    x = 0
    for tile in tiles:
        out.paste(tile, (x, 0))
        x += tile.width + gap
    return out


COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    """J / J(step 1) on a log scale against the step, one panel per network (PIL)."""
    networks = sorted({run["network"] for run in runs})
    panel_w, panel_h, margin = 460, 300, 50
    image = Image.new("RGB", (panel_w * len(networks), panel_h + 40), "white")
    draw = ImageDraw.Draw(image)
    for p, network in enumerate(networks):
        chosen = [run for run in runs if run["network"] == network]
        x0, y0 = p * panel_w + margin, 30
        w, h = panel_w - margin - 20, panel_h - 50
        ratios = [np.array([c[0] for c in run["history"]]) / run["history"][0][0] for run in chosen]
        low = np.floor(np.log10(min(r.min() for r in ratios)))
        steps = max(len(r) for r in ratios)
        draw.rectangle([x0, y0, x0 + w, y0 + h], outline="black")
        for decade in range(int(low), 1):
            y = y0 + h * (-decade) / -low
            draw.line([x0, y, x0 + w, y], fill="#dddddd")
            draw.text((x0 - 40, y - 6), f"1e{decade}", fill="black")
        for s in range(0, steps + 1, max(1, steps // 5)):
            x = x0 + w * s / steps
            draw.text((x - 6, y0 + h + 4), str(s), fill="black")
        draw.text((x0, 8), f"{network}: J / J(step 1), log scale, against step", fill="black")
        for i, (run, ratio) in enumerate(zip(chosen, ratios, strict=True)):
            colour = COLOURS[i % len(COLOURS)]
            points = [
                (x0 + w * (k + 1) / steps, y0 + h * np.log10(v) / low) for k, v in enumerate(ratio)
            ]
            draw.line(points, fill=colour, width=2)
            draw.text((x0 + 8, y0 + h - 16 * (len(chosen) - i)), run["name"], fill=colour)
    image.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "stylize")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", help="run only these names (others kept)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = Settings(_env_file=None, device="cpu")
    networks = NetworkCache(settings, resolve_device("cpu"))
    faces = FacePipeline.load(settings)
    record = args.out / "runs.json"
    done: dict[str, Any] = json.loads(record.read_text()) if record.exists() else {}
    for run in RUNS:
        if args.only and run["name"] not in args.only:
            continue
        content_bytes = run["content"].read_bytes()
        content = np.asarray(Image.open(run["content"]).convert("RGB"))
        style = np.asarray(Image.open(run["style"]).convert("RGB"))
        options = StyleOptions.model_validate(
            {"network": run["network"], "steps": run["steps"], "max_side": args.size,
             "seed": 1, **run.get("options", {})}
        )  # fmt: skip
        job_plan = plan(options, settings)
        network = networks.get(run["network"])
        started = time.perf_counter()
        outcome = stylize(network, content, style, job_plan)
        seconds = (time.perf_counter() - started) / len(outcome.history)
        png = encode_png(outcome.image)
        report = with_pipeline(faces, content_bytes, png)
        shown_content, shown_style = prepare(content, style, job_plan)
        side_by_side([shown_content, shown_style, outcome.image], args.size).save(
            args.out / f"{run['name']}.png", optimize=True
        )
        done[run["name"]] = {
            "network": run["network"],
            "content": run["content"].name,
            "style": run["style"].name,
            "plan": job_plan.model_dump(),
            "seconds_per_step": round(seconds, 3),
            "load": round(os.getloadavg()[0], 2),
            "J": [outcome.history[0].total, outcome.history[-1].total],
            "identity_distance": report.distance,
            "identity_verified": report.verified,
            "history": [[c.total, c.content, c.style] for c in outcome.history],
        }
        print(
            f"{run['name']}: {seconds:.2f} s/step, J {outcome.history[0].total:.3g} -> "
            f"{outcome.history[-1].total:.3g}, identity {report.distance} {report.verified}",
            flush=True,
        )
        record.write_text(json.dumps(done, indent=1))
    plot([{"name": k, **v} for k, v in done.items()], args.out / "costs.png")


if __name__ == "__main__":
    main()
