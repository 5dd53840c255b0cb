"""The image patches that activate a unit most.

Faces are found and aligned as the service does, so every patch is cut from the
150x150 crop the network sees. Per unit, each face contributes its single most active
position, and the faces with the highest such activation give the unit's patches: the
unit's receptive field around that position, with grey where it reaches past the crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn

from app.core.command_line import progress_bar
from app.core.errors import FacesvcError
from app.core.model.backbones.dlib_resnet import DlibResNet
from app.core.model.pipeline import FacePipeline
from app.core.model.receptive_fields import Layer
from app.core.model.types import RGBImage
from app.lab.evaluation.dataset import is_image_file

GREY = (128, 128, 128)
BATCH = 32


class _Captured(Exception):
    """Stops the forward pass once the wanted layer has run."""


def aligned_faces(
    pipeline: FacePipeline, folder: Path, limit: int, progress: bool = False
) -> list[RGBImage]:
    """The largest face of up to `limit` images under `folder` (sorted, recursive),
    aligned as the model expects; images without a face are skipped."""
    chips: list[RGBImage] = []
    bar = progress_bar(progress, total=limit, desc="finding faces", unit="face")
    for path in sorted(p for p in folder.rglob("*") if is_image_file(p)):
        if len(chips) >= limit:
            break
        try:
            image = pipeline.decode(path.read_bytes())
            chips.append(pipeline.locate(image, faces="largest")[0].chip)
            bar.update(1)
        except FacesvcError:
            continue
    bar.close()
    return chips


def _module_for(model: DlibResNet, layer: str) -> nn.Module:
    if layer in ("stem", "stem_pool"):
        return model.stem_affine  # its output, before the ReLU (the affine may be folded)
    if layer == "embedding":
        return model.fc
    if layer.startswith("block"):
        return model.blocks[int(layer.removeprefix("block"))]
    raise KeyError(layer)


def _finish(layer: str, output: torch.Tensor) -> torch.Tensor:
    if layer == "stem":
        return F.relu(output)
    if layer == "stem_pool":
        return F.max_pool2d(F.relu(output), 3, 2)
    if layer == "embedding":
        return output[:, :, None, None]
    return output


def activations(model: DlibResNet, chips: npt.NDArray[np.uint8], layer: str) -> torch.Tensor:
    """The layer's output (n, channels, rows, cols) for aligned uint8 crops (n, h, w, 3)."""
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        captured.append(_finish(layer, output.detach()))
        raise _Captured

    device = next(model.parameters()).device
    handle = _module_for(model, layer).register_forward_hook(hook)
    try:
        pixels = torch.from_numpy(chips).to(device).permute(0, 3, 1, 2).float()
        with torch.inference_mode():
            model(pixels)
    except _Captured:
        pass
    finally:
        handle.remove()
    return captured[0].float().cpu().contiguous()


@dataclass(frozen=True)
class Patch:
    face: int  # index into the faces
    row: int  # output position of the unit's maximum
    col: int
    activation: float


def top_patches(
    model: DlibResNet, chips: list[RGBImage], layer: str, units: list[int], count: int
) -> dict[int, list[Patch]]:
    """Per unit, the `count` faces whose strongest position activates it most."""
    if not chips:
        raise ValueError("no faces to look at")
    side = 1
    best_value: list[torch.Tensor] = []
    best_where: list[torch.Tensor] = []
    for start in range(0, len(chips), BATCH):
        batch = np.stack(chips[start : start + BATCH])
        out = activations(model, batch, layer)
        if max(units) >= out.shape[1]:
            raise ValueError(f"{layer} has {out.shape[1]} units")
        flat = out[:, units].flatten(2)  # (n, units, positions)
        value, where = flat.max(dim=2)
        best_value.append(value)
        best_where.append(where)
        side = out.shape[3]
    values, wheres = torch.cat(best_value), torch.cat(best_where)
    result: dict[int, list[Patch]] = {}
    for column, unit in enumerate(units):
        order = torch.argsort(values[:, column], descending=True)[:count]
        result[unit] = [
            Patch(
                face=int(face),
                row=int(wheres[face, column]) // side,
                col=int(wheres[face, column]) % side,
                activation=float(values[face, column]),
            )
            for face in order
        ]
    return result


def cut_patch(chip: RGBImage, layer: Layer, row: int, col: int) -> Image.Image:
    """The receptive field of the unit at (row, col), grey outside the crop."""
    top, bottom = layer.field.span(row)
    left, right = layer.field.span(col)
    size = layer.field.size
    canvas = Image.new("RGB", (size, size), GREY)
    height, width = chip.shape[:2]
    y0, y1 = max(top, 0), min(bottom + 1, height)
    x0, x1 = max(left, 0), min(right + 1, width)
    if y0 < y1 and x0 < x1:
        canvas.paste(Image.fromarray(chip[y0:y1, x0:x1]), (x0 - left, y0 - top))
    return canvas


def draw_grid(
    chips: list[RGBImage],
    layer: Layer,
    patches: dict[int, list[Patch]],
    *,
    per_side: int = 3,
    cell: int = 48,
    units_per_row: int = 8,
    title: str = "",
) -> Image.Image:
    """Each unit as a per_side x per_side block of its top patches, labelled, in rows."""
    gap, label, margin = 2, 14, 8
    block = per_side * cell + (per_side - 1) * gap
    units = list(patches)
    rows = -(-len(units) // units_per_row)
    columns = min(units_per_row, len(units))
    width = margin + columns * (block + margin)
    height = 22 + rows * (label + block + margin)
    grid = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    draw.text((margin, 4), title, fill=(0, 0, 0))
    for index, unit in enumerate(units):
        x = margin + (index % units_per_row) * (block + margin)
        y = 22 + (index // units_per_row) * (label + block + margin)
        draw.text((x, y), f"unit {unit}", fill=(0, 0, 0))
        for slot, patch in enumerate(patches[unit][: per_side * per_side]):
            image = cut_patch(chips[patch.face], layer, patch.row, patch.col)
            image = image.resize((cell, cell), Image.Resampling.BICUBIC)
            grid.paste(
                image,
                (
                    x + (slot % per_side) * (cell + gap),
                    y + label + (slot // per_side) * (cell + gap),
                ),
            )
    return grid
