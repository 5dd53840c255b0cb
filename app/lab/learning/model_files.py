"""Writing the learned-model files that the core loads (app/core/model/checkpoint.py
reads them; app/core/model/backbones/projected.py and app/core/model/verifier.py turn them
into models). Only the lab writes them: the service never trains, it loads the file an
operator points it to."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from app.core.model.backbones.base import Calibration
from app.core.model.backbones.projected import HEAD_PREFIX
from app.core.model.backbones.projected import KIND as HEAD_KIND
from app.core.model.checkpoint import FORMAT
from app.core.model.digest import file_sha256
from app.core.model.verifier import KIND as VERIFIER_KIND
from app.core.model.verifier import PairClassifier


def save_checkpoint(
    path: Path, kind: str, header: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> str:
    """Write atomically; returns the file's version (SHA-256 prefix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"kind": kind, "format": str(FORMAT), "header": json.dumps(header, sort_keys=True)}
    contiguous = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        save_file(contiguous, temp_name, metadata=metadata)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    return file_sha256(path)[:12]


def calibration_header(calibration: Calibration) -> dict[str, Any]:
    """The header's `calibration` entry (read back by head.calibration_of)."""
    return asdict(calibration)


def save_head(
    path: Path,
    head: torch.nn.Module,
    header: dict[str, Any],
    backbone_tensors: dict[str, torch.Tensor],
) -> str:
    """A projection-head file: the head's parameters under `head.`, plus any retrained
    backbone parameters (already named `backbone.…`); returns its version."""
    tensors = {HEAD_PREFIX + k: v for k, v in head.state_dict().items()} | backbone_tensors
    return save_checkpoint(path, HEAD_KIND, header, tensors)


def save_verifier(path: Path, model: PairClassifier, header: dict[str, Any]) -> str:
    header = {**header, "dim": model.dim, "hidden": model.hidden}
    return save_checkpoint(path, VERIFIER_KIND, header, dict(model.state_dict()))
