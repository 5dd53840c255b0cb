"""GET /v1/models/{name}/calibration: the ROC `facesvc calibrate` stores (run here as an
operator runs it, on the 24 real test photos) and the FPIR curve of the 1:N threshold;
the built-in calibration's card without a stored ROC; SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.core.store.repos import calibrations as repository
from app.core.store.rows.calibrations import StoredCalibration
from tests.support.service import Api, MakeApi


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Embeddings of the set, shared by the two databases' runs."""
    return tmp_path_factory.mktemp("cache")


def _curve(api: Api, name: str, scope: str = "verify") -> dict[str, Any]:
    r = api.get(f"/v1/models/{name}/calibration", scope)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _at(points: list[dict[str, Any]], tau: float) -> dict[str, Any]:
    (point,) = [p for p in points if p["tau"] == tau]
    return point


def test_the_built_in_calibration_has_no_stored_curve(api: Api) -> None:
    active = api.get("/v1/models", "verify").json()["active"]
    body = _curve(api, active["name"])
    assert body["stored"] is None and body["roc"] is None
    assert body["version"] == active["version"]
    assert body["verify"]["tau"] == active["verify"]["default"]
    identify = body["identify"]
    assert identify["tau"] == active["identify"]["default"]
    curve = body["fpir_curve"]  # the default L2 model ships a gallery model
    assert curve["gallery_size"] == identify["gallery_size"] == 1  # nobody enrolled yet
    taus = [p["tau"] for p in curve["points"]]
    assert taus == sorted(taus) and len(taus) == len(set(taus)) <= 221
    fpirs = [p["fpir"] for p in curve["points"]]
    assert fpirs == sorted(fpirs) and 0 <= fpirs[0] < fpirs[-1] <= 1
    # the 1:N tau is chosen on this curve for the target FPIR
    assert _at(curve["points"], identify["tau"])["fpir"] == pytest.approx(identify["fpir"])


def test_a_calibration_the_command_stored_gives_its_roc(
    make_api: MakeApi,
    database_url: str,
    small_set: Path,
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from app.cli import main

    api = make_api()
    name = api.get("/v1/models", "verify").json()["active"]["name"]
    monkeypatch.setenv("FACESVC_DATABASE_URL", database_url)
    argv = ["calibrate", "--data", str(small_set), "--far", "0.01", "--cache", str(cache)]
    assert main([*argv, "--json"]) == 0
    saved = json.loads(capsys.readouterr().out)

    body = _curve(api, name)
    assert body["stored"]["id"] == saved["saved_id"]
    assert body["stored"]["source"].startswith("facesvc calibrate --data small --far 0.01")
    assert body["calibration_source"].startswith(f"database: calibration {saved['saved_id']}")
    assert body["verify"] == {"tau": saved["tau"], "far": saved["far"], "tar": saved["tar"]}
    roc = body["roc"]
    assert roc["impostor_pairs"] == 24 * 22 // 2 and roc["genuine_pairs"] == 12
    points = roc["points"]
    assert 20 <= len(points) <= 400
    for key in ("tau", "far", "tar"):
        values = [p[key] for p in points]
        assert values == sorted(values), key
    # rates are counts of pairs: FAR k/264, TAR k/12; from nothing accepted to all
    for p in points:
        assert p["far"] * 264 == pytest.approx(round(p["far"] * 264))
        assert p["tar"] * 12 == pytest.approx(round(p["tar"] * 12))
    assert (points[0]["far"], points[0]["tar"]) == (0.0, 0.0)
    assert (points[-1]["far"], points[-1]["tar"]) == (1.0, 1.0)
    # the operating point lies on the curve
    assert _at(points, saved["tau"]) == body["verify"]

    # 1:N: the command's calibration follows the gallery; nobody is enrolled yet
    identify = body["identify"]
    assert identify["follow_gallery"] is True and identify["gallery_size"] == 1
    curve = body["fpir_curve"]
    assert curve["gallery_model"] == "independent" and curve["gallery_size"] == 1
    assert _at(curve["points"], identify["tau"])["fpir"] == pytest.approx(saved["fpir_target"])
    assert _at(curve["points"], identify["tau"])["fnir"] == pytest.approx(identify["fnir"])

    # a calibration stored before curves were kept: no ROC, the rest as before
    def older(row: StoredCalibration) -> StoredCalibration:
        report = {k: v for k, v in row.report.items() if k != "roc"}
        fields = {c.name: getattr(row, c.name) for c in StoredCalibration.__table__.columns}
        return StoredCalibration(**{**fields, "id": None, "report": report})

    async def store_older() -> int:
        async with api.app.state.sessions() as session, session.begin():
            row = await repository.latest(session, (name, body["version"]))
            assert row is not None
            return (await repository.add(session, older(row))).id

    older_id = api.run(store_older)
    again = _curve(api, name, "admin")
    assert again["stored"]["id"] == older_id and again["roc"] is None
    assert again["verify"] == body["verify"]


def test_only_the_active_model_and_with_a_key(api: Api) -> None:
    r = api.get("/v1/models/arcface-r100/calibration", "verify")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert "not the active model" in r.json()["detail"]
    r = api.client.get("/v1/models/dlib-resnet-v1/calibration")
    assert r.status_code == 401
    r = api.get(f"/v1/models/{'x' * 101}/calibration", "verify")
    assert r.status_code == 422
