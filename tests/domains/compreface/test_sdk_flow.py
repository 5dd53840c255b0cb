"""The Must-show of issue 13: CompreFace's official Python SDK (compreface-sdk 0.6.0),
unchanged, against a running facesvc, and the same flow in plain HTTP calls written
from CompreFace's REST API description. Real photos, the real model, SQLite and
PostgreSQL (one server per module and database: conftest.py)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.domains.compreface.conftest import Live
from tests.support.factories import no_face, people, photo, photo_path, side_by_side, upload

# compreface-sdk is installed by `scripts/install.sh --dev` (--no-deps: see pyproject.toml)


def _subjects_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    (face,) = result["result"]
    subjects: list[dict[str, Any]] = face["subjects"]
    return subjects


def test_the_sdk_flow(live: Live) -> None:
    from compreface import CompreFace

    person, stranger = people(2)
    client = CompreFace(live.host, live.port)
    recognition = client.init_face_recognition(live.keys["recognition"])
    subjects = recognition.get_subjects()
    faces = recognition.get_face_collection()

    # add subject, add example
    assert subjects.add(person) == {"subject": person}
    assert person in subjects.list()["subjects"]
    added = faces.add(image_path=str(photo_path(person, 1)), subject=person)
    assert added["subject"] == person
    image_id = added["image_id"]
    assert uuid.UUID(image_id)
    listed = faces.list()
    assert {"image_id": image_id, "subject": person} in listed["faces"]
    assert listed["total_elements"] >= 1

    # recognize the enrolled person (another photo) and a stranger
    known = recognition.recognize(
        image_path=str(photo_path(person, 2)),
        options={"prediction_count": 1, "face_plugins": "landmarks", "status": True},
    )
    (best,) = _subjects_of(known)
    assert best["subject"] == person and 0.5 < best["similarity"] <= 1.0
    face = known["result"][0]
    assert face["box"]["probability"] > 0.5
    assert len(face["landmarks"]) == 5
    assert "total" in face["execution_time"] and "calculator" in known["plugins_versions"]
    unknown = recognition.recognize(image_path=str(photo_path(stranger, 1)))
    # a recognition key reads the gallery: CompreFace's answer, the nearest subject,
    # with a similarity under the 0.5 that our threshold puts the cut at
    assert all(s["similarity"] < 0.5 for s in _subjects_of(unknown))
    verify_only = client.init_face_recognition(live.keys["verify"])
    assert _subjects_of(verify_only.recognize(image_path=str(photo_path(stranger, 1)))) == []
    assert (
        _subjects_of(verify_only.recognize(image_path=str(photo_path(person, 2))))[0]["subject"]
        == person
    )

    # verify: against the saved example, and two images with the verification service
    same = faces.verify(image_path=str(photo_path(person, 2)), image_id=image_id)
    assert same["result"][0]["similarity"] > 0.5
    other = faces.verify(image_path=str(photo_path(stranger, 1)), image_id=image_id)
    assert other["result"][0]["similarity"] < 0.5
    verification = client.init_face_verification(live.keys["verify"])
    pair = verification.verify(str(photo_path(person, 1)), str(photo_path(person, 2)))
    (item,) = pair["result"]
    assert item["face_matches"][0]["similarity"] > 0.5 and "box" in item["source_image_face"]
    apart = verification.verify(str(photo_path(person, 1)), str(photo_path(stranger, 1)))
    assert apart["result"][0]["face_matches"][0]["similarity"] < 0.5

    # detection
    detection = client.init_face_detection(live.keys["verify"])
    found = detection.detect(str(photo_path(person, 1)), options={"face_plugins": "landmarks"})
    assert len(found["result"]) == 1 and len(found["result"][0]["landmarks"]) == 5

    # rename, delete an example, delete the subject: gone from every answer
    renamed = f"{person} (renamed)"
    assert subjects.update(person, renamed) == {"updated": True}
    second = faces.add(image_path=str(photo_path(person, 2)), subject=renamed)
    assert faces.delete(second["image_id"]) == {"image_id": second["image_id"], "subject": renamed}
    assert faces.delete_all(renamed) == {"deleted": 1}
    assert subjects.delete(renamed) == {"subject": renamed}
    assert renamed not in subjects.list()["subjects"]
    assert all(f["subject"] != renamed for f in faces.list()["faces"])
    after = recognition.recognize(image_path=str(photo_path(person, 2)))
    assert all(s["subject"] != renamed for s in _subjects_of(after))


def test_the_http_flow(live: Live) -> None:
    """The same, as plain HTTP calls from CompreFace's REST API description."""
    a, b, stranger = people(5)[2:5]
    h = live.headers()
    with httpx.Client(base_url=live.url, headers=h, timeout=60) as http:
        r = http.post("/api/v1/recognition/subjects", json={"subject": a})
        assert (r.status_code, r.json()) == (201, {"subject": a})
        # an example for a new subject creates it (CompreFace's rule)
        ids = {}
        for who in (a, b):
            r = http.post(
                "/api/v1/recognition/faces",
                params={"subject": who, "det_prob_threshold": "0.5"},
                files={"file": upload(photo(who))},
            )
            assert r.status_code == 201, r.text
            assert r.json()["subject"] == who
            ids[who] = r.json()["image_id"]
        r = http.get("/api/v1/recognition/subjects/")
        assert r.status_code == 200 and {a, b} <= set(r.json()["subjects"])

        # paging: one example a page, in insertion order
        pages = [
            http.get("/api/v1/recognition/faces", params={"page": p, "size": 1}).json()
            for p in range(2)
        ]
        assert [p["page_number"] for p in pages] == [0, 1]
        assert all(p["page_size"] == 1 and len(p["faces"]) == 1 for p in pages)
        assert pages[0]["total_pages"] == pages[0]["total_elements"] >= 2
        by_subject = http.get("/api/v1/recognition/faces", params={"subject": b}).json()
        assert by_subject["faces"] == [{"image_id": ids[b], "subject": b}]

        # recognize a group: both people, largest first, limit and prediction_count
        group = side_by_side(photo(a, 2), photo(b, 2), photo(stranger), scales=[1.0, 0.8, 0.9])
        r = http.post(
            "/api/v1/recognition/recognize",
            params={"prediction_count": 2, "face_plugins": "age,gender,landmarks"},
            files={"file": upload(group)},
        )
        assert r.status_code == 200, r.text
        result = r.json()["result"]
        assert len(result) == 3
        widths = [f["box"]["x_max"] - f["box"]["x_min"] for f in result]
        assert widths == sorted(widths, reverse=True)
        assert "age" not in result[0] and "gender" not in result[0]  # plugins we lack
        assert "plugins_versions" not in r.json()  # status not asked for
        tops = [f["subjects"][0] for f in result]  # a (largest), the stranger, b
        assert tops[0]["subject"] == a and tops[0]["similarity"] > 0.5
        assert tops[1]["similarity"] < 0.5
        assert tops[2]["subject"] == b and tops[2]["similarity"] > 0.5
        assert all(len(f["subjects"]) == 2 for f in result)
        assert all(f["subjects"][0]["similarity"] >= f["subjects"][1]["similarity"] for f in result)
        r = http.post(
            "/api/v1/recognition/recognize", params={"limit": 1}, files={"file": upload(group)}
        )
        assert [f["subjects"][0]["subject"] for f in r.json()["result"]] == [a]

        # base64 (CompreFace's JSON form)
        import base64

        encoded = base64.b64encode(photo(b, 2)).decode()
        r = http.post("/api/v1/recognition/recognize", json={"file": encoded})
        assert r.json()["result"][0]["subjects"][0]["subject"] == b

        # verify against an example, and two images
        r = http.post(
            f"/api/v1/recognition/faces/{ids[a]}/verify", files={"file": upload(photo(a, 2))}
        )
        assert r.status_code == 200 and r.json()["result"][0]["similarity"] > 0.5
        r = http.post(
            "/api/v1/verification/verify",
            headers=live.headers("verify"),
            files={"source_image": upload(photo(a)), "target_image": upload(photo(b))},
        )
        assert r.status_code == 200 and r.json()["result"][0]["face_matches"][0]["similarity"] < 0.5

        # detection, with limit
        r = http.post(
            "/api/v1/detection/detect",
            headers=live.headers("verify"),
            params={"limit": 2, "status": "true"},
            files={"file": upload(group)},
        )
        assert r.status_code == 200 and len(r.json()["result"]) == 2
        assert "detector" in r.json()["plugins_versions"]

        # rename onto an existing subject merges (CompreFace's rule)
        r = http.put(f"/api/v1/recognition/subjects/{b}", json={"subject": a})
        assert (r.status_code, r.json()) == (200, {"updated": True})
        merged = http.get("/api/v1/recognition/faces", params={"subject": a}).json()
        assert {f["image_id"] for f in merged["faces"]} == {ids[a], ids[b]}
        assert b not in http.get("/api/v1/recognition/subjects").json()["subjects"]

        # verify compares with that one example, not the subject's nearest: b's photo is
        # now an example of subject a, yet b is not a's first example
        for example, expect_match in ((ids[a], False), (ids[b], True)):
            r = http.post(
                f"/api/v1/recognition/faces/{example}/verify", files={"file": upload(photo(b, 2))}
            )
            assert (r.json()["result"][0]["similarity"] > 0.5) is expect_match, r.text

        # delete several by id (unknown ones passed over), then the subject
        unknown = str(uuid.UUID(int=2**40))
        r = http.post("/api/v1/recognition/faces/delete", json=[ids[b], unknown])
        assert r.status_code == 200 and r.json() == [{"image_id": ids[b], "subject": a}]
        r = http.delete(f"/api/v1/recognition/faces/{ids[b]}")
        assert r.status_code == 404 and r.json()["code"] == 11
        r = http.delete(f"/api/v1/recognition/subjects/{a}")
        assert (r.status_code, r.json()) == (200, {"subject": a})
        r = http.post("/api/v1/recognition/recognize", files={"file": upload(photo(a, 2))})
        assert all(s["subject"] != a for s in r.json()["result"][0]["subjects"])

        # delete all: subjects and then an empty gallery
        r = http.post("/api/v1/recognition/subjects", json={"subject": "left"})
        assert r.status_code == 201
        r = http.delete("/api/v1/recognition/subjects")
        assert r.status_code == 200 and r.json()["deleted"] >= 1
        assert http.get("/api/v1/recognition/subjects").json() == {"subjects": []}
        assert http.get("/api/v1/recognition/faces").json()["total_elements"] == 0
        assert len(live.app.state.gallery) == 0  # gone from the search index too
        r = http.post("/api/v1/recognition/recognize", files={"file": upload(no_face())})
        assert (r.status_code, r.json()["code"]) == (400, 28)
