"""All the console's text is in static/strings.js (one file to translate): the HTML has
no text of its own, every key the pages name exists there, and every string there is
used."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from app.domains.console.router import STATIC


class _Texts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.keys: set[str] = set()
        self.loose: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("data-text", "data-aria") and value:
                self.keys.add(value)
            if name in ("aria-label", "title", "placeholder", "alt") and value:
                self.loose.append(f"{tag} {name}={value!r}")

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.loose.append(data.strip())


def _strings() -> set[str]:
    source = (STATIC / "strings.js").read_text()
    body = source.split("export const STRINGS = {", 1)[1].split("\n};", 1)[0]
    return set(re.findall(r"^  (\w+):", body, flags=re.MULTILINE))


def _scripts() -> str:
    return "\n".join(
        path.read_text() for path in sorted(Path(STATIC).glob("*.js")) if path.name != "strings.js"
    )


def test_the_page_has_no_text_of_its_own() -> None:
    page = _Texts()
    page.feed((STATIC / "index.html").read_text())
    assert page.loose == [], f"text outside strings.js: {page.loose}"
    missing = page.keys - _strings()
    assert not missing, f"keys the HTML names that strings.js lacks: {sorted(missing)}"


def test_every_key_used_exists_and_every_string_is_used() -> None:
    strings = _strings()
    scripts = _scripts()
    called = set(re.findall(r"\bt\(\s*\"(\w+)\"", scripts))
    assert called, "no t(...) call found: the pattern is out of date"
    missing = called - strings
    assert not missing, f"keys the scripts use that strings.js lacks: {sorted(missing)}"
    page = _Texts()
    page.feed((STATIC / "index.html").read_text())
    quoted = set(re.findall(r"\"(\w+)\"", scripts))  # keys passed on as values too
    unused = strings - page.keys - quoted
    assert not unused, f"strings nothing uses: {sorted(unused)}"
