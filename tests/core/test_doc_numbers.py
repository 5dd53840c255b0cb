"""The numbers the docs quote from the code agree with it (scripts/doc_numbers.py)."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("doc_numbers", ROOT / "scripts/doc_numbers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


doc_numbers = _script()


def test_the_docs_agree_with_the_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert doc_numbers.main(["--check"]) == 0, capsys.readouterr().out
    # every number the script knows is quoted somewhere: no marker was lost
    text = "".join((ROOT / name).read_text() for name in doc_numbers.FILES)
    quoted = {name for name, _ in doc_numbers.MARK.findall(text)}
    assert quoted == set(doc_numbers.numbers())


def test_a_stale_number_fails_the_check_and_is_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in doc_numbers.FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    monkeypatch.setattr(doc_numbers, "ROOT", tmp_path)
    service = tmp_path / "docs/service.md"
    current = doc_numbers.numbers()["tau_verify"]
    marked = f"<!--num:tau_verify-->{current}<!--/num-->"
    assert marked in service.read_text()
    stale = "<!--num:tau_verify-->0.2821<!--/num-->"  # the number issue 13 found quoted
    service.write_text(service.read_text().replace(marked, stale))
    assert doc_numbers.main(["--check"]) == 1
    assert "0.2821" in service.read_text()  # --check changes nothing
    assert doc_numbers.main([]) == 0
    assert "0.2821" not in service.read_text() and marked in service.read_text()
    assert doc_numbers.main(["--check"]) == 0
    service.write_text(service.read_text() + "\n<!--num:tau_nonsense-->1<!--/num-->\n")
    assert doc_numbers.main(["--check"]) == 1


def test_example_answers_quote_current_thresholds() -> None:
    """The curl examples' answers (in code blocks, where no marker fits) show a threshold
    the service can answer with its defaults."""
    values = doc_numbers.numbers()
    thresholds = {v for k, v in values.items() if k.startswith("tau_") and "." in v}
    for name in doc_numbers.FILES:
        blocks = re.findall(r"```.*?```", (ROOT / name).read_text(), flags=re.S)
        for shown in re.findall(r'"threshold": ([0-9.]+)', "".join(blocks)):
            assert shown in thresholds, f"{name}: example threshold {shown} is not the code's"
