"""Receptive fields against the gradient, and explain-units on real photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app.cli import main
from app.core.model.backbones.dlib_resnet import DlibResNet
from app.core.model.receptive_fields import Field, dlib_resnet_layers
from app.lab.explain.units import _finish, _module_for, cut_patch

FACES = Path(__file__).parents[1] / "data" / "faces"


def test_field_composition_by_hand() -> None:
    # 7x7/2 without padding, then 3x3/2: unit i sees pixels 4i .. 4i + 10
    field = Field(1, 0, 0).through(7, 2, 0).through(3, 2, 0)
    assert (field.jump, field.low, field.high, field.size) == (4, 0, 10, 11)
    # a 3x3/1 padded convolution widens by one step of the input's jump each side
    assert field.through(3, 1, 1) == Field(4, -4, 14)
    assert field.span(2) == (8, 18)


@pytest.mark.parametrize("layer_name", ["stem", "stem_pool", "block0", "block3", "block5"])
def test_receptive_field_is_where_the_gradient_reaches(layer_name: str) -> None:
    """The input pixels a unit depends on lie inside its computed field and reach its
    edges (as far as the 150x150 crop goes)."""
    torch.manual_seed(0)
    model = DlibResNet().eval()
    layer = next(layer for layer in dlib_resnet_layers() if layer.name == layer_name)
    pixels = (torch.rand(1, 3, 150, 150) * 255).requires_grad_(True)
    captured: list[torch.Tensor] = []
    module = _module_for(model, layer_name)
    handle = module.register_forward_hook(lambda _m, _i, out: captured.append(out))
    model(pixels)
    handle.remove()
    out = _finish(layer_name, captured[0])
    assert out.shape[1:] == (layer.channels, layer.side, layer.side)
    centre = layer.side // 2
    # sum over channels: some channel is active wherever the input matters
    out[0, :, centre, centre].sum().backward()
    assert pixels.grad is not None
    reached = pixels.grad[0].abs().sum(dim=0) > 0
    rows = torch.nonzero(reached.any(dim=1)).flatten()
    cols = torch.nonzero(reached.any(dim=0)).flatten()
    low, high = layer.field.span(centre)
    expected = (max(low, 0), min(high, 149))
    assert (int(rows.min()), int(rows.max())) == expected
    assert (int(cols.min()), int(cols.max())) == expected


def test_receptive_fields_grow_with_depth() -> None:
    sizes = [layer.field.size for layer in dlib_resnet_layers()[:-1]]
    assert sizes == sorted(sizes) and sizes[0] == 7 and sizes[-1] > 150


def test_cut_patch_pads_outside_the_crop_with_grey() -> None:
    chip = np.full((150, 150, 3), 200, dtype=np.uint8)
    layer = next(layer for layer in dlib_resnet_layers() if layer.name == "block0")
    patch = cut_patch(chip, layer, 0, 0)  # pixels -8 .. 18: 8 grey rows and columns
    assert patch.size == (27, 27)
    assert patch.getpixel((0, 0)) == (128, 128, 128) and patch.getpixel((8, 8)) == (200, 200, 200)


def test_explain_units_draws_a_grid_from_real_faces(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "units.png"
    argv = ["explain-units", "--data", str(FACES), "--layer", "block3", "--units", "0-3,9"]
    code = main([*argv, "--out", str(out), "--json", "--cell", "32"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["receptive_field"] == 83 and summary["faces"] == 25
    assert list(summary["units"]) == ["0", "1", "2", "3", "9"]
    for activations in summary["units"].values():
        assert len(activations) == 9 and activations == sorted(activations, reverse=True)
    image = Image.open(out)
    assert image.size == tuple(summary["size"]) and image.size[0] > 5 * 3 * 32
    # the patches are photo content, not a blank canvas
    assert np.unique(np.asarray(image.convert("L"))).size > 100


def test_explain_units_rejects_unknown_layers_and_units(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = str(tmp_path / "x.png")
    assert main(["explain-units", "--data", str(FACES), "--layer", "nope", "--out", out]) == 2
    assert "unknown layer" in capsys.readouterr().err
    bad = ["explain-units", "--data", str(FACES), "--layer", "stem", "--units", "40", "--out", out]
    assert main(bad) == 2
    assert "units 0..31" in capsys.readouterr().err
    assert main(["explain-units", "--list-layers"]) == 0
    assert "block3" in capsys.readouterr().out
