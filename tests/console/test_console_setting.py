"""FACESVC_CONSOLE=false takes the console's pages away (404 with the error body);
/v1/whoami, an API route, stays."""

from __future__ import annotations

from tests.support.service import MakeApi


def test_the_console_can_be_switched_off(make_api: MakeApi) -> None:
    on = make_api()
    page = on.client.get("/console")
    assert page.status_code == 200 and "<title" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    off = make_api(console=False)
    for path in ("/console", "/console/app.js", "/console/strings.js"):
        answer = off.client.get(path)
        assert answer.status_code == 404 and answer.json()["error"] == "not_found", path
    assert off.get("/v1/whoami", "verify").json()["allows"] == ["verify"]
