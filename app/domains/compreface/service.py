"""The CompreFace adapter: CompreFace's calls answered by our identity and recognition
services. A "subject" is an identity name (`app.domains.identities.by_name`), an
"image_id" the UUID whose integer is our face id, `similarity` our distance through
`app.core.decision.similarity` (0.5 at the tau that decided).

Every gallery call works in the collection its key maps to (`collection_for`), and every
change is audited as the key's (`actor`), as our own API's are.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from math import ceil
from typing import TypeVar

from app.core.access import Principal
from app.core.decision.similarity import similarity
from app.core.errors import NoFaceFound, NotFound
from app.core.store.audit_trail import failures_audited
from app.core.store.repos.audit import Decision
from app.domains.compreface.mapping import (
    ImageNotFound,
    SubjectExists,
    SubjectNotFound,
    face_id_of,
    image_id_of,
)
from app.domains.compreface.schemas import (
    BoxOut,
    DeletedOut,
    FaceOptions,
    FaceOut,
    FacesOut,
    FacesPage,
    ImageOut,
    SubjectOut,
    SubjectSimilarity,
    SubjectsOut,
    UpdatedOut,
    VerificationOut,
    VerificationsOut,
)
from app.domains.identities.by_name import GalleryByName
from app.domains.identities.schemas import AddFaceForm, EnrollForm
from app.domains.identities.service import IdentityService
from app.domains.recognition.schemas import (
    CompareForm,
    DetectedFace,
    DetectForm,
    RecognizeForm,
)
from app.domains.recognition.service import RecognitionService

NO_FACE = "No face is found in the given image"
T = TypeVar("T")
Answer = tuple[T, list[Decision]]  # an answer and what it decided (the decision log)


# ---------------------------------------------------------------- the adapter


class CompreFaceService:
    """Built in the lifespan on the app's identity and recognition services."""

    def __init__(
        self,
        identities: IdentityService,
        by_name: GalleryByName,
        recognition: RecognitionService,
        versions: dict[str, str],
    ) -> None:
        self._identities = identities
        self._by_name = by_name
        self._recognition = recognition
        self._versions = versions  # plugins_versions: detector and calculator (backbone)
        self.max_image_bytes = recognition.max_image_bytes

    # ------------------------------------------------------------ subjects

    async def add_subject(self, name: str, *, collection: str, actor: Principal) -> SubjectOut:
        async with self._refusals_audited(actor, "identity.create", {}):
            created = await self._by_name.create(name, collection=collection, actor=actor)
            if created is None:
                raise SubjectExists(f"Subject {name!r} already exists")
        return SubjectOut(subject=created.name)

    async def rename_subject(
        self, name: str, new_name: str, *, collection: str, actor: Principal
    ) -> UpdatedOut:
        async with self._refusals_audited(actor, "identity.update", {}):
            if not await self._by_name.rename(name, new_name, collection=collection, actor=actor):
                raise SubjectNotFound(f"Subject {name!r} not found")
        return UpdatedOut(updated=True)

    async def delete_subject(self, name: str, *, collection: str, actor: Principal) -> SubjectOut:
        async with self._refusals_audited(actor, "identity.delete", {}):
            if not await self._by_name.delete_named(name, collection=collection, actor=actor):
                raise SubjectNotFound(f"Subject {name!r} not found")
        return SubjectOut(subject=name)

    async def delete_all_subjects(self, *, collection: str, actor: Principal) -> DeletedOut:
        deleted = await self._by_name.delete_all(collection=collection, actor=actor)
        return DeletedOut(deleted=deleted)

    async def list_subjects(self, *, collection: str) -> SubjectsOut:
        return SubjectsOut(subjects=await self._by_name.names(collection=collection))

    # ------------------------------------------------------------ faces (examples)

    async def add_example(
        self,
        image: bytes,
        subject: str,
        det_prob_threshold: float | None,
        *,
        collection: str,
        actor: Principal,
    ) -> ImageOut:
        if det_prob_threshold is not None:  # asked for: one detection pass more
            found = await self._recognition.detect(DetectForm(image=image))
            if not any(face.detection_score >= det_prob_threshold for face in found.faces):
                raise NoFaceFound(NO_FACE)
        existing = await self._by_name.named(subject, collection=collection)
        if existing:
            form = AddFaceForm(image=image, collection=collection)
            out = await self._identities.add_face(existing[0].id, form, actor=actor)
        else:
            enroll = EnrollForm(image=image, name=subject, collection=collection)
            out = await self._identities.enroll(enroll, actor=actor)
        return ImageOut(image_id=image_id_of(out.face.id), subject=out.identity.name)

    async def list_examples(
        self, page: int, size: int, subject: str | None, *, collection: str
    ) -> FacesPage:
        found = await self._by_name.faces(
            name=subject, offset=page * size, limit=size, collection=collection
        )
        return FacesPage(
            faces=[ImageOut(image_id=image_id_of(f.face_id), subject=f.name) for f in found.items],
            page_number=page,
            page_size=size,
            total_pages=ceil(found.total / size),
            total_elements=found.total,
        )

    async def delete_examples_of(
        self, subject: str | None, *, collection: str, actor: Principal
    ) -> DeletedOut:
        deleted = await self._by_name.delete_faces_named(
            subject, collection=collection, actor=actor
        )
        return DeletedOut(deleted=deleted)

    async def delete_example(self, image_id: str, *, collection: str, actor: Principal) -> ImageOut:
        face_id = face_id_of(image_id)  # a malformed id is refused before any change
        async with self._refusals_audited(actor, "face.delete", {}):
            deleted = await self._by_name.delete_faces(
                [face_id], collection=collection, actor=actor
            )
            if not deleted:  # also one of another collection
                raise ImageNotFound(f"Image with id {image_id} not found")
        return ImageOut(image_id=image_id, subject=deleted[0].name)

    async def delete_examples(
        self, image_ids: Sequence[str], *, collection: str, actor: Principal
    ) -> list[ImageOut]:
        """The ones that existed in the collection; unknown ids are passed over."""
        face_ids = []
        for image_id in image_ids:
            try:
                face_ids.append(face_id_of(image_id))
            except ImageNotFound:
                continue
        deleted = await self._by_name.delete_faces(face_ids, collection=collection, actor=actor)
        return [ImageOut(image_id=image_id_of(f.face_id), subject=f.name) for f in deleted]

    def _refusals_audited(
        self, actor: Principal, action: str, target: dict[str, object]
    ) -> AbstractAsyncContextManager[None]:
        """A change this surface refuses (unknown subject, existing name) is in the trail
        with its outcome, as our own API's refusals are."""
        return failures_audited(self._identities.sessions, actor, action, target)

    # ------------------------------------------------------------ recognize, verify, detect

    async def recognize(
        self, image: bytes, options: FaceOptions, *, may_read: bool, collection: str
    ) -> Answer[FacesOut]:
        """Every face, largest first, with its `prediction_count` nearest subjects: all of
        them for a key that may read the gallery (CompreFace's own behaviour: the client
        judges by similarity), else only those within the threshold. With the decision
        of each face answered, for the decision log."""
        form = RecognizeForm(
            image=image,
            top_k=options.prediction_count,
            all_faces=True,
            include_rejected=may_read,
            collection=collection,
        )
        out, elapsed = await _timed(lambda: self._recognition.recognize(form, may_read=may_read))
        found = [(f.face, f) for f in out.faces if f.face is not None]
        faces = []
        decided = []
        for detected, answer in _chosen(found, options):
            known = answer.identity
            decided.append(
                Decision(
                    "recognize",
                    "known" if known is not None else "unknown",
                    known.id if known is not None else None,
                    answer.distance,
                    out.threshold,
                    collection,
                )
            )
            subjects: dict[str, float] = {}
            for candidate in answer.candidates:  # nearest first; a name counts once
                name = candidate.identity.name
                subjects.setdefault(name, _rounded(similarity(candidate.distance, out.threshold)))
            face = self._face(detected, options, elapsed)
            face.subjects = [
                SubjectSimilarity(subject=n, similarity=s) for n, s in subjects.items()
            ]
            faces.append(face)
        return FacesOut(result=faces, plugins_versions=self._plugins(options)), decided

    async def detect(self, image: bytes, options: FaceOptions) -> FacesOut:
        out, elapsed = await _timed(lambda: self._recognition.detect(DetectForm(image=image)))
        chosen = _chosen([(face, face) for face in out.faces], options)
        faces = [self._face(face, options, elapsed) for face, _ in chosen]
        return FacesOut(result=faces, plugins_versions=self._plugins(options))

    async def verify_images(
        self, source: bytes, target: bytes, options: FaceOptions
    ) -> VerificationsOut:
        """The largest face of each image (CompreFace lists every face of the target)."""
        form = CompareForm(image_a=source, image_b=target, largest_face=True)
        out, elapsed = await _timed(lambda: self._recognition.compare(form))
        source_face, target_face = out.faces
        if source_face is None or target_face is None:
            raise NoFaceFound(NO_FACE)
        (match,) = [face for face, _ in _chosen([(target_face, None)], options)]
        matched = self._face(match, options, elapsed)
        matched.similarity = _rounded(similarity(out.distance, out.threshold))
        return VerificationsOut(
            result=[
                VerificationOut(
                    source_image_face=self._face(source_face, options, elapsed),
                    face_matches=[matched],
                    plugins_versions=self._plugins(options),
                )
            ]
        )

    async def verify_example(
        self, image_id: str, image: bytes, options: FaceOptions, *, collection: str
    ) -> Answer[FacesOut]:
        """The probe's largest face against this one example; with its decision."""
        face_id = face_id_of(image_id)
        try:
            out, elapsed = await _timed(
                lambda: self._recognition.verify_face(image, face_id, collection=collection)
            )
        except NotFound as exc:
            raise ImageNotFound(f"Image with id {image_id} not found") from exc
        if out.face is None or out.distance is None:
            raise NoFaceFound(NO_FACE)
        (chosen,) = [face for face, _ in _chosen([(out.face, None)], options)]
        face = self._face(chosen, options, elapsed)
        face.similarity = _rounded(similarity(out.distance, out.threshold))
        identity_id = out.identity.id if out.identity is not None else None
        result = "match" if out.match else "no_match"
        decision = Decision("verify", result, identity_id, out.distance, out.threshold, collection)
        return FacesOut(result=[face], plugins_versions=self._plugins(options)), [decision]

    # ------------------------------------------------------------ shaping

    def _face(self, face: DetectedFace, options: FaceOptions, elapsed_ms: float) -> FaceOut:
        x1, y1, x2, y2 = face.box
        out = FaceOut(
            box=BoxOut(
                probability=_rounded(face.detection_score),
                x_min=round(x1),
                y_min=round(y1),
                x_max=round(x2),
                y_max=round(y2),
            )
        )
        if options.landmarks and face.landmarks is not None:
            out.landmarks = [[round(x), round(y)] for x, y in face.landmarks]
        if options.status:
            # one pipeline call: detector and calculator are not timed apart
            out.execution_time = {"total": round(elapsed_ms, 1)}
        return out

    def _plugins(self, options: FaceOptions) -> dict[str, str] | None:
        return dict(self._versions) if options.status else None


Found = list[tuple[DetectedFace, T]]


def _chosen(faces: Found[T], options: FaceOptions) -> Found[T]:
    """Faces over det_prob_threshold, largest first, at most `limit` (0: all); none left
    is CompreFace's "no face" error."""
    threshold = options.det_prob_threshold
    kept = [pair for pair in faces if threshold is None or pair[0].detection_score >= threshold]
    if not kept:
        raise NoFaceFound(NO_FACE)
    kept.sort(key=lambda pair: -_area(pair[0]))
    return kept[: options.limit] if options.limit > 0 else kept


def _area(face: DetectedFace) -> float:
    x1, y1, x2, y2 = face.box
    return max(0.0, x2 - x1) * max(0.0, y2 - y1)


def _rounded(value: float) -> float:
    return round(float(value), 5)


async def _timed(call: Callable[[], Awaitable[T]]) -> tuple[T, float]:
    start = time.perf_counter()
    result = await call()
    return result, (time.perf_counter() - start) * 1000
