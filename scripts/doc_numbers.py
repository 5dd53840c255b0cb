"""The numbers the docs quote from the code, written into the docs from the code.

A number in a doc is marked `<!--num:NAME-->VALUE<!--/num-->` (invisible when rendered).
`python scripts/doc_numbers.py` rewrites every marked VALUE from the code; `--check`
changes nothing and exits 1 when a doc disagrees with the code or names an unknown
number (tests/test_doc_numbers.py runs it, so CI fails on drift).

    PYTHONPATH=. .venv/bin/python scripts/doc_numbers.py [--check]
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ("README.md", "docs/service.md", "docs/accuracy.md", "docs/open-set.md")
MARK = re.compile(r"<!--num:([a-z0-9_]+)-->(.*?)<!--/num-->")
GALLERY_SIZES = (1, 10, 100, 247, 1000, 10000)


def numbers() -> dict[str, str]:
    """Every quotable number, by name, as the docs write it."""
    from app.core.decision.calibration import from_built_in
    from app.core.decision.open_set import GalleryModel
    from app.core.model.backbones.dlib_resnet import CALIBRATION, CALIBRATION_L2

    tau: Callable[[float], str] = lambda v: f"{v:.4f}"  # noqa: E731
    pct: Callable[[float], str] = lambda v: f"{v:.0%}"  # noqa: E731
    out = {
        "tau_verify": tau(CALIBRATION_L2.tau_verify),
        "tau_identify": tau(CALIBRATION_L2.tau_identify),
        "tau_identify_gallery": f"{CALIBRATION_L2.gallery_size}",
        "tau_verify_raw": tau(CALIBRATION.tau_verify),
        "tau_identify_raw": tau(CALIBRATION.tau_identify),
    }
    for size in GALLERY_SIZES:
        derived = from_built_in(CALIBRATION_L2, size)
        out[f"tau_identify_at_{size}"] = tau(derived.tau_identify)
        out[f"fnir_identify_at_{size}"] = pct(derived.fnir_identify)
    # The built-in cohort's 1:N tau on d1 / c (docs/open-set.md section 0).
    cohort = CALIBRATION_L2.cohort or {}
    model = GalleryModel.from_dict(cohort["gallery_model"])
    out["cohort_k"] = str(cohort["k"])
    out["cohort_min_gallery"] = str(cohort["min_gallery"])
    for size in (1, 10, 100, 1000, 10000):
        out[f"cohort_tau_at_{size}"] = tau(model.tau_for_fpir(cohort["fpir"], size))
    return out


def rewrite(text: str, values: dict[str, str]) -> tuple[str, list[str]]:
    """`text` with every marked number from `values`; and the unknown names."""
    unknown: list[str] = []

    def put(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            unknown.append(name)
            return match.group(0)
        return f"<!--num:{name}-->{values[name]}<!--/num-->"

    return MARK.sub(put, text), unknown


def main(argv: list[str]) -> int:
    check = "--check" in argv
    values = numbers()
    stale, unknown_any = [], False
    for name in FILES:
        path = ROOT / name
        text = path.read_text()
        new, unknown = rewrite(text, values)
        for bad in unknown:
            print(f"{name}: unknown number {bad!r} (scripts/doc_numbers.py knows {sorted(values)})")
        unknown_any = unknown_any or bool(unknown)
        if new != text:
            stale.append(name)
            if not check:
                path.write_text(new)
                print(f"{name}: numbers rewritten from the code")
    if check and stale:
        print(f"docs disagree with the code: {sorted(set(stale))}; run scripts/doc_numbers.py")
        return 1
    return 1 if unknown_any else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
