"""`facesvc calibrate` and `facesvc eval --threshold` end to end with the real model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.cli import main

FACES = Path(__file__).parents[1] / "data" / "faces"
SHARED_FACES = Path(__file__).resolve().parents[2].parent / "shared" / "faces"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(list(argv)) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def test_calibrate_json_is_stored_and_eval_measures_the_same_rates(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    small_set: Path,
    cache: Path,
) -> None:
    monkeypatch.setenv("FACESVC_DATABASE_URL", f"sqlite:///{tmp_path / 'cal.db'}")
    argv = ["calibrate", "--data", str(small_set), "--far", "0.01", "--cache", str(cache)]
    result = _json(capsys, *argv, "--json")
    assert {"tau", "far", "tar", "tau_identify", "expected_fnir"} <= result.keys()
    assert result["far"] <= 0.01 and result["tar"] > 0.5
    assert result["verification"]["impostor_pairs"] == 24 * 22 // 2
    far_interval = result["verification"]["far"]
    assert far_interval["low"] <= result["far"] <= far_interval["high"]
    assert result["gallery_size"] == 6  # PROTOCOL.md section 3: half of 12 people
    assert result["tau_identify"] <= result["tau"]  # 1:N is stricter than 1:1
    assert result["saved_id"] == 1
    assert _json(capsys, *argv, "--json")["saved_id"] == 2  # every run is kept

    # section 4: the calibrated tau measured by eval gives the same rates on the same set
    report = _json(
        capsys, "eval", "--data", str(small_set), "--json", "--cache", str(cache),
        "--threshold", str(result["tau"]),
    )  # fmt: skip
    assert report["far_at_threshold"] == result["far"]
    assert report["tar_at_threshold"] == result["tar"]
    assert 0.0 <= report["fpir_at_threshold"] <= 1.0
    # every rank-1 error is a miss at any tau, and tau_verify is loose enough for 1:N
    assert report["fnir_at_threshold"] >= 1 - report["rank1"] - 1e-12
    assert report["fpir_at_threshold"] >= report["fpir_at_default_tau"]


def test_eval_threshold_extremes(
    capsys: pytest.CaptureFixture[str], small_set: Path, cache: Path
) -> None:
    base = ["eval", "--data", str(small_set), "--json", "--cache", str(cache)]
    everything = _json(capsys, *base, "--threshold", "100")
    assert everything["far_at_threshold"] == 1.0 and everything["tar_at_threshold"] == 1.0
    assert everything["fpir_at_threshold"] == 1.0
    assert everything["fnir_at_threshold"] == pytest.approx(1 - everything["rank1"])
    nothing = _json(capsys, *base, "--threshold", "0")
    assert nothing["far_at_threshold"] == 0.0 and nothing["tar_at_threshold"] == 0.0
    assert nothing["fpir_at_threshold"] == 0.0 and nothing["fnir_at_threshold"] == 1.0
    assert "far_at_threshold" not in _json(capsys, *base)


def test_calibrate_rejects_bad_targets(capsys: pytest.CaptureFixture[str], small_set: Path) -> None:
    assert main(["calibrate", "--data", str(small_set), "--far", "2"]) == 2
    assert "validation_error" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(1800)  # embeds lfw_dev when the evaluation cache is cold
def test_calibrated_far_holds_on_held_out_identities(capsys: pytest.CaptureFixture[str]) -> None:
    """tau chosen on half of lfw_dev's people for FAR 1e-3 gives a FAR within a factor of 2
    of it on the other half (PROTOCOL.md section 4), and the gallery-size model holds
    FPIR 1e-2 there within a factor of 2 at every gallery size measured.

    Uses the evaluation cache `facesvc eval` fills; without it the set is embedded
    first (minutes)."""
    lfw = SHARED_FACES / "lfw_dev"
    if not lfw.is_dir():
        pytest.skip(f"{lfw} is absent (a fresh clone has no ../shared)")
    argv = ["calibrate", "--data", str(lfw), "--far", "1e-3", "--holdout", "0.5"]
    result = _json(capsys, *argv, "--no-save", "--json")
    held = result["held_out"]
    assert result["far"] <= 1e-3
    assert 0.5e-3 <= held["verification"]["far"]["value"] <= 2e-3
    # 0.949 with the shipped pipeline; 0.930 with flip fusion off (measured): a guard at
    # the level we tune, not one any MTCNN pipeline passes
    assert held["verification"]["tar"]["value"] >= 0.94
    rows = held["gallery_model_validation"]["independent"]["rows"]
    assert [row["gallery_size"] for row in rows][-1] > 500
    for row in rows:
        # Never above twice the target. Below it, the L2 default's independence model is
        # conservative from N = 128 on (0.38-0.46% for 1% asked; docs/open-set.md,
        # section 2): strangers get in less often than promised, at some FNIR.
        assert 0.3e-2 <= row["measured_fpir"] <= 2e-2, row
        assert row["expected_fnir"] == pytest.approx(row["measured_fnir"], abs=0.06), row


def test_save_cohort_writes_the_one_photo_people(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    small_set: Path,
    cache: Path,
) -> None:
    folder = tmp_path / "with_single"
    shutil.copytree(small_set, folder)
    (folder / "orl_s1").mkdir()
    shutil.copy2(FACES / "orl_s1_1.pgm", folder / "orl_s1" / "orl_s1_1.pgm")  # one photo
    out = tmp_path / "cohort.npy"
    argv = ["calibrate", "--data", str(folder), "--cache", str(cache), "--no-save"]
    result = _json(capsys, *argv, "--save-cohort", str(out), "--json")
    assert result["cohort_size"] == 1 and result["cohort_file"] == str(out)
    cohort = np.load(out)
    assert cohort.shape == (1, 128) and cohort.dtype == np.float32
    assert np.isfinite(cohort).all() and np.linalg.norm(cohort) > 0
