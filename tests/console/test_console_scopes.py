"""The console and the `delete` scope, in headless Chromium against the real service on
SQLite and PostgreSQL (the fixtures of test_console_browser.py): an enroll-only key
enrolls and edits but sees no delete button, for people or for faces, and the API
refuses its deletes anyway; and the gallery's search by part of the name.

Issue 17's Must-show line: "An enroll-scoped key sees no delete button, and the API
refuses the delete anyway." Since migration 0008 deleting is the `delete` scope's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.console.test_console_browser import Console
from tests.console.test_console_browser import browser as browser  # the fixtures
from tests.console.test_console_browser import served as served
from tests.support.factories import people, photo


def _enroll(base: str, key: str, person: str, name: str) -> dict[str, Any]:
    answer = httpx.post(
        f"{base}/v1/identities",
        headers={"X-API-Key": key},
        files={"image": ("p.jpg", photo(person), "image/jpeg")},
        data={"name": name, "external_id": person},
        timeout=120,
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_an_enroll_key_sees_no_delete_button_and_may_not_delete(
    served: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    a, b = people(2)
    base, keys = served["base"], served["keys"]
    door = _enroll(base, keys["enroll"], a, "Door Person")
    _enroll(base, keys["enroll"], b, "Garden Keeper")
    identity, face = door["identity"]["id"], door["face"]["id"]

    console = Console(browser, base)
    page = console.page
    console.open()
    console.sign_in(keys["enroll"])
    page.get_by_text("Signed in as console-enroll (enroll)").wait_for()
    allows = page.locator("#key-allows li").all_inner_texts()
    assert allows == ["enroll and rename people, add faces", "see the gallery"], allows
    page.wait_for_function("() => document.querySelectorAll('#people tr').length === 2")
    assert console.rows() == ["Door Person", "Garden Keeper"]

    # find by part of the name, in another case: the API's `name` search
    page.get_by_label("Find by name").fill("door PER")
    page.get_by_role("button", name="Find", exact=True).click()
    page.wait_for_function("() => document.querySelectorAll('#people tr').length === 1")
    assert console.rows() == ["Door Person"]
    page.get_by_label("Find by name").fill("nobody at all")
    page.get_by_role("button", name="Find", exact=True).click()
    page.get_by_text("Nobody's name contains nobody at all.").wait_for()
    page.get_by_role("button", name="Show all").click()
    page.wait_for_function("() => document.querySelectorAll('#people tr').length === 2")
    assert page.get_by_label("Find by name").input_value() == ""

    # it enrolls and edits: the form and the Edit buttons are there; no Delete anywhere
    assert page.locator("#enroll-form").is_visible()
    assert page.get_by_role("button", name="Edit Door Person").is_visible()
    assert page.get_by_role("button", name="Delete Door Person").count() == 0
    assert page.locator("#people button.delete").count() == 0
    console.save("enroll-only.png", tmp_path)
    page.get_by_role("button", name="Edit Door Person").click()
    edit = page.get_by_role("dialog")
    edit.get_by_text("Faces enrolled: 1.").wait_for()
    assert edit.locator("#edit-face-list li").count() == 1
    assert edit.get_by_role("button", name=f"Remove face {face}").count() == 0
    page.keyboard.press("Escape")

    # the API refuses the deletes anyway, and the person is still there with their face
    headers = {"X-API-Key": keys["enroll"]}
    for path in (f"/v1/identities/{identity}", f"/v1/identities/{identity}/faces/{face}"):
        refused = httpx.delete(f"{base}{path}", headers=headers, timeout=30)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "forbidden" and "'delete'" in refused.json()["detail"]
    still = httpx.get(f"{base}/v1/identities/{identity}", headers=headers, timeout=30)
    assert still.status_code == 200 and [f["id"] for f in still.json()["faces"]] == [face]
    page.reload()  # and the console, asked again, still lists them
    page.wait_for_function("() => document.querySelectorAll('#people tr').length === 2")
    assert console.rows() == ["Door Person", "Garden Keeper"]

    # an admin key (which has every scope) does see the delete buttons
    page.get_by_role("button", name="Sign out").click()
    console.sign_in(keys["admin"])
    page.get_by_role("button", name="Delete Door Person").wait_for()
    assert "delete people and faces" in page.locator("#key-allows li").all_inner_texts()
    assert console.elsewhere == [] and console.errors == []
