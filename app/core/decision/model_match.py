"""Embeddings of different models are not comparable: a distance between them means
nothing. These checks refuse such a comparison instead of answering it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, FacesvcError, ModelMismatch
from app.core.store.repos import faces as repo
from app.core.store.rows.identities import Face, Identity

Model = tuple[str, str]  # (name, version)


def faces_of_model(identity: Identity, model: Model) -> list[Face]:
    """The identity's faces that `model` embedded: the only ones a probe may meet."""
    return [f for f in identity.faces if (f.model_name, f.model_version) == model]


def not_comparable(identity: Identity, model: Model) -> FacesvcError:
    """Why an identity without faces of `model` cannot be verified against."""
    if identity.faces:
        other = identity.faces[0]
        return ModelMismatch(
            f"identity {identity.id} was enrolled with {other.model_name} "
            f"{other.model_version}; the active model is {model[0]} {model[1]}: re-enroll"
        )
    return Conflict(f"identity {identity.id} has no enrolled faces")


async def check_gallery(session: AsyncSession, model: Model) -> None:
    """1:N searches the whole gallery, so one face of another model refuses it."""
    if await repo.other_model_faces_exist(session, model):
        raise ModelMismatch(
            "the gallery holds faces embedded with another model than the active "
            f"{model[0]} {model[1]}; it cannot be searched with it until `facesvc reembed` "
            "re-embeds them (GET /v1/models lists them and what to do)"
        )
