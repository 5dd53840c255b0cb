"""The face command line end to end: compare, embed, eval, with the real model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.cli import main

DATA = Path(__file__).parents[1] / "data"
FACES = DATA / "faces"
SHARED_FACES = Path(__file__).resolve().parents[2].parent / "shared" / "faces"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_compare_same_person_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    a, b = FACES / "Aaron_Sorkin_0001.jpg", FACES / "Aaron_Sorkin_0002.jpg"
    code, out = _run(capsys, "compare", str(a), str(b), "--json")
    result = json.loads(out)
    assert code == 0 and result["match"] is True
    assert result["distance"] <= result["threshold"]
    assert len(result["faces"]) == 2 and result["faces"][0]["score"] > 0.9


def test_compare_different_people_exits_one(capsys: pytest.CaptureFixture[str]) -> None:
    a, b = FACES / "Aaron_Sorkin_0001.jpg", FACES / "Abdullah_Gul_0001.jpg"
    code, out = _run(capsys, "compare", str(a), str(b))
    assert code == 1 and out.startswith("different people")


def test_compare_threshold_override_decides(capsys: pytest.CaptureFixture[str]) -> None:
    a, b = FACES / "Aaron_Sorkin_0001.jpg", FACES / "Abdullah_Gul_0001.jpg"
    _, out = _run(capsys, "compare", str(a), str(b), "--json")
    distance = json.loads(out)["distance"]
    code, out = _run(capsys, "compare", str(a), str(b), "--json", "--threshold", str(distance))
    assert code == 0 and json.loads(out)["threshold"] == distance


def test_compare_reports_no_face_as_an_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from PIL import Image

    flat = tmp_path / "flat.png"
    Image.new("RGB", (200, 200), (128, 128, 128)).save(flat)
    code = main(["compare", str(flat), str(FACES / "Aaron_Sorkin_0001.jpg")])
    assert code == 2
    assert "no_face" in capsys.readouterr().err


def test_embed_json_has_one_row_per_file(capsys: pytest.CaptureFixture[str]) -> None:
    files = [FACES / "Aaron_Sorkin_0001.jpg", FACES / "orl_s1_1.pgm"]
    code, out = _run(capsys, "embed", *map(str, files), "--json")
    rows = json.loads(out)
    assert code == 0 and [row["file"] for row in rows] == list(map(str, files))
    for row in rows:
        assert len(row["embedding"]) == 128 and len(row["box"]) == 4 and row["score"] > 0.9


def test_embed_aligned_skips_detection(capsys: pytest.CaptureFixture[str]) -> None:
    chip = DATA / "chips" / "Aaron_Sorkin_0001.png"
    _, aligned = _run(capsys, "embed", "--aligned", "--json", str(chip))
    row = json.loads(aligned)[0]
    assert row["box"] is None and len(row["embedding"]) == 128
    # the same person's photo, through detection and our alignment, lands close by
    _, detected = _run(capsys, "embed", "--json", str(FACES / "Aaron_Sorkin_0001.jpg"))
    distance = float(
        np.sum((np.array(row["embedding"]) - np.array(json.loads(detected)[0]["embedding"])) ** 2)
    )
    assert distance < 0.1


@pytest.mark.slow
def test_eval_on_orl_recognises_everyone(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The full protocol on a real set: 400 photos through the whole pipeline."""
    orl = SHARED_FACES / "orl"
    if not orl.is_dir():
        pytest.skip(f"{orl} is absent (a fresh clone has no ../shared)")
    code, out = _run(capsys, "eval", "--data", str(orl), "--json", "--cache", str(tmp_path))
    report = json.loads(out)
    assert code == 0
    assert report["images"] == 400 and report["failed_images"] == 0
    assert report["lfw_accuracy_mean"] is None  # ORL has no pairs file
    assert report["rank1"] == 1.0
    assert report["roc_auc"] > 0.999
    # a rerun reads every embedding from the cache and reports the same figures
    _, again = _run(capsys, "eval", "--data", str(orl), "--json", "--cache", str(tmp_path))
    assert json.loads(again) == report
