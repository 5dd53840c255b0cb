"""The console's model page with a calibration stored by `facesvc calibrate` (run as an
operator runs it, on the 24 real test photos): the card's figures, and the ROC and FPIR
curves drawn as inline SVG with the active thresholds marked, labelled axes, a title and
description for screen readers, and the points as a table. Real Chromium, real service,
SQLite and PostgreSQL (the fixtures are test_console_browser's)."""

from __future__ import annotations

import itertools
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console.test_console_browser import Console, browser, served  # noqa: F401
from tests.support.factories import DATA_FACES


def _calibrate(root: Path, cache: Path) -> None:
    """`facesvc calibrate` as an operator runs it, into FACESVC_DATABASE_URL."""
    from app.cli import main

    argv = ["calibrate", "--data", str(root), "--far", "0.01", "--cache", str(cache), "--json"]
    with ThreadPoolExecutor(1) as thread:  # Playwright's loop holds this thread
        assert thread.submit(main, argv).result() == 0


def test_the_model_page_plots_a_stored_calibration(
    served: dict[str, Any],  # noqa: F811
    browser: Any,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "faces"
    for path in sorted(DATA_FACES.glob("*.jpg")):
        (root / path.stem.rsplit("_", 1)[0]).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, root / path.stem.rsplit("_", 1)[0] / path.name)
    monkeypatch.setenv("FACESVC_DATABASE_URL", served["database_url"])
    capsys.readouterr()
    _calibrate(root, tmp_path / "cache")
    saved = json.loads(capsys.readouterr().out)
    key = served["keys"]["verify"]
    name = httpx.get(f"{served['base']}/v1/models", headers={"X-API-Key": key}).json()
    curve = httpx.get(
        f"{served['base']}/v1/models/{name['active']['name']}/calibration",
        headers={"X-API-Key": key},
        timeout=30,
    ).json()
    assert curve["stored"]["id"] == saved["saved_id"]

    console = Console(browser, served["base"])
    page = console.page
    console.open()
    console.sign_in(key)
    page.get_by_role("link", name="Model").click()
    card = page.locator("#model-card")
    card.wait_for()

    def shown(figure: str) -> str:
        return str(card.locator(f"dd[data-figure='{figure}']").inner_text())

    assert float(shown("modelVerify")) == round(saved["tau"], 4)
    assert shown("modelStored").startswith(f"number {saved['saved_id']}, of ")
    assert shown("modelStoredSource").startswith("facesvc calibrate --data faces --far 0.01")
    assert shown("modelFarInterval").endswith("(target 0.01)")
    assert shown("modelFollows") == "yes"

    # the ROC: labelled axes, title and description, the active 1:1 tau on the curve
    roc = page.locator("#roc-figure svg")
    roc.locator(".mark circle").wait_for()
    note = page.locator("#curves-note").inner_text()
    assert note == f"From stored calibration number {saved['saved_id']}."
    assert roc.get_attribute("role") == "img"
    title, desc = str(roc.get_attribute("aria-labelledby")).split()
    assert page.locator(f"#{title}").text_content() == "ROC curve of the verify (1:1) threshold"
    assert "12 genuine and 264 impostor pairs" in str(page.locator(f"#{desc}").text_content())
    assert roc.locator("text.axis").all_text_contents() == [
        "False-accept rate (FAR, log scale)",
        "True-accept rate (TAR)",
    ]
    # three significant digits, as the page writes them (JavaScript's 1, not 1.0)
    label = f"tau {saved['tau']:.4f}: FAR {saved['far']:.3g}, TAR {saved['tar']:.3g}"
    assert roc.locator(".mark text").text_content() == label
    vertices = _vertices(str(roc.locator("path.curve").get_attribute("d")))
    assert len(vertices) == len(curve["roc"]["points"])
    circle = roc.locator(".mark circle")
    assert (float(str(circle.get_attribute("cx"))), float(str(circle.get_attribute("cy")))) in (
        vertices
    )
    # the curve rises left to right: TAR (up is a smaller y) never falls as FAR grows
    assert all(b[0] >= a[0] and b[1] <= a[1] for a, b in itertools.pairwise(vertices))
    # the table fallback holds every point, the active tau among them
    roc_table = page.locator("#roc-figure table tbody tr")
    assert roc_table.count() == len(curve["roc"]["points"])
    console.save("model-stored-calibration.png", tmp_path)  # the table still closed
    page.locator("#roc-figure summary").press("Enter")  # opened from the keyboard
    page.locator("#roc-figure table").wait_for()
    assert f"{saved['tau']:.4f}" in page.locator("#roc-figure table").inner_text()

    # 1:N: FPIR over tau for today's gallery, the active tau marked at the target FPIR
    fpir = page.locator("#fpir-figure svg")
    assert (
        fpir.locator(".mark text")
        .text_content()
        .startswith(  # type: ignore[union-attr]
            f"tau {curve['identify']['tau']:.4f}: FPIR 0.01, FNIR "
        )
    )
    assert "1 enrolled" in str(page.locator("#fpir-figure figcaption").text_content())
    assert console.elsewhere == [] and console.errors == []


def _vertices(path: str) -> list[tuple[float, float]]:
    """The (x, y) of an SVG path made of M and L commands only."""
    out = []
    for step in path.replace("M", " ").replace("L", " ").split():
        x, y = step.split(",")
        out.append((float(x), float(y)))
    return out
