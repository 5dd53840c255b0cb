"""The operator's console (/console) driven in headless Chromium against the real service
(uvicorn, the real model, real photos), on SQLite and PostgreSQL: sign in with a key,
enroll two people from files, a clear message for a photo without a face, recognize one of
them and a stranger (decision, figures, the face box drawn), delete one with confirmation;
a key that may read but not delete sees no delete button and the API refuses it anyway
(an enroll-only key: test_console_scopes.py).
Every request the pages make is checked to go to the service and nowhere else.

Chromium is Debian's (`apt-get install chromium`, .ci/run does it), driven through
Playwright's Python API; Playwright's own browser downloads are never used. Without
Chromium the test skips. FACESVC_SCREENSHOT_DIR=docs/console keeps the screenshots there
(how the PNGs of docs/console/ were made).
"""

from __future__ import annotations

import io
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.core.config import Settings
from app.core.model.pipeline import FacePipeline
from app.main import create_app
from tests.support.factories import no_face, people, photo, photo_path, side_by_side
from tests.support.live import live_server

CHROMIUM = os.environ.get("FACESVC_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

WAIT_MS = 60_000  # a first inference on a busy CI machine
KEYS = {"admin": ["admin"], "enroll": ["enroll"], "read": ["read"], "verify": ["verify"]}


@pytest.fixture
def served(settings: Settings, pipeline: FacePipeline) -> Iterator[dict[str, Any]]:
    """The service behind real uvicorn, recording decisions; a key per entry of KEYS."""
    settings = settings.model_copy(update={"record_decisions": True})
    setup = create_app(settings, pipeline=pipeline)
    with TestClient(setup) as client:
        keys = _make_keys(client, setup)
    app = create_app(settings, pipeline=pipeline)
    with live_server(app, log_level="warning") as base:
        yield {"base": base, "keys": keys, "database_url": settings.database_url}


def _make_keys(client: TestClient, app: Any) -> dict[str, str]:
    from app.core.store.repos.keys import create_key

    async def make() -> dict[str, str]:
        out = {}
        async with app.state.sessions() as session, session.begin():
            for name, scopes in KEYS.items():
                _, out[name] = await create_key(session, f"console-{name}", scopes)
        return out

    assert client.portal is not None
    made: dict[str, str] = client.portal.call(make)
    return made


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


class Console:
    """A tablet-sized page of the console whose requests may reach only the service:
    any other one is refused and noted, as is anything its CSP stopped."""

    def __init__(self, browser: Any, base: str) -> None:
        self.base = base
        self.elsewhere: list[str] = []
        self.context = browser.new_context(viewport={"width": 1100, "height": 900})
        self.context.route("**/*", self._only_the_service)
        self.page = self.context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.page.on("console", self._refused)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _only_the_service(self, route: Any) -> None:
        url = route.request.url
        if url == self.base or url.startswith(self.base + "/"):
            route.continue_()
        else:
            self.elsewhere.append(url)
            route.abort()

    def _refused(self, message: Any) -> None:
        if "Content Security Policy" in message.text:
            self.elsewhere.append(message.text)

    def open(self) -> None:
        answer = self.page.goto(f"{self.base}/console")
        assert answer is not None and answer.status == 200
        assert "default-src 'self'" in answer.headers["content-security-policy"]

    def sign_in(self, key: str) -> None:
        self.page.get_by_label("API key", exact=True).fill(key)
        self.page.get_by_role("button", name="Sign in").click()

    def enroll(self, name: str, external_id: str, image: Path) -> str:
        page = self.page
        page.locator("#enroll-form").get_by_label("Name", exact=True).fill(name)
        page.locator("#enroll-form").get_by_label("External id (optional)", exact=True).fill(
            external_id
        )
        page.get_by_label("Photo with one face").set_input_files(str(image))
        page.get_by_role("button", name="Enroll", exact=True).click()
        status = page.locator("#enroll-status")
        page.wait_for_function(
            "() => { const t = document.querySelector('#enroll-status').textContent;"
            " return t !== '' && !t.includes('…'); }"
        )
        return str(status.inner_text())

    def rows(self) -> list[str]:
        return [
            str(text) for text in self.page.locator("#people tr td:first-child").all_inner_texts()
        ]

    def recognize(self, image: Path) -> dict[str, str]:
        page = self.page
        page.get_by_role("link", name="Test").click()
        page.get_by_label("Photo to test").set_input_files(str(image))
        page.get_by_role("button", name="Recognize").click()
        page.locator("#result").wait_for(state="visible")
        found = {
            str(cell.get_attribute("data-figure")): str(cell.inner_text())
            for cell in page.locator("#figures dd").all()
        }
        found["decision"] = str(page.locator("#decision").inner_text())
        return found

    def save(self, name: str, tmp_path: Path) -> None:
        """The page (checked not to be blank), kept in FACESVC_SCREENSHOT_DIR."""
        png = self.page.screenshot(full_page=True)
        image = Image.open(io.BytesIO(png)).convert("L")
        histogram = image.histogram()
        assert max(histogram) < 0.97 * sum(histogram), f"{name}: the page looks blank"
        keep = Path(os.environ.get("FACESVC_SCREENSHOT_DIR") or tmp_path)
        keep.mkdir(parents=True, exist_ok=True)
        (keep / name).write_bytes(png)


def _watch_requests(console: Console) -> list[str]:
    requested: list[str] = []
    console.page.on("request", lambda request: requested.append(request.url))
    return requested


def _canvas_has_the_box(page: Any, rgb: tuple[int, int, int]) -> bool:
    """Some pixels of the canvas are the box's colour (drawn over a photo)."""
    script = """([r, g, b]) => {
        const c = document.getElementById('probe-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) {
            if (d[i] === r && d[i + 1] === g && d[i + 2] === b) n++;
        }
        return n;
    }"""
    count: int = page.evaluate(script, list(rgb))
    return count > 200


GREEN = (0x15, 0x80, 0x3D)  # test.js: a known face's box
RED = (0xE1, 0x1D, 0x48)  # an unknown one's


def test_sign_in_enroll_recognize_delete(
    served: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    a, b, stranger = people(3)
    console = Console(browser, served["base"])
    requested = _watch_requests(console)
    page = console.page
    console.open()
    console.save("signin.png", tmp_path)

    console.sign_in("fsk_0123456789ab_not-a-key")
    page.get_by_text("This key was refused").wait_for()
    assert page.locator("#page-gallery").is_hidden()

    key = served["keys"]["admin"]
    console.sign_in(key)
    page.get_by_text("Signed in as console-admin (admin)").wait_for()
    allows = page.locator("#key-allows li").all_inner_texts()
    assert "delete people and faces" in allows and "see the gallery" in allows
    page.get_by_text("Nobody is enrolled here yet.").wait_for()

    # a photo without a face: the operator is told so, nobody is enrolled
    blank = tmp_path / "no-face.png"
    blank.write_bytes(no_face())
    said = console.enroll("Nobody", "", blank)
    assert said.startswith("No face was found in this photo")
    # two people in one photo: asked for one, or to allow the largest
    pair = tmp_path / "two-faces.jpg"
    pair.write_bytes(side_by_side(photo(a), photo(b)))
    said = console.enroll("Two People", "", pair)
    assert said.startswith("This photo has several faces"), said
    assert console.rows() == []

    for person in (a, b):
        said = console.enroll(person.replace("_", " "), person, photo_path(person))
        assert said.startswith(f"Enrolled {person.replace('_', ' ')}: face found"), said
        score = float(said.rsplit(" ", 1)[1].rstrip("."))
        assert 0.5 < score <= 1.0
    page.wait_for_function("() => document.querySelectorAll('#people tr').length === 2")
    assert console.rows() == [a.replace("_", " "), b.replace("_", " ")]
    console.save("gallery.png", tmp_path)

    # find by external id: one row
    page.get_by_label("Find by external id").fill(b)
    page.get_by_role("button", name="Find", exact=True).click()
    page.wait_for_function("() => document.querySelectorAll('#people tr').length === 1")
    assert console.rows() == [b.replace("_", " ")]
    page.get_by_role("button", name="Show all").click()
    page.wait_for_function("() => document.querySelectorAll('#people tr').length === 2")

    # "Test" in b's row: verify a photo against b, chosen, not typed
    name_b = b.replace("_", " ")
    page.get_by_role("button", name=f"Test a photo against {name_b}").click()
    page.get_by_text(f"Verify against {name_b}.").wait_for()
    page.get_by_label("Photo to test").set_input_files(str(photo_path(b, 2)))
    page.get_by_role("button", name="Verify").click()
    page.get_by_text(f"Match: {name_b}").wait_for()
    assert _canvas_has_the_box(page, GREEN)
    page.get_by_role("button", name="Search everyone instead").click()
    assert page.get_by_role("button", name="Recognize").is_visible()

    # the second photo of a: recognized, its figures shown and the box drawn in green
    known = console.recognize(photo_path(a, 2))
    assert known["decision"] == f"Recognized: {a.replace('_', ' ')}"
    assert float(known["distance"]) <= float(known["threshold"])
    assert float(known["margin"]) > 0 and float(known["detectionScore"]) > 0.5
    assert known["externalIdShort"] == a
    assert _canvas_has_the_box(page, GREEN)
    console.save("test-recognized.png", tmp_path)
    # a tablet held upright, and a phone: nothing wider than the screen
    for width, height in ((820, 1180), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        overflow = page.evaluate("() => document.documentElement.scrollWidth")
        wide = page.evaluate(
            """(w) => [...document.querySelectorAll('body *')]
                .filter((e) => e.getBoundingClientRect().right > w && e.offsetParent)
                .map((e) => e.tagName + '#' + e.id + '.' + e.className)""",
            width,
        )
        assert overflow <= width, f"{overflow} px wide on a {width} px screen: {wide}"
        if width == 820:
            console.save("test-tablet-portrait.png", tmp_path)
    page.set_viewport_size({"width": 1100, "height": 900})

    # a stranger: unknown, the nearest distance (the key may read) beyond the threshold
    unknown = console.recognize(photo_path(stranger))
    assert unknown["decision"].startswith("Unknown")
    assert float(unknown["distance"]) > float(unknown["threshold"])
    assert _canvas_has_the_box(page, RED) and not _canvas_has_the_box(page, GREEN)
    console.save("test-unknown.png", tmp_path)

    # delete b, after a confirmation; cancel first keeps them
    page.get_by_role("link", name="Gallery").click()
    page.get_by_role("button", name=f"Delete {name_b}").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    assert name_b in dialog.inner_text()
    console.save("delete-confirm.png", tmp_path)
    page.keyboard.press("Escape")  # the keyboard's way out: nothing deleted
    dialog.wait_for(state="hidden")
    assert page.evaluate("() => document.activeElement.getAttribute('aria-label')") == (
        f"Delete {name_b}"  # focus back on the button that opened it
    )
    assert console.rows() == [a.replace("_", " "), name_b]
    page.get_by_role("button", name=f"Delete {name_b}").click()
    dialog.get_by_role("button", name="Delete for good").click()
    page.get_by_text(f"Deleted {name_b}.").wait_for()
    assert console.rows() == [a.replace("_", " ")]

    # b is gone for the service too: their photo is now a stranger's
    gone = console.recognize(photo_path(b, 2))
    assert gone["decision"].startswith("Unknown")

    # the door log: the verify and three recognitions (newest first) and the audit trail
    page.get_by_role("link", name="Door log").click()
    page.wait_for_function("() => document.querySelectorAll('#decisions tr').length === 4")
    logged = [row.split("\t") for row in page.locator("#decisions tr").all_inner_texts()]
    assert [row[2] for row in logged] == ["unknown", "unknown", "known", "match"], logged
    assert logged[2][3] == a.replace("_", " ") and logged[2][6] == "console-admin"
    # b, deleted since: no name to show, the id the decision recorded
    assert logged[3][1] == "verify" and str(uuid.UUID(logged[3][3])) == logged[3][3]
    audited = [row.split("\t") for row in page.locator("#audit tr").all_inner_texts()]
    creates = sorted(row[4] for row in audited if row[2] == "identity.create")
    # the refused ones are recorded too
    assert creates == ["multiple_faces", "no_face", "ok", "ok"], audited
    assert audited[0][2] == "identity.delete" and audited[0][4] == "ok"
    # the result filter is the service's (`result` repeated), not the page's
    page.get_by_label("Result").select_option("granted")
    page.get_by_role("button", name="Show", exact=True).click()
    page.wait_for_function("() => document.querySelectorAll('#decisions tr').length === 2")
    shown = [row.split("\t")[2] for row in page.locator("#decisions tr").all_inner_texts()]
    assert shown == ["known", "match"], shown
    console.save("door-log.png", tmp_path)
    assert any("/v1/decisions?" in u and "result=known&result=match" in u for u in requested)
    # the audit trail's outcome filter: only the refused enrolls
    page.get_by_label("Outcome").select_option("refused")
    page.get_by_role("button", name="Show", exact=True).click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#audit tr')].every("
        "r => r.cells[4].textContent !== 'ok') && document.querySelectorAll('#audit tr').length"
    )
    refused = [row.split("\t")[4] for row in page.locator("#audit tr").all_inner_texts()]
    assert sorted(refused) == ["multiple_faces", "no_face"], refused
    assert any("/v1/audit?" in u and "outcome=refused" in u for u in requested)
    page.get_by_label("Outcome").select_option("")
    page.get_by_label("Result").select_option("unknown")
    page.get_by_label("Action").select_option("recognize")
    page.get_by_role("button", name="Show", exact=True).click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#decisions tr td:nth-child(3)')]"
        ".map((cell) => cell.textContent).join() === 'unknown,unknown'"
    )
    page.get_by_label("Action").select_option("")
    page.get_by_label("From").fill("2099-01-01T00:00:00")
    page.get_by_role("button", name="Show", exact=True).click()
    # both lists are loaded side by side: wait for each (a timeout if either stays)
    page.wait_for_function("() => document.querySelectorAll('#audit tr').length === 0")
    page.wait_for_function("() => document.querySelectorAll('#decisions tr').length === 0")

    # the model card
    page.get_by_role("link", name="Model").click()
    card = page.locator("#model-card")
    card.wait_for()
    threshold = card.locator("dd[data-figure='modelIdentify']").inner_text()
    assert 0 < float(threshold) < 4
    assert card.locator("dd[data-figure='modelGalleryFaces']").inner_text() == "1"
    # no stored calibration: said so, and the built-in 1:N curve with its tau marked
    page.locator("#fpir-figure svg .mark circle").wait_for()
    assert page.locator("#curves-note").inner_text().startswith("No stored calibration")
    assert page.locator("#roc-figure").is_hidden()
    console.save("model.png", tmp_path)

    # collections: create one (it joins the header's choice), then delete it
    page.get_by_role("link", name="Collections").click()
    page.locator("#collection-form").get_by_label("Name", exact=True).fill("front-door")
    page.get_by_label("Description").fill("Staff of the front door")
    page.get_by_role("button", name="Create").click()
    page.get_by_text("Created the collection front-door.").wait_for()
    listed = page.locator("#collections tr td:first-child").all_inner_texts()
    assert listed == ["default", "front-door"], listed
    assert page.locator("#collection option").all_inner_texts() == ["default", "front-door"]
    console.save("collections.png", tmp_path)
    page.get_by_role("button", name="Delete the collection front-door").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete for good").click()
    page.get_by_text("Deleted the collection front-door.").wait_for()
    assert page.locator("#collection option").all_inner_texts() == ["default"]

    # keys: create one bound to nothing with the verify scope, its secret shown once;
    # it works until revoked here
    import httpx

    page.get_by_role("link", name="Keys").click()
    keys_form = page.locator("#key-form")
    keys_form.get_by_label("Name", exact=True).fill("door tablet")
    keys_form.get_by_role("button", name="Create").click()
    page.get_by_text("Tick at least one scope.").wait_for()
    keys_form.get_by_label("verify").check()
    keys_form.get_by_role("button", name="Create").click()
    page.get_by_text("Created the key door tablet.").wait_for()
    secret = page.get_by_label("The new key").input_value()
    assert secret.startswith("fsk_")
    who = httpx.get(f"{served['base']}/v1/whoami", headers={"X-API-Key": secret}, timeout=30)
    assert who.json()["scopes"] == ["verify"]
    prefix = who.json()["prefix"]
    assert "console-admin (this key)" in page.locator("#keys").inner_text()
    row = page.locator(f"#keys tr[data-prefix='{prefix}']")
    assert "verify" in row.inner_text() and "active" in row.inner_text()
    console.save("keys.png", tmp_path)
    row.get_by_role("button", name=f"Revoke the key door tablet ({prefix})").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete for good").click()
    page.get_by_text("Revoked the key door tablet.").wait_for()
    assert "revoked" in row.inner_text()
    who = httpx.get(f"{served['base']}/v1/whoami", headers={"X-API-Key": secret}, timeout=30)
    assert who.status_code == 401
    page.get_by_role("link", name="Gallery").click()
    page.locator("#page-gallery").wait_for()
    assert page.get_by_label("The new key").input_value() == ""  # gone with the page

    # edit a: bad metadata is refused in the page; a rename, metadata and a second face
    page.get_by_role("link", name="Gallery").click()
    name_a = a.replace("_", " ")
    page.get_by_role("button", name=f"Edit {name_a}").click()
    edit = page.get_by_role("dialog")
    edit.get_by_text("Faces enrolled: 1.").wait_for()
    edit.get_by_label("Name", exact=True).fill("Aaron S.")
    edit.get_by_label("Metadata (a JSON object)").fill("[1, 2]")
    edit.get_by_role("button", name="Save").click()
    edit.get_by_text("The metadata must be a JSON object").wait_for()
    edit.get_by_label("Metadata (a JSON object)").fill('{"department": "writing"}')
    assert edit.locator("#edit-status").inner_text() == ""  # the complaint goes on typing
    edit.get_by_label("Add a photo of this person (optional)").set_input_files(
        str(photo_path(a, 2))
    )
    console.save("edit.png", tmp_path)
    edit.get_by_role("button", name="Save").click()
    page.get_by_text("Saved Aaron S.; the new face has detection score").wait_for()
    assert console.rows() == ["Aaron S."]

    ident = page.locator("#people tr").first.get_attribute("data-id")
    stored = httpx.get(
        f"{served['base']}/v1/identities/{ident}", headers={"X-API-Key": key}, timeout=30
    ).json()
    assert stored["identity"]["name"] == "Aaron S." and len(stored["faces"]) == 2
    assert stored["identity"]["metadata"] == {"department": "writing"}

    # remove the first face from the edit dialog (the browser's confirm answered yes)
    first, second = (face["id"] for face in stored["faces"])
    page.get_by_role("button", name="Edit Aaron S.").click()
    edit.get_by_text("Faces enrolled: 2.").wait_for()
    page.once("dialog", lambda question: question.accept())
    edit.get_by_role("button", name=f"Remove face {first}").click()
    edit.get_by_text(f"Removed face {first}.").wait_for()
    edit.get_by_text("Faces enrolled: 1.").wait_for()
    page.keyboard.press("Escape")
    left = httpx.get(
        f"{served['base']}/v1/identities/{ident}", headers={"X-API-Key": key}, timeout=30
    ).json()
    assert [face["id"] for face in left["faces"]] == [second]

    # a reload keeps the tab signed in; another tab is not; signing out forgets the key
    page.reload()
    page.get_by_text("Signed in as console-admin (admin)").wait_for()
    other = console.context.new_page()
    other.goto(f"{served['base']}/console")
    other.get_by_label("API key", exact=True).wait_for()
    assert other.evaluate("() => sessionStorage.length") == 0
    other.close()

    # the key stayed in the tab's storage, never in a URL; nothing went elsewhere
    assert page.evaluate("() => sessionStorage.getItem('facesvc.apiKey')") == key
    assert not [url for url in requested if key in url]
    assert console.elsewhere == [], f"the console reached beyond the service: {console.elsewhere}"
    assert console.errors == []
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("API key", exact=True).wait_for()
    assert page.evaluate("() => sessionStorage.length") == 0


def test_a_key_that_may_not_delete_sees_no_delete_button(
    served: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    """A `read` key sees the gallery but no button that changes it; the API refuses its
    delete with a 403. (An `enroll` key without `delete`: test_console_scopes.py.)"""
    import httpx

    a = people(1)[0]
    base, keys = served["base"], served["keys"]
    enrolled = httpx.post(
        f"{base}/v1/identities",
        headers={"X-API-Key": keys["enroll"]},
        files={"image": ("a.jpg", photo(a), "image/jpeg")},
        data={"name": "Door Person", "external_id": a},
        timeout=120,
    )
    assert enrolled.status_code == 201, enrolled.text
    identity = enrolled.json()["identity"]["id"]

    console = Console(browser, base)
    page = console.page
    console.open()
    page.get_by_label("API key", exact=True).focus()  # keyboard only: type the key, press Enter
    page.keyboard.type(keys["read"])
    page.keyboard.press("Enter")
    page.get_by_text("Signed in as console-read (read)").wait_for()
    page.wait_for_function("() => document.querySelectorAll('#people tr').length === 1")
    assert console.rows() == ["Door Person"]
    assert page.locator("#people button").count() == 0
    assert page.get_by_role("button", name="Delete Door Person").count() == 0
    assert page.locator("#enroll-form").is_hidden()  # no enroll either
    page.get_by_role("link", name="Test").click()
    page.get_by_text("This key may not test faces").wait_for()
    page.get_by_role("link", name="Door log").click()
    page.get_by_text("Only an admin key may read the decision log").wait_for()
    assert page.locator("#log-body").is_hidden()
    page.get_by_role("link", name="Gallery").click()
    page.locator("#page-gallery").wait_for()
    console.save("read-only.png", tmp_path)

    refused = httpx.delete(
        f"{base}/v1/identities/{identity}", headers={"X-API-Key": keys["read"]}, timeout=30
    )
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    still = httpx.get(
        f"{base}/v1/identities/{identity}", headers={"X-API-Key": keys["read"]}, timeout=30
    )
    assert still.status_code == 200

    # a verify key: tests faces, sees no gallery at all
    page.get_by_role("button", name="Sign out").click()
    console.sign_in(keys["verify"])
    page.get_by_text("Signed in as console-verify (verify)").wait_for()
    page.get_by_role("link", name="Gallery").click()
    page.get_by_text("This key may not see the gallery").wait_for()
    assert page.locator("#people button").count() == 0
    assert console.elsewhere == [] and console.errors == []


def test_the_console_files_are_served_with_a_strict_policy(served: dict[str, Any]) -> None:
    import httpx

    base = served["base"]
    for name, kind in [
        ("", "text/html"),
        ("/app.js", "text/javascript"),
        ("/console.css", "text/css"),
    ]:
        answer = httpx.get(f"{base}/console{name}", timeout=30)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith(kind)
        policy = answer.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy
        assert "unsafe" not in policy
    for name in ("router.py", "..%2Frouter.py", "nothing.js", "static"):
        answer = httpx.get(f"{base}/console/{name}", timeout=30)
        assert answer.status_code == 404 and answer.json()["error"] == "not_found"


def _y4m(photo_file: Path, out: Path) -> Path:
    """A one-frame Y4M video (4:2:0) of a photo: Chromium's fake webcam plays it in a loop."""
    import numpy as np

    image = Image.open(photo_file).convert("RGB")
    width, height = (side - side % 2 for side in image.size)
    y, cb, cr = (
        np.asarray(plane) for plane in image.crop((0, 0, width, height)).convert("YCbCr").split()
    )

    def half(plane: Any) -> bytes:
        quarter = plane.reshape(height // 2, 2, width // 2, 2).astype(np.uint16).mean(axis=(1, 3))
        return bytes(np.round(quarter).astype(np.uint8))

    header = f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode()
    out.write_bytes(header + b"FRAME\n" + bytes(y) + half(cb) + half(cr))
    return out


@pytest.fixture
def webcam_browser(tmp_path: Path) -> Iterator[Any]:
    """Chromium whose webcam is a fake device playing a real face photo."""
    video = _y4m(photo_path(people(4)[3]), tmp_path / "webcam.y4m")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",  # the permission prompt answered yes
                f"--use-file-for-fake-video-capture={video}",
                # a name for the test server that is not localhost: no secure context
                "--host-resolver-rules=MAP door.test 127.0.0.1",
            ],
        )
        try:
            yield chromium
        finally:
            chromium.close()


def _live_box(page: Any, prefix: str) -> None:
    """/v1/detect found the one face of the webcam's picture and drew its box."""
    page.locator(f"#{prefix}-camera-status").get_by_text("One face, detection score").wait_for()
    page.wait_for_function(
        """(id) => {
            const c = document.getElementById(id);
            if (!c.width) return false;
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true;
            return false;
        }""",
        arg=f"{prefix}-overlay",
    )


def test_enroll_and_recognize_from_the_webcam(
    served: dict[str, Any], webcam_browser: Any, tmp_path: Path
) -> None:
    """The webcam path with Chromium's fake media stream playing a real face photo: a live
    face box before the photo is taken, then enroll it and recognize it again; verify
    against the claimed external id too."""
    person = people(4)[3]
    name = person.replace("_", " ")
    console = Console(webcam_browser, served["base"])
    page = console.page
    console.context.grant_permissions(["camera"], origin=served["base"])
    console.open()
    console.sign_in(served["keys"]["admin"])
    page.get_by_text("Nobody is enrolled here yet.").wait_for()

    page.locator("#enroll-form").get_by_role("button", name="Use the webcam").click()
    _live_box(page, "enroll")
    console.save("enroll-webcam.png", tmp_path)
    page.locator("#enroll-form").get_by_role("button", name="Take the photo").click()
    page.get_by_text("Photo taken from the webcam.").wait_for()
    assert page.locator("#enroll-camera").is_hidden()  # the webcam is closed again
    page.locator("#enroll-form").get_by_label("Name", exact=True).fill(name)
    page.locator("#enroll-form").get_by_label("External id (optional)", exact=True).fill(person)
    page.get_by_role("button", name="Enroll", exact=True).click()
    page.get_by_text(f"Enrolled {name}: face found with detection score").wait_for()
    page.wait_for_function("() => document.querySelectorAll('#people tr').length === 1")

    page.get_by_role("link", name="Test").click()
    page.locator("#recognize-form").get_by_role("button", name="Use the webcam").click()
    _live_box(page, "probe")
    page.locator("#recognize-form").get_by_role("button", name="Take the photo").click()
    page.get_by_role("button", name="Recognize").click()
    page.locator("#result").wait_for(state="visible")
    assert page.locator("#decision").inner_text() == f"Recognized: {name}"
    assert _canvas_has_the_box(page, GREEN)

    # verify the file of a stranger against the claimed person: no match
    page.get_by_label("Photo to test").set_input_files(str(photo_path(people(1)[0])))
    page.get_by_label("Claimed external id (optional)").fill(person)
    page.get_by_role("button", name="Verify").click()
    page.get_by_text(f"No match with {person}").wait_for()
    figures = page.locator("#figures dd[data-figure]")
    shown = {str(f.get_attribute("data-figure")): str(f.inner_text()) for f in figures.all()}
    assert float(shown["distance"]) > float(shown["threshold"])
    assert _canvas_has_the_box(page, RED)
    assert console.elsewhere == [] and console.errors == []


def test_the_webcam_asks_for_https_off_localhost(
    served: dict[str, Any], webcam_browser: Any
) -> None:
    """Browsers give the webcam to secure pages only; over plain HTTP from another host
    the console says so (and photo files still work)."""
    plain = served["base"].replace("127.0.0.1", "door.test")
    console = Console(webcam_browser, plain)
    page = console.page
    console.open()
    assert page.evaluate("() => window.isSecureContext") is False
    console.sign_in(served["keys"]["admin"])
    page.get_by_text("Nobody is enrolled here yet.").wait_for()
    page.locator("#enroll-form").get_by_role("button", name="Use the webcam").click()
    page.get_by_text("The browser allows the webcam only on https:// pages").wait_for()
    assert page.locator("#enroll-camera").is_hidden()
    said = console.enroll("File Person", "", photo_path(people(1)[0]))
    assert said.startswith("Enrolled File Person"), said
    assert console.elsewhere == [] and console.errors == []
