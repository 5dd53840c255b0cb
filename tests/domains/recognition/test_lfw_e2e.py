"""End to end on real photos: 20 people from lfw_dev enrolled with one photo each.

Skips when ../shared/faces is absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.core.decision.calibration import from_built_in
from app.core.decision.distance import squared_distance
from app.core.model.pipeline import FacePipeline
from tests.support.service import SHARED_FACES, Api, MakeApi

LFW = SHARED_FACES / "lfw_dev"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not LFW.is_dir(), reason=f"{LFW} is missing (shared face sets)"),
]


def _people() -> tuple[list[tuple[str, list[Path]]], list[Path]]:
    """20 people with >= 2 photos (enrolled), and 10 single-photo strangers."""
    enrolled: list[tuple[str, list[Path]]] = []
    strangers: list[Path] = []
    for folder in sorted(p for p in LFW.iterdir() if p.is_dir()):
        photos = sorted(folder.glob("*.jpg"))
        if len(photos) >= 2 and len(enrolled) < 20:
            enrolled.append((folder.name, photos))
        elif len(photos) == 1 and len(strangers) < 10:
            strangers.append(photos[0])
    return enrolled, strangers


def _recognize(api: Api, path: Path) -> dict[str, Any]:
    r = api.post(
        "/v1/recognize",
        files={"image": path.read_bytes()},
        data={"top_k": "3", "include_rejected": "true"},
    )
    assert r.status_code == 200, r.text
    face: dict[str, Any] = r.json()["faces"][0]
    return face


def test_enroll_verify_recognize_restart_delete(make_api: MakeApi, pipeline: FacePipeline) -> None:
    api: Api = make_api()
    enrolled, strangers = _people()
    ids = {}
    for name, photos in enrolled:
        r = api.enroll(photos[0].read_bytes(), name, external_id=name, largest_face=True)
        assert r.status_code == 201, (name, r.text)
        ids[name] = r.json()["identity"]["id"]

    # verify with another photo: same distance as the pipeline (what `facesvc eval` measures)
    embed = {}
    for name, photos in enrolled:
        probe = photos[1].read_bytes()
        r = api.post(
            "/v1/verify", data={"external_id": name, "largest_face": "true"}, files={"image": probe}
        )
        assert r.status_code == 200, r.text
        a = pipeline.analyze(photos[0].read_bytes(), faces="largest")[0].embedding
        b = pipeline.analyze(probe, faces="largest")[0].embedding
        embed[name] = b
        assert r.json()["distance"] == pytest.approx(squared_distance(a, b), abs=1e-4)
        assert r.json()["match"] == (r.json()["distance"] <= r.json()["threshold"])

    answers = {name: _recognize(api, photos[1]) for name, photos in enrolled}
    # nearest candidate right for most (rank-1 on lfw_dev is 96%); the strict 1:N default
    # (FNIR about 38% on lfw_dev) may answer "unknown", but never the wrong person
    nearest_right = sum(
        a["candidates"][0]["identity"]["external_id"] == name for name, a in answers.items()
    )
    assert nearest_right >= 17, f"nearest candidate right for only {nearest_right}/20"
    # the default that decided: the built-in 1:N tau, re-derived for this gallery's size
    tau = from_built_in(pipeline.backbone.calibration, len(enrolled)).tau_identify
    assert tau > pipeline.backbone.calibration.tau_identify  # 20 faces, not 247: less strict
    for name, answer in answers.items():
        top = answer["candidates"][0]
        assert (answer["identity"] is not None) == (top["distance"] <= tau)
        if answer["identity"] is not None:
            assert answer["identity"]["external_id"] == name
    assert any(a["identity"] is not None for a in answers.values())
    for name, answer in answers.items():  # nearest candidate has the verify distance
        top = answer["candidates"][0]
        if top["identity"]["external_id"] == name:
            assert top["distance"] == pytest.approx(
                api.post(
                    "/v1/verify",
                    data={"external_id": name, "largest_face": "true"},
                    files={"image": dict(enrolled)[name][1].read_bytes()},
                ).json()["distance"],
                abs=1e-4,
            )
    unknown = [_recognize(api, p) for p in strangers]
    assert all(u["identity"] is None for u in unknown), [
        (p.name, u["candidates"][0])
        for p, u in zip(strangers, unknown, strict=True)
        if u["identity"]
    ]

    # restart: a new process over the same database gives the same answers
    restarted = make_api()
    assert {n: _recognize(restarted, p[1]) for n, p in enrolled} == answers

    # delete: never returned again, before or after a restart
    gone_name, gone_photos = enrolled[0]
    assert restarted.delete(f"/v1/identities/{ids[gone_name]}").status_code == 204
    for app_ in (restarted, make_api()):
        for _, photos in enrolled:
            face = _recognize(app_, photos[1])
            assert all(c["identity"]["id"] != ids[gone_name] for c in face["candidates"])
        r = app_.post(
            "/v1/verify",
            data={"identity_id": ids[gone_name]},
            files={"image": gone_photos[1].read_bytes()},
        )
        assert r.status_code == 404
