"""Accuracy evaluation over labelled face sets, as defined by the shared PROTOCOL.md.

Pure numpy: the caller supplies embeddings (see `cache.embed_face_set`).
"""

from app.lab.evaluation.cache import MISSING, EmbeddingCache, embed_face_set
from app.lab.evaluation.dataset import FaceSet, Fold, load_face_set, read_lfw_pairs
from app.lab.evaluation.protocol import evaluate

__all__ = [
    "MISSING",
    "EmbeddingCache",
    "FaceSet",
    "Fold",
    "embed_face_set",
    "evaluate",
    "load_face_set",
    "read_lfw_pairs",
]
