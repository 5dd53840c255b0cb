"""Who may do what: the scopes an API key grants and the caller they describe.

Storage of keys (hashing, lookup, revocation) is `app.core.store.repos.keys`; the
route table of scopes is in docs/service.md ("Scopes").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.core.errors import Forbidden


class Scope(StrEnum):
    """What a key may do; the route table is in docs/service.md ("Scopes")."""

    admin = "admin"  # everything
    enroll = "enroll"  # enroll, add faces, rename: no deletes (includes read)
    delete = "delete"  # delete identities and faces (includes read)
    read = "read"  # read the gallery: identities, faces, rejected 1:N candidates
    verify = "verify"  # verify, compare, recognize, detect, models, style jobs
    metrics = "metrics"  # /metrics when FACESVC_METRICS=key (a scraper's key)


# Scopes a scope brings with it. enroll brings read: its writes echo the records they
# touch (PATCH with an empty body returns one), so it reads the gallery anyway; so does
# delete (CompreFace's deletes answer with the records removed). Deleting is a scope of
# its own, not part of enroll (issue 17): a door's enrolling tablet cannot empty the
# gallery. Migration 0008 gave `delete` to every key that had `enroll` before.
IMPLIED: dict[str, frozenset[str]] = {
    Scope.admin: frozenset(Scope),
    Scope.enroll: frozenset({Scope.enroll, Scope.read}),
    Scope.delete: frozenset({Scope.delete, Scope.read}),
}


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]
    prefix: str | None = None  # the key's public id; None in open mode
    # the names of the collections the key is bound to; None: every collection
    collections: frozenset[str] | None = None

    def allows(self, scope: Scope) -> bool:
        return any(scope in IMPLIED.get(s, frozenset({s})) for s in self.scopes)

    def may_use(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections

    def check_collection(self, collection: str) -> None:
        """403 for a collection the key is not bound to. Decided from the key alone,
        before any lookup, so the answer is the same whether the collection exists or
        not (no existence oracle); an unbound key gets the 404 of a missing one later."""
        if not self.may_use(collection):
            raise Forbidden(f"this API key is not bound to the collection {collection!r}")

    def check_all_collections(self) -> None:
        """Creating and deleting collections needs a key bound to none in particular."""
        if self.collections is not None:
            raise Forbidden("this API key is bound to collections; it cannot create or delete any")
