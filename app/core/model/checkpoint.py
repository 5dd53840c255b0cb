"""Versioned learned-model files: safetensors tensors plus a JSON header.

A file's version is the first 12 hex digits of its SHA-256, so two different trainings
never share a version and whatever is stored with their outputs (the model version of an
embedding) tells them apart. The header records its `kind` and `format`, and the model
(name, version) whose embeddings the file was trained on, checked when it is loaded.
The service only reads these files; the lab writes them (app/lab/learning/model_files.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from app.core.errors import ModelUnavailable
from app.core.model.digest import file_sha256

FORMAT = 1


@dataclass(frozen=True)
class Checkpoint:
    kind: str  # "projection-head" or "verifier"
    header: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    sha256: str

    @property
    def version(self) -> str:
        return self.sha256[:12]


def load_checkpoint(path: Path, kind: str) -> Checkpoint:
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (OSError, SafetensorError) as error:
        raise ModelUnavailable(f"cannot read {kind} file {path}: {error}") from error
    if metadata.get("kind") != kind or metadata.get("format") != str(FORMAT):
        found = f"{metadata.get('kind')} format {metadata.get('format')}"
        raise ModelUnavailable(f"{path} is not a {kind} file (format {FORMAT}); found {found}")
    header = json.loads(metadata["header"])
    return Checkpoint(kind, header, tensors, file_sha256(path))


def require_model(checkpoint: Checkpoint, path: Path, model: tuple[str, str]) -> None:
    """The file must have been trained on embeddings of exactly `model` (name, version)."""
    trained_on = tuple(checkpoint.header["model"])
    if trained_on != tuple(model):
        raise ModelUnavailable(
            f"{path} was trained on {trained_on[0]} {trained_on[1]} embeddings; "
            f"the active model is {model[0]} {model[1]}"
        )
