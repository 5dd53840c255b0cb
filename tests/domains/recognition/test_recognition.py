"""Verify, compare, recognize, detect, models (real pipeline and photos)."""

from __future__ import annotations

import base64
import math

import pytest
from sqlalchemy import update

from app.core.decision.calibration import from_built_in
from app.core.decision.open_set import GalleryModel
from app.core.model.pipeline import FacePipeline
from app.core.store.rows.identities import Face
from tests.support.factories import (
    TILE,
    no_face,
    people,
    photo,
    side_by_side,
    slot_of,
    upload,
)
from tests.support.service import Api, MakeApi


def _files(image: bytes) -> dict[str, tuple[str, bytes, str]]:
    return {"image": upload(image)}


def test_verify_by_id_and_external_id(api: Api, pipeline: FacePipeline) -> None:
    a, b = people(2)
    tau = pipeline.backbone.calibration.tau_verify
    ident = api.enroll(photo(a), "A", external_id="a").json()["identity"]
    r = api.verify(photo(a, 2), "verify", identity_id=ident["id"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["match"] is True and body["distance"] <= tau
    assert body["threshold"] == tau
    assert body["identity"] == ident
    (probe,) = pipeline.detect(pipeline.decode(photo(a, 2)))
    assert body["face"]["box"] == pytest.approx(list(probe.box), abs=1e-3)
    r = api.verify(photo(b), external_id="a")  # admin: the distance of a non-match too
    other = r.json()
    assert other["match"] is False and other["distance"] > tau
    # a looser per-request threshold decides, and the response says so
    looser = math.ceil(other["distance"] * 100 + 1) / 100
    r = api.verify(photo(b), external_id="a", threshold=looser)
    assert r.json()["threshold"] == looser and r.json()["match"] is True
    assert r.json()["distance"] == pytest.approx(other["distance"], abs=1e-6)


def test_verify_uses_min_distance_over_faces(api: Api) -> None:
    (a,) = people(1)
    enrolled = api.enroll(photo(a), "A").json()
    ident, first = enrolled["identity"]["id"], enrolled["face"]["id"]
    added = api.add_face(ident, photo(a, 2)).json()["face"]["id"]
    r = api.verify(photo(a, 2), identity_id=ident).json()
    assert r["match"] and r["matched_face_id"] == added != first
    assert r["distance"] == pytest.approx(0.0, abs=1e-5)  # the very photo that was added


def test_verify_target_errors(api: Api) -> None:
    (a,) = people(1)
    r = api.verify(photo(a))
    assert r.status_code == 422 and r.json()["error"] == "validation_error"
    r = api.verify(photo(a), external_id="nobody")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_compare(api: Api, pipeline: FacePipeline) -> None:
    a, b = people(2)
    tau = pipeline.backbone.calibration.tau_verify
    same = api.post(
        "/v1/compare", "verify", files={"image_a": upload(photo(a)), "image_b": upload(photo(a, 2))}
    ).json()
    assert same["match"] and same["distance"] <= tau and same["threshold"] == tau
    assert len(same["faces"]) == 2
    body = {
        "image_a": base64.b64encode(photo(a)).decode(),
        "image_b": base64.b64encode(photo(b)).decode(),
    }
    other = api.post("/v1/compare", json=body).json()
    assert not other["match"] and other["distance"] > tau and other["threshold"] == tau
    # a stricter per-request threshold, below the same-person distance, rejects the pair
    stricter = same["distance"] / 2
    strict = api.post(
        "/v1/compare",
        files={"image_a": upload(photo(a)), "image_b": upload(photo(a, 2))},
        data={"threshold": str(stricter)},
    ).json()
    assert not strict["match"] and strict["threshold"] == stricter
    assert strict["distance"] == pytest.approx(same["distance"], abs=1e-6)


def test_recognize_known_unknown_top_k_all_faces(api: Api, pipeline: FacePipeline) -> None:
    # the built-in 1:N tau, re-derived for the 5 enrolled faces (the L2 default's model)
    tau = from_built_in(pipeline.backbone.calibration, 5).tau_identify
    *group, stranger = people(6)
    enrolled = {
        person: api.enroll(photo(person), f"p{i}").json()["identity"]
        for i, person in enumerate(group)
    }
    r = api.recognize(photo(group[2], 2), "verify").json()
    assert r["threshold"] == tau
    (face,) = r["faces"]
    assert face["identity"] == enrolled[group[2]] and len(face["candidates"]) == 1
    assert face["distance"] == face["candidates"][0]["distance"] <= tau
    r = api.recognize(photo(group[2], 2), top_k=3, include_rejected=True).json()
    candidates = r["faces"][0]["candidates"]
    assert len(candidates) == 3 and candidates[0]["identity"] == enrolled[group[2]]
    assert [c["distance"] for c in candidates] == sorted(c["distance"] for c in candidates)
    assert all(c["distance"] > tau for c in candidates[1:])
    unknown = api.recognize(photo(stranger), include_rejected=True).json()["faces"][0]
    assert unknown["identity"] is None and len(unknown["candidates"]) == 1
    assert unknown["distance"] > tau
    # every face of a group photo, each recognised on its own
    several = side_by_side(photo(group[1], 2), photo(stranger, 2), photo(group[3], 2))
    found = api.recognize(several, all_faces=True).json()["faces"]
    found.sort(key=lambda f: f["face"]["box"][0])  # left to right
    assert [slot_of(f["face"]["box"]) for f in found] == [0, 1, 2]
    assert [f["identity"] and f["identity"]["name"] for f in found] == ["p1", None, "p3"]
    # without all_faces: only the largest face
    small_and_large = side_by_side(photo(group[1], 2), photo(group[3], 2), scales=[0.5, 1.0])
    only_largest = api.recognize(small_and_large).json()["faces"]
    assert [f["identity"]["name"] for f in only_largest] == ["p3"]
    assert slot_of(only_largest[0]["face"]["box"]) == 1
    # largest_face means what it means for enroll and verify; true by default here
    explicit = api.recognize(small_and_large, largest_face=True).json()["faces"]
    assert [f["identity"]["name"] for f in explicit] == ["p3"]
    one_only = api.recognize(small_and_large, largest_face=False)
    assert one_only.status_code == 422 and one_only.json()["error"] == "multiple_faces"
    single = api.recognize(photo(group[1], 2), largest_face=False).json()["faces"]
    assert [f["identity"]["name"] for f in single] == ["p1"]


def test_recognize_groups_faces_of_one_person(api: Api) -> None:
    a, b = people(2)
    ident = api.enroll(photo(a), "a").json()["identity"]["id"]
    for image in (photo(a, 2), photo(a)):  # three faces of a, one of them twice
        assert api.add_face(ident, image).status_code == 201
    api.enroll(photo(b), "b")
    assert len(api.gallery) == 4
    r = api.recognize(photo(a, 2), top_k=2, include_rejected=True).json()
    assert [c["identity"]["name"] for c in r["faces"][0]["candidates"]] == ["a", "b"]


def test_recognize_empty_gallery(api: Api) -> None:
    face = api.recognize(photo(people(1)[0])).json()["faces"][0]
    assert face == {**face, "candidates": [], "identity": None, "distance": None}
    assert face["face"]["box"] is not None


def test_threshold_and_top_k_out_of_range(api: Api) -> None:
    image = photo(people(1)[0])
    for path, files in [
        ("/v1/recognize", _files(image)),
        ("/v1/compare", {"image_a": upload(image), "image_b": upload(image)}),
    ]:
        for bad in ("-0.1", "4.5", "nan", "inf", "abc"):
            r = api.post(path, files=files, data={"threshold": bad})
            assert r.status_code == 422 and r.json()["error"] == "validation_error", (path, bad)
    for bad in ("0", "51", "x"):
        r = api.recognize(image, top_k=bad)
        assert r.status_code == 422 and r.json()["error"] == "validation_error", bad


def test_model_mismatch(api: Api) -> None:
    (a,) = people(1)
    ident = api.enroll(photo(a), "old").json()["identity"]["id"]

    async def relabel() -> None:
        async with api.app.state.sessions() as session, session.begin():
            await session.execute(update(Face).values(model_name="other-net"))

    api.run(relabel)
    r = api.verify(photo(a, 2), identity_id=ident)
    assert r.status_code == 409 and r.json()["error"] == "model_mismatch"
    r = api.recognize(photo(a, 2))
    assert r.status_code == 409 and r.json()["error"] == "model_mismatch"


def _or_none(value: float) -> float | None:
    return None if math.isnan(value) else value


def test_detect_and_models(api: Api, pipeline: FacePipeline) -> None:
    a, b = people(2)
    strip = side_by_side(photo(a), None, photo(b), scales=[0.6, 1.0, 1.0])
    faces = api.post("/v1/detect", "verify", files=_files(strip)).json()["faces"]
    assert [slot_of(f["box"]) for f in faces] == [2, 0]  # largest first, none in the gap
    widths = [f["box"][2] - f["box"][0] for f in faces]
    assert widths[0] > widths[1] and widths[0] < TILE
    assert all(len(f["landmarks"]) == 5 and f["detection_score"] > 0.9 for f in faces)
    assert all(f["score"] == f["detection_score"] for f in faces)  # deprecated, until 0.3
    assert api.post("/v1/detect", files=_files(no_face())).json() == {"faces": []}
    api.enroll(photo(a), "x")
    m = api.get("/v1/models").json()["active"]
    backbone = pipeline.backbone
    cal = from_built_in(backbone.calibration, 1)  # 1:N re-derived for the one face enrolled
    assert (m["name"], m["version"]) == pipeline.model  # backbone version + settings digest
    assert m["embedding_size"] == backbone.embedding_size
    assert m["verify"]["default"] == cal.tau_verify
    assert m["verify"]["far"] == _or_none(cal.far_verify)
    assert m["identify"]["default"] == cal.tau_identify
    assert m["identify"]["fpir"] == _or_none(cal.fpir_identify)
    assert m["calibration_source"] == cal.source
    assert m["threshold_range"] == [0.0, 4.0] and m["gallery_faces"] == 1


def _distance(pipeline: FacePipeline, a: bytes, b: bytes) -> float:
    """Squared distance of two photos' largest faces, computed outside the service."""
    (x,), (y,) = pipeline.analyze(a, faces="largest"), pipeline.analyze(b, faces="largest")
    return float(((x.embedding.astype(float) - y.embedding.astype(float)) ** 2).sum())


def test_recognize_margin_is_to_the_nearest_other_person(
    make_api: MakeApi, pipeline: FacePipeline
) -> None:
    """On the distance scale (the built-in cohort would score these 12 faces: its own
    margin is checked in test_cohort.py)."""
    api = make_api(identify_score="distance")
    a, b, c, stranger = people(4)
    ident = api.enroll(photo(a), "a").json()["identity"]["id"]
    for n in (2, 1, 2, 1, 2, 1, 2, 1, 2):  # ten faces of a: more than the first search sees
        assert api.add_face(ident, photo(a, n)).status_code == 201
    api.enroll(photo(b), "b")
    api.enroll(photo(c), "c")
    probe = photo(a, 2)
    face = api.recognize(probe, "verify").json()["faces"][0]  # top_k 1
    assert face["identity"]["name"] == "a" and len(face["candidates"]) == 1
    best = min(_distance(pipeline, probe, photo(a, n)) for n in (1, 2))
    runner_up = min(_distance(pipeline, probe, photo(p)) for p in (b, c))
    assert face["distance"] == pytest.approx(best, abs=1e-4)
    assert face["margin"] == pytest.approx(runner_up - best, abs=1e-4)
    # the built-in L2 calibration carries a gallery model: 1 - FPIR(distance, 12 faces)
    model = GalleryModel.from_dict(pipeline.backbone.calibration.gallery_model or {})
    assert face["confidence"] == pytest.approx(model.stranger_rarity(best, 12), abs=1e-4)
    # top_k does not change the margin; the runner-up listed is the other person
    wide = api.recognize(probe, top_k=2, include_rejected=True).json()["faces"][0]
    first, second = (x["identity"]["name"] for x in wide["candidates"])
    assert first == "a" and second in ("b", "c")
    assert wide["candidates"][1]["distance"] - wide["distance"] == pytest.approx(face["margin"])
    # an unknown face: margin only where its distance is shown (include_rejected)
    unknown = api.recognize(photo(stranger), "verify").json()["faces"][0]
    assert unknown["identity"] is None and unknown["margin"] is None
    shown = api.recognize(photo(stranger), include_rejected=True, top_k=3).json()["faces"][0]
    distances = [x["distance"] for x in shown["candidates"]]
    assert shown["margin"] == pytest.approx(distances[1] - distances[0])


def test_recognize_margin_null_with_one_person(api: Api) -> None:
    (a,) = people(1)
    ident = api.enroll(photo(a), "a").json()["identity"]["id"]
    api.add_face(ident, photo(a, 2))
    face = api.recognize(photo(a, 2), top_k=3, include_rejected=True).json()["faces"][0]
    assert face["identity"]["name"] == "a" and len(face["candidates"]) == 1
    assert face["distance"] is not None and face["margin"] is None
