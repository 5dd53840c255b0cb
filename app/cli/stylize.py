"""`facesvc stylize CONTENT STYLE -o OUT.png`: the service's style transfer, here."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

from app.core.command_line import progress_bar, settings_of
from app.core.errors import ValidationFailed

OPTION_FIELDS = (
    "network",
    "alpha",
    "beta",
    "content_layer",
    "steps",
    "max_side",
    "init",
    "seed",
    "optimiser",
    "learning_rate",
    "tv_weight",
    "pyramid_levels",
    "shift_average",
    "normalisation",
)


def register(sub: Any) -> None:  # argparse's _SubParsersAction is private
    parser = sub.add_parser("stylize", help="neural style transfer (Gatys et al.) of a photo")
    parser.add_argument("content", type=Path, help="the photo")
    parser.add_argument("style", type=Path, help="the painting")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--network", default="vgg19", help="vgg19, dlib-resnet, vgg19-torchvision")
    parser.add_argument("--alpha", type=float, help="weight of J_content")
    parser.add_argument("--beta", type=float, help="weight of J_style")
    parser.add_argument("--content-layer")
    parser.add_argument("--style-layers", help='JSON object {"layer": lambda, ...}')
    parser.add_argument("--steps", type=int)
    parser.add_argument("--max-side", type=int, help="long side of the output")
    parser.add_argument("--init", choices=("noise", "content"), default="noise")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--optimiser", choices=("adam", "lbfgs"), default="lbfgs")
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--tv-weight", type=float)
    parser.add_argument("--pyramid-levels", type=int)
    parser.add_argument("--shift-average", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--normalisation", choices=("nhwc", "gatys", "ng"))
    parser.add_argument("--device", help="'auto', 'cpu' or 'cuda[:N]'")
    parser.add_argument("--costs", type=Path, help="write J, J_content, J_style per step (CSV)")
    parser.add_argument(
        "--identity",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="report the face's embedding distance to the original (default on)",
    )
    parser.add_argument("--list-layers", action="store_true", help="print the layers and exit")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run_stylize)


def _options(args: argparse.Namespace) -> Any:
    from app.core.style.options import StyleOptions

    values = {name: getattr(args, name) for name in OPTION_FIELDS}
    if args.style_layers:
        try:
            values["style_layers"] = json.loads(args.style_layers)
        except ValueError as error:
            raise ValidationFailed(f"--style-layers: not a JSON object: {error}") from error
    return StyleOptions.model_validate({k: v for k, v in values.items() if v is not None})


def run_stylize(args: argparse.Namespace) -> int:
    import time

    import numpy as np
    import torch
    from PIL import Image

    from app.core.model.decode import DecodeLimits, decode_image
    from app.core.model.device import resolve_device
    from app.core.style.config import StyleConfig
    from app.core.style.networks import NetworkCache, network_spec
    from app.core.style.optimise import Costs, stylize
    from app.core.style.options import plan
    from app.domains.jobs.runner import encode_png

    settings = settings_of(args)
    if args.device:
        settings = settings.model_copy(update={"device": args.device})
    if settings.torch_threads > 0:
        torch.set_num_threads(settings.torch_threads)
    if args.list_layers:
        print("\n".join(["input", *network_spec(args.network).layers()]))
        return 0
    style = StyleConfig.of(settings)
    job_plan = plan(_options(args), style)
    limits = DecodeLimits(settings.max_image_bytes, settings.max_image_pixels)
    content_bytes = args.content.read_bytes()
    content = decode_image(content_bytes, limits)
    painting = decode_image(args.style.read_bytes(), limits)
    network = NetworkCache(style, resolve_device(settings.device)).get(job_plan.network)

    bar = progress_bar(args, total=job_plan.steps, desc="stylizing", unit="step")

    def on_step(step: int, costs: Costs) -> bool:
        bar.set_postfix(J=f"{costs.total:.4g}", refresh=False)
        bar.update(1)
        return True

    started = time.perf_counter()
    try:
        outcome = stylize(network, content, painting, job_plan, on_step)
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    png = encode_png(outcome.image)
    args.output.write_bytes(png)
    if args.costs:
        with args.costs.open("w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(["step", "J", "J_content", "J_style"])
            for step, c in enumerate(outcome.history, start=1):
                writer.writerow([step, c.total, c.content, c.style])
    summary: dict[str, Any] = {
        "output": str(args.output),
        "size": list(np.asarray(outcome.image).shape[1::-1]),
        "steps": len(outcome.history),
        "seconds_per_step": seconds / max(1, len(outcome.history)),
        "J": outcome.history[-1].total,
        "J_content": outcome.history[-1].content,
        "J_style": outcome.history[-1].style,
        "plan": job_plan.model_dump(),
    }
    if args.identity:
        from app.core.model.pipeline import FacePipeline
        from app.domains.jobs.identity import with_pipeline

        report = with_pipeline(FacePipeline.load(settings), content_bytes, png)
        summary["identity_distance"] = report.distance
        summary["identity_verified"] = report.verified
    Image.open(args.output).verify()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            if key != "plan":
                print(f"{key}: {value}")
    return 0
