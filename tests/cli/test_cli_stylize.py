"""`facesvc stylize` end to end with the real networks, on tiny images."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from app.cli import main
from app.core.model.backbones.dlib_resnet import CALIBRATION_L2

DATA = Path(__file__).parents[1] / "data"
CONTENT = DATA / "faces" / "Aaron_Sorkin_0001.jpg"
STYLE = DATA / "styles" / "great_wave_96.png"


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(1)
    monkeypatch.setenv("FACESVC_TORCH_THREADS", "1")


def test_stylize_writes_the_png_and_the_costs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, costs = tmp_path / "out.png", tmp_path / "costs.csv"
    argv = ["stylize", str(CONTENT), str(STYLE), "-o", str(out), "--network", "dlib-resnet"]
    argv += ["--steps", "3", "--max-side", "160", "--init", "content", "--seed", "2"]
    argv += ["--costs", str(costs), "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert Image.open(out).size == (160, 160)
    rows = list(csv.DictReader(costs.open()))
    assert [row["step"] for row in rows] == ["1", "2", "3"]
    assert float(rows[-1]["J"]) < float(rows[0]["J"])
    assert summary["steps"] == 3 and summary["plan"]["network"] == "dlib-resnet"
    # three steps from the content image keep the face: still the same person
    assert summary["identity_verified"] is True
    assert summary["identity_distance"] < CALIBRATION_L2.tau_verify  # the default's


def test_list_layers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stylize", "a", "b", "-o", "c", "--network", "vgg19", "--list-layers"]) == 0
    layers = capsys.readouterr().out.split()
    assert layers[0] == "input" and "block4_relu2" in layers and "block5_pool" in layers


def test_bad_layers_exit_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["stylize", str(CONTENT), str(STYLE), "-o", str(tmp_path / "o.png")]
    assert main([*argv, "--style-layers", '{"conv9": 1}']) == 2
    assert "validation_error" in capsys.readouterr().err
