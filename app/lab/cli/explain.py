"""`facesvc explain-units`: grids of the image patches that activate chosen units most."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from app.core.errors import FacesvcError, ValidationFailed


def register(sub: Any) -> None:  # argparse's _SubParsersAction is private
    parser = sub.add_parser(
        "explain-units",
        help="draw the image patches (receptive fields) that activate units of a layer most",
    )
    parser.add_argument("--data", type=Path, help="folder of photos (searched recursively)")
    parser.add_argument("--layer", default="block3", help="layer name (see --list-layers)")
    parser.add_argument("--units", default="0-15", help="units to draw: '0-15', '3,7,12' or a mix")
    parser.add_argument("--per-unit", type=int, default=3, help="grid side per unit (3: 3x3)")
    parser.add_argument("--limit", type=int, default=500, help="most photos to look at")
    parser.add_argument("--cell", type=int, default=48, help="pixels per drawn patch")
    parser.add_argument("--out", type=Path, help="PNG to write")
    parser.add_argument("--list-layers", action="store_true", help="print the layers and exit")
    parser.add_argument("--json", action="store_true", help="print what was drawn as JSON")
    parser.add_argument("--model", help="embedding backbone (only dlib-resnet-v1 is explained)")
    parser.add_argument("--device", help="'auto', 'cpu' or 'cuda[:N]'")
    parser.set_defaults(func=run_explain_units, model_file=None)


def parse_units(text: str) -> list[int]:
    units: list[int] = []
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            units.extend(range(int(first), int(last or first) + 1))
    except ValueError:
        raise ValidationFailed(f"--units: cannot read {text!r} (e.g. '0-15' or '3,7')") from None
    if not units or min(units) < 0:
        raise ValidationFailed("--units: give unit numbers >= 0")
    return list(dict.fromkeys(units))


def run_explain_units(args: argparse.Namespace) -> int:
    from app.core.command_line import pipeline_from_args, shows_progress
    from app.core.model.backbones.dlib_resnet import DlibResNetBackbone
    from app.core.model.backbones.normalised import unnormalised
    from app.core.model.receptive_fields import layers_of
    from app.lab.explain.units import aligned_faces, draw_grid, top_patches

    model_name = args.model or "dlib-resnet-v1"
    try:
        layers = {layer.name: layer for layer in layers_of(model_name)}
    except KeyError:
        raise ValidationFailed("explain-units knows the layers of dlib-resnet-v1 only") from None
    if args.list_layers:
        for each in layers.values():
            print(
                f"{each.name:<10} {each.channels:>4} units  {each.side:>3}x{each.side:<3} "
                f"receptive field {each.field.size:>3} px, stride {each.field.jump:>3}  "
                f"{each.description}"
            )
        return 0
    if args.data is None or args.out is None:
        raise ValidationFailed("--data and --out are needed (or --list-layers)")
    layer = layers.get(args.layer)
    if layer is None:
        raise ValidationFailed(f"unknown layer {args.layer!r}; one of {', '.join(layers)}")
    units = parse_units(args.units)
    if max(units) >= layer.channels:
        raise ValidationFailed(f"{layer.name} has units 0..{layer.channels - 1}")
    args.model = model_name
    pipeline = pipeline_from_args(args)
    backbone = unnormalised(pipeline.backbone)  # the network, whatever the normalisation
    assert isinstance(backbone, DlibResNetBackbone)
    chips = aligned_faces(pipeline, args.data, args.limit, shows_progress(args))
    if not chips:
        raise FacesvcError(f"{args.data}: no face found in any image")
    patches = top_patches(backbone.model, chips, layer.name, units, args.per_unit**2)
    title = (
        f"{model_name} {layer.name} ({layer.description}): receptive field "
        f"{layer.field.size}x{layer.field.size} px of the 150x150 crop; "
        f"top {args.per_unit**2} of {len(chips)} faces per unit"
    )
    grid = draw_grid(chips, layer, patches, per_side=args.per_unit, cell=args.cell, title=title)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.out)
    summary = {
        "layer": layer.name,
        "receptive_field": layer.field.size,
        "stride": layer.field.jump,
        "faces": len(chips),
        "units": {str(u): [p.activation for p in ps] for u, ps in patches.items()},
        "out": str(args.out),
        "size": list(grid.size),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"wrote {args.out} ({grid.size[0]}x{grid.size[1]}): {title}")
    return 0
