"""Is the stylised face still you? The distance between the largest face of the content
image and of the result, with the service's recognizer and its 1:1 threshold."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.core.decision.distance import is_match, squared_distance
from app.core.decision.thresholds import Thresholds
from app.core.errors import FacesvcError, NoFaceFound

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from app.core.model.pipeline import FacePipeline, FaceResult
    from app.core.serving.inference import FaceInference

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IdentityReport:
    distance: float | None  # None: no face in the content, or none left in the result
    verified: bool | None  # None when the content has no face


NO_FACE = IdentityReport(None, None)


def compare(
    original: Sequence[FaceResult], stylised: Sequence[FaceResult], threshold: float
) -> IdentityReport:
    if not original:
        return NO_FACE
    if not stylised:
        return IdentityReport(None, False)  # the face is gone: it would not verify
    distance = squared_distance(original[0].embedding, stylised[0].embedding)
    return IdentityReport(distance, is_match(distance, threshold))


def with_pipeline(pipeline: FacePipeline, content: bytes, result: bytes) -> IdentityReport:
    """For the command line: the pipeline in this process."""

    def faces(data: bytes) -> list[FaceResult]:
        try:
            return pipeline.analyze(data, faces="largest")
        except NoFaceFound:
            return []

    original = faces(content)
    if not original:
        return NO_FACE
    # No database here: the built-in calibration, as `facesvc compare` decides
    return compare(original, faces(result), Thresholds().verify(pipeline.backbone.calibration))


async def verify_threshold(
    sessions: async_sessionmaker[AsyncSession], engine: FaceInference
) -> float:
    """The tau /v1/verify uses by default: the newest stored calibration, else the
    backbone's built-in one."""
    from app.core.decision.calibration import calibration_in_use  # the database's side

    async with sessions() as session:
        calibration = await calibration_in_use(
            session, engine.model, engine.backbone.calibration, 0
        )
    return Thresholds().verify(calibration)


async def with_inference(
    inference: FaceInference,
    sessions: async_sessionmaker[AsyncSession],
    content: bytes,
    result: bytes,
) -> IdentityReport:
    """For the service: two requests to the inference pool, like any verify, and the
    same threshold."""

    async def faces(data: bytes) -> list[FaceResult]:
        try:
            return await inference.analyze(data, faces="largest")
        except NoFaceFound:
            return []

    try:
        original = await faces(content)
        if not original:
            return NO_FACE
        stylised = await faces(result)
    except FacesvcError as error:  # overloaded, timeout: the job itself still succeeded
        log.warning("identity check skipped: %s: %s", error.code, error.detail)
        return NO_FACE
    return compare(original, stylised, await verify_threshold(sessions, inference))
