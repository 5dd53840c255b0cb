"""`facesvc export` / `facesvc import`: a gallery as JSON lines, versioned.

The first line is the header (`format`, `version`, the models of the faces in it), then
per collection its line, its identities and its faces, and last an `end` line with the
counts, so that a truncated file is refused. Embeddings and crops are the stored bytes
in base64 (the embedding's byte format is `app.core.store.codec`), so a round trip is
bit-for-bit; ids and times are kept, so identities keep their ids and recognize answers
as before. An import is one transaction: all of it, or nothing.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, ModelMismatch, ValidationFailed
from app.core.store.repos import backup as repo
from app.core.store.rows.collections import Collection
from app.core.store.rows.identities import Face, Identity

FORMAT = "facesvc-export"
VERSION = 1
ActiveModel = Callable[[], tuple[str, str]]  # (name, version) of the model in use


@dataclass
class Counts:
    collections: int = 0
    identities: int = 0
    faces: int = 0
    models: Counter[tuple[str, str]] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, int]:
        return {"collections": self.collections, "identities": self.identities, "faces": self.faces}


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _bytes(value: str | None) -> bytes | None:
    return None if value is None else base64.b64decode(value, validate=True)


def _time(value: datetime) -> str:
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).isoformat()


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def export(
    session: AsyncSession, write: Callable[[str], object], names: Sequence[str] | None
) -> Counts:
    """Write the collections `names` (None: all) as lines through `write`. The header's
    model list is only known at the end, so the rows go through twice: counted first."""
    chosen = await repo.collections(session, names)
    missing = set(names or ()) - {c.name for c in chosen}
    if missing:
        raise ValidationFailed(f"no collection named {', '.join(map(repr, sorted(missing)))}")
    models: Counter[tuple[str, str]] = Counter()
    for collection in chosen:
        async for face in repo.faces(session, collection.id):
            models[(face.model_name, face.model_version)] += 1
    header = {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": _time(datetime.now(UTC)),
        "models": [{"name": n, "version": v, "faces": c} for (n, v), c in sorted(models.items())],
    }
    write(json.dumps(header) + "\n")
    counts = Counts()
    for collection in chosen:
        write(json.dumps(_collection_line(collection)) + "\n")
        counts.collections += 1
        async for identity in repo.identities(session, collection.id):
            write(json.dumps(_identity_line(identity, collection.name)) + "\n")
            counts.identities += 1
        async for face in repo.faces(session, collection.id):
            write(json.dumps(_face_line(face)) + "\n")
            counts.faces += 1
    write(json.dumps({"type": "end", **counts.as_dict()}) + "\n")
    counts.models = models
    return counts


def _collection_line(row: Collection) -> dict[str, Any]:
    return {
        "type": "collection",
        "name": row.name,
        "description": row.description,
        "metadata": row.meta,
        "created_at": _time(row.created_at),
    }


def _identity_line(row: Identity, collection: str) -> dict[str, Any]:
    return {
        "type": "identity",
        "id": str(row.id),
        "collection": collection,
        "name": row.name,
        "external_id": row.external_id,
        "metadata": row.meta,
        "created_at": _time(row.created_at),
        "updated_at": _time(row.updated_at),
    }


def _face_line(row: Face) -> dict[str, Any]:
    return {
        "type": "face",
        "id": row.id,
        "identity_id": str(row.identity_id),
        "model_name": row.model_name,
        "model_version": row.model_version,
        "dim": row.dim,
        "embedding": _b64(row.embedding),
        "box": row.box,
        "detection_score": row.detection_score,
        "thumbnail": _b64(row.thumbnail),
        "created_at": _time(row.created_at),
    }


class _Importer:
    def __init__(
        self, session: AsyncSession, active_model: ActiveModel | None, known: dict[str, int]
    ) -> None:
        self.session = session
        self.active_model = active_model  # None: faces of any model are taken
        self.model: tuple[str, str] | None = None  # asked for at the first face
        self.collection_ids = known  # name -> id in the target database
        self.pending: list[Collection | Identity | Face] = []
        self.counts = Counts()

    async def line(self, number: int, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "collection":
            await self._collection(data)
        elif kind == "identity":
            self.pending.append(self._identity(data))
            self.counts.identities += 1
        elif kind == "face":
            self.pending.append(self._face(number, data))
            self.counts.faces += 1
        else:
            raise ValidationFailed(f"line {number}: unknown line type {kind!r}")
        if len(self.pending) >= repo.CHUNK:
            await self.flush()

    async def flush(self) -> None:
        if self.pending:
            await repo.insert(self.session, self.pending)
            self.pending = []

    async def _collection(self, data: dict[str, Any]) -> None:
        self.counts.collections += 1
        if data["name"] in self.collection_ids:  # merged into the existing one
            return
        await self.flush()
        row = Collection(
            name=data["name"],
            description=data["description"],
            meta=data["metadata"],
            created_at=_when(data["created_at"]),
        )
        await repo.insert(self.session, [row])
        self.collection_ids[data["name"]] = row.id

    def _identity(self, data: dict[str, Any]) -> Identity:
        if data["collection"] not in self.collection_ids:
            raise ValidationFailed(f"identity {data['id']}: its collection line is missing")
        return Identity(
            id=uuid.UUID(data["id"]),
            collection_id=self.collection_ids[data["collection"]],
            name=data["name"],
            external_id=data["external_id"],
            meta=data["metadata"],
            created_at=_when(data["created_at"]),
            updated_at=_when(data["updated_at"]),
        )

    def _face(self, number: int, data: dict[str, Any]) -> Face:
        model = (data["model_name"], data["model_version"])
        if self.active_model is not None:
            self.model = self.model or self.active_model()
            if model != self.model:
                raise ModelMismatch(
                    f"line {number}: a face of {model[0]} {model[1]}; the active model is "
                    f"{self.model[0]} {self.model[1]} (--any-model imports it, and "
                    "`facesvc reembed` re-embeds it from its crop)"
                )
        embedding = _bytes(data["embedding"])
        assert embedding is not None
        if len(embedding) != 4 * data["dim"]:
            raise ValidationFailed(f"line {number}: the embedding is not {data['dim']} floats")
        self.counts.models[model] += 1
        return Face(
            id=data["id"],
            identity_id=uuid.UUID(data["identity_id"]),
            model_name=model[0],
            model_version=model[1],
            dim=data["dim"],
            embedding=embedding,
            box=data["box"],
            detection_score=data["detection_score"],
            thumbnail=_bytes(data["thumbnail"]),
            created_at=_when(data["created_at"]),
        )


async def import_(
    session: AsyncSession, lines: Iterable[str], active_model: ActiveModel | None
) -> Counts:
    """Insert an export's rows (in the caller's transaction). Collections that exist by
    name are merged into; an identity or face id already present is a 409 `conflict`.
    `active_model` (called at the first face: loading the model takes seconds): faces
    of another model are refused (None: taken as they are)."""
    numbered = enumerate(lines, start=1)
    header = _parse(*next(numbered, (1, "")))
    if header.get("format") != FORMAT:
        raise ValidationFailed("line 1: not a facesvc export (no facesvc-export header)")
    if header.get("version") != VERSION:
        raise ValidationFailed(
            f"line 1: export format version {header.get('version')!r}; this facesvc reads "
            f"version {VERSION}"
        )
    importer = _Importer(session, active_model, await repo.collection_ids(session))
    try:
        end = await _rows(importer, numbered)
        await importer.flush()
    except IntegrityError as exc:
        raise Conflict(
            "an identity, face or external_id of the export is already in this database "
            "(an import adds; it does not overwrite)"
        ) from exc
    counts = importer.counts
    if {k: end.get(k) for k in counts.as_dict()} != counts.as_dict():
        raise ValidationFailed(f"the end line counts {end}, the file holds {counts.as_dict()}")
    await repo.move_sequences(session)
    return counts


async def _rows(importer: _Importer, numbered: Iterable[tuple[int, str]]) -> dict[str, Any]:
    """Every line up to the end line, which is returned."""
    end: dict[str, Any] | None = None
    for number, text in numbered:
        if end is not None:
            raise ValidationFailed(f"line {number}: lines after the end line")
        data = _parse(number, text)
        if data.get("type") == "end":
            end = data
            continue
        try:
            await importer.line(number, data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationFailed(f"line {number}: malformed {data.get('type')} ({exc})") from exc
    if end is None:
        raise ValidationFailed("the export has no end line: it was cut short")
    return end


def _parse(number: int, text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationFailed(f"line {number}: not JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise ValidationFailed(f"line {number}: not a JSON object")
    return data
