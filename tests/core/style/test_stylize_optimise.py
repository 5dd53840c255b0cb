"""Style transfer on real images: J goes down, every network's layers are checked, the
optional network fails clearly without its weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app.core.config import Settings
from app.core.errors import ModelUnavailable, ValidationFailed
from app.core.style.networks import NetworkCache, network_spec
from app.core.style.optimise import Costs, stylize
from app.core.style.options import StyleOptions, plan

DATA = Path(__file__).resolve().parents[2] / "data"
CONTENT = DATA / "faces" / "Aaron_Sorkin_0001.jpg"
STYLE = DATA / "styles" / "starry_night_96.png"


@pytest.fixture(scope="module")
def networks() -> NetworkCache:
    torch.set_num_threads(1)
    return NetworkCache(Settings(_env_file=None), torch.device("cpu"))


def rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.parametrize(
    ("network", "optimiser", "init"),
    [
        ("vgg19", "lbfgs", "noise"),
        ("vgg19", "adam", "content"),
        ("dlib-resnet", "lbfgs", "noise"),
    ],
)
def test_cost_decreases_on_real_images(
    networks: NetworkCache, network: str, optimiser: str, init: str
) -> None:
    settings = Settings(_env_file=None)
    options = StyleOptions.model_validate(
        {
            "network": network,
            "steps": 6,
            "max_side": 48,
            "seed": 3,
            "optimiser": optimiser,
            "init": init,
        }
    )
    seen: list[tuple[int, Costs]] = []

    def on_step(step: int, costs: Costs) -> bool:
        seen.append((step, costs))
        return True

    outcome = stylize(
        networks.get(network), rgb(CONTENT), rgb(STYLE), plan(options, settings), on_step
    )
    assert outcome.completed
    assert [step for step, _ in seen] == list(range(1, 7))
    totals = [costs.total for costs in outcome.history]
    assert totals[-1] < 0.8 * totals[0], totals
    assert outcome.image.shape == (48, 48, 3) and outcome.image.dtype == np.uint8


def test_a_callback_stops_the_run(networks: NetworkCache) -> None:
    options = StyleOptions(network="dlib-resnet", steps=50, max_side=48, seed=1)
    outcome = stylize(
        networks.get("dlib-resnet"),
        rgb(CONTENT),
        rgb(STYLE),
        plan(options, Settings(_env_file=None)),
        lambda step, _: step < 3,
    )
    assert not outcome.completed
    assert len(outcome.history) == 3


def test_too_small_an_image_is_refused(networks: NetworkCache) -> None:
    options = StyleOptions(network="dlib-resnet", steps=1, max_side=24)
    with pytest.raises(ValidationFailed, match="too small"):
        stylize(networks.get("dlib-resnet"), rgb(CONTENT), rgb(STYLE), plan(options, Settings()))


def test_layers_are_checked_by_name() -> None:
    settings = Settings(_env_file=None)
    with pytest.raises(ValidationFailed, match="no layer 'block9_relu1'"):
        plan(StyleOptions(style_layers={"block9_relu1": 1.0}), settings)
    with pytest.raises(ValidationFailed, match="unknown 'alexnet'"):
        plan(StyleOptions(network="alexnet"), settings)
    with pytest.raises(ValidationFailed, match="steps: at most"):
        plan(StyleOptions(steps=settings.stylize_max_steps + 1), settings)
    face = network_spec("dlib-resnet")
    face.check_layers(["input", "stem", "level3_block2"])
    assert "block4_relu2" in network_spec("vgg19").layers()


def test_torchvision_vgg19_needs_its_weights_file(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, stylize_torchvision_vgg19=tmp_path / "missing.pth")
    with pytest.raises(ModelUnavailable, match=r"missing\.pth"):
        NetworkCache(settings, torch.device("cpu")).get("vgg19-torchvision")
