"""What a verify or recognize answer records in the decision log (FACESVC_RECORD_DECISIONS):
the result, the identity, the distance and the threshold; no image, no embedding."""

from __future__ import annotations

from app.core.store.repos.audit import Decision
from app.domains.recognition.schemas import RecognizeForm, RecognizeOut, VerifyForm, VerifyOut


def of_verify(form: VerifyForm, out: VerifyOut) -> list[Decision]:
    """The claimed identity by id even when the answer names none (a key without `read`)."""
    identity_id = out.identity.id if out.identity is not None else form.identity_id
    result = "match" if out.match else "no_match"
    return [Decision("verify", result, identity_id, out.distance, out.threshold, form.collection)]


def of_recognize(form: RecognizeForm, out: RecognizeOut) -> list[Decision]:
    """One per face in the answer."""
    return [
        Decision(
            "recognize",
            "known" if face.identity is not None else "unknown",
            face.identity.id if face.identity is not None else None,
            face.distance,
            out.threshold,
            form.collection,
        )
        for face in out.faces
    ]
