"""/docs and /redoc render in headless Chromium with no network: every request the pages
make goes to the service itself (its assets come from the fastapi-offline package, not a
CDN), and the rendered pages show every operation of the OpenAPI document.

Chromium is Debian's (`apt-get install chromium`, .ci/run does it), driven through
Playwright's Python API; Playwright's own browser downloads are never used. Without
Chromium the test skips. FACESVC_SCREENSHOT_DIR=docs/img keeps the screenshots there
(how docs/img/docs-offline.png and docs/img/redoc-offline.png were made).
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.core.config import Settings
from app.core.model.pipeline import FacePipeline
from app.main import create_app
from tests.support.live import live_server
from tests.support.service import create_keys

CHROMIUM = os.environ.get("FACESVC_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

METHODS = ("get", "post", "put", "patch", "delete")
# ReDoc's bundle names this image in its footer; the pages' CSP stops it unrequested.
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture
def served(
    settings: Settings, pipeline: FacePipeline, request: pytest.FixtureRequest
) -> Iterator[dict[str, Any]]:
    """The service behind real uvicorn with FACESVC_DOCS as the test asks; a verify key."""
    used = settings.model_copy(update={"docs": request.param})
    setup = create_app(used, pipeline=pipeline)
    with TestClient(setup) as client:
        key = create_keys(client, setup)["verify"]
    app = create_app(used, pipeline=pipeline)
    with live_server(app, log_level="warning") as base:
        yield {"base": base, "key": key, "spec": app.openapi(), "docs": request.param}


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


def _offline_page(browser: Any, served: dict[str, Any]) -> tuple[Any, list[str]]:
    """A page whose requests reach only the service; the others are refused and noted,
    as is anything but the known logo that the page's CSP refused.
    With FACESVC_DOCS=key the key travels as a header on every request, as a
    header-setting browser extension sends it (docs/security.md)."""
    headers = {"X-API-Key": served["key"]} if served["docs"] == "key" else {}
    context = browser.new_context(
        extra_http_headers=headers, viewport={"width": 1280, "height": 1000}
    )
    elsewhere: list[str] = []
    base = served["base"]

    def only_the_service(route: Any) -> None:
        url = route.request.url
        if url == base or url.startswith(base + "/"):
            route.continue_()
        else:
            elsewhere.append(url)
            route.abort()

    context.route("**/*", only_the_service)
    page = context.new_page()

    def refused(message: Any) -> None:  # the page's CSP stopped a load before it was sent
        text = message.text
        if "Content Security Policy" in text and REDOCLY_LOGO not in text:
            elsewhere.append(text)

    page.on("console", refused)
    return page, elsewhere


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (method.upper(), path, op["summary"])
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def _save(page: Any, name: str, tmp_path: Path) -> None:
    """The page's top (1280 x 2000 pixels at most), checked not to be blank, kept in
    FACESVC_SCREENSHOT_DIR."""
    png = page.screenshot(full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": 2000})
    image = Image.open(io.BytesIO(png)).convert("L")
    histogram = image.histogram()
    assert max(histogram) < 0.97 * sum(histogram), f"{name}: the page looks blank"
    keep = Path(os.environ.get("FACESVC_SCREENSHOT_DIR") or tmp_path)
    keep.mkdir(parents=True, exist_ok=True)
    (keep / name).write_bytes(png)


@pytest.mark.parametrize("served", ["key", "public"], indirect=True)
def test_swagger_ui_shows_every_route_offline(
    served: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    page, elsewhere = _offline_page(browser, served)
    answer = page.goto(f"{served['base']}/docs")
    assert answer is not None and answer.status == 200
    page.wait_for_selector(".opblock-summary-path", timeout=60_000)
    shown = {
        (
            block.locator(".opblock-summary-method").inner_text().strip(),
            block.locator(".opblock-summary-path").get_attribute("data-path"),
        )
        for block in page.locator(".opblock").all()
    }
    summaries = page.locator(".opblock-summary-description").all_inner_texts()
    operations = _operations(served["spec"])
    assert len(operations) >= 15
    for method, path, summary in operations:
        assert (method, path) in shown, f"{method} {path} is not on the page"
        assert summary in summaries, f"{method} {path}: its summary is not on the page"
    # an opened operation shows its request and answer examples
    page.locator("#operations-identities-enrollIdentity .opblock-summary").click()
    opened = page.locator("#operations-identities-enrollIdentity")
    opened.locator(".responses-wrapper").wait_for(timeout=30_000)
    assert "emp-1042" in opened.inner_text()  # from EnrollOut's example
    assert elsewhere == [], f"the page reached beyond the service: {elsewhere}"
    if served["docs"] == "key":
        _save(page, "docs-offline.png", tmp_path)


@pytest.mark.parametrize("served", ["key", "public"], indirect=True)
def test_redoc_shows_every_route_offline(
    served: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    page, elsewhere = _offline_page(browser, served)
    answer = page.goto(f"{served['base']}/redoc")
    assert answer is not None and answer.status == 200
    page.wait_for_selector("[data-section-id*='operation/']", timeout=60_000)
    operations = _operations(served["spec"])
    without = [
        op["operationId"]
        for item in served["spec"]["paths"].values()
        for method, op in item.items()
        if method in METHODS
        and not page.locator(f"[data-section-id$='operation/{op['operationId']}']").count()
    ]
    assert not without, f"operations without a section on the page: {without}"
    text = page.inner_text("body")
    missing = [summary for _, _, summary in operations if summary not in text]
    assert not missing, f"summaries not on the page: {missing}"
    assert elsewhere == [], f"the page reached beyond the service: {elsewhere}"
    if served["docs"] == "key":
        _save(page, "redoc-offline.png", tmp_path)
