"""`facesvc train-triplet`: train a projection head (or the backbone's last blocks) with
the triplet loss on the training identities of a labelled set, save it as a versioned
file, and measure the protocol's figures before and after on the held-out identities."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch

from app.core.command_line import progress_bar
from app.core.config import Settings
from app.core.errors import FacesvcError
from app.core.model.backbones import load_backbone
from app.core.model.backbones.projected import ProjectionHead, load_projected_backbone
from app.core.model.pipeline import FacePipeline
from app.lab.evaluation.dataset import FaceSet, load_face_set
from app.lab.learning.blocks import TunedNetwork, random_flip
from app.lab.learning.data import (
    EmbeddingMap,
    IdentitySplit,
    cached_embeddings,
    labelled_vectors,
    split_identities,
    subset,
)
from app.lab.learning.held_out import calibrate_on, protocol_summary
from app.lab.learning.model_files import calibration_header, save_head
from app.lab.learning.training import EpochStats, TripletConfig, train_triplet

Target = Literal["head", "blocks"]


@dataclass(frozen=True)
class TripletRun:
    data: Path
    out: Path
    config: TripletConfig
    target: Target = "head"
    blocks: int = 2
    hidden: int = 0
    held_out: float = 0.5
    split_seed: int = 0
    cache_dir: Path | None = None
    progress: bool = True  # bars on stderr (when a terminal) while embedding


def base_pipeline(settings: Settings) -> FacePipeline:
    """The pipeline without any configured head: heads are trained on the base model, as
    the head's file is loaded onto it (un-normalised: the head normalises its output)."""
    plain = {"projection_head": None, "normalise_embeddings": False}
    return FacePipeline.load(settings.model_copy(update=plain))


def run_train_triplet(
    run: TripletRun, settings: Settings, on_epoch: Callable[[EpochStats], None] | None = None
) -> dict[str, Any]:
    pipeline = base_pipeline(settings)
    face_set = load_face_set(run.data)
    split = split_identities(face_set, run.held_out, run.split_seed)
    train_set, test_set = (
        subset(face_set, split.train, "train"),
        subset(face_set, split.held_out, "held-out"),
    )
    base = pipeline.backbone
    embeddings = cached_embeddings(pipeline, face_set, run.cache_dir, run.progress)
    report: dict[str, Any] = {
        "data": face_set.name,
        "split": {"held_out": run.held_out, "seed": run.split_seed, **_split_counts(split)},
        "config": {**asdict(run.config), "target": run.target, "hidden": run.hidden},
        "before": protocol_summary(test_set, embeddings, base.name, base.calibration.tau_identify),
    }
    identity = ProjectionHead(base.embedding_size, 0)
    report["identity_head"] = _head_figures(identity, embeddings, train_set, test_set, "identity")
    head = ProjectionHead(base.embedding_size, run.hidden)
    extra: dict[str, torch.Tensor] = {}  # retrained backbone parameters
    if run.target == "head":
        history = _train_head(head, train_set, embeddings, run.config, on_epoch)
        projected = _project(head.eval(), embeddings)
    else:  # embedded the service's way: the saved file loaded as a model variant
        history, extra, chips = _train_blocks(pipeline, head, face_set, train_set, run, on_epoch)
        head = head.cpu().eval()
        projected = _embed_with_file(pipeline, settings, run, head, extra, chips)
        report["device"] = str(pipeline.backbone.device)
    report["history"] = [asdict(stats) for stats in history]
    source = f"{face_set.name} training identities (split seed {run.split_seed}), PROTOCOL.md 2-3"
    calibration = calibrate_on(train_set, projected, "head", source)
    report["after"] = protocol_summary(test_set, projected, "head", calibration.tau_identify)
    header = {
        "model": [base.name, base.version],
        "dim": base.embedding_size,
        "hidden": run.hidden,
        "calibration": calibration_header(calibration),
        "training": {k: report[k] for k in ("data", "split", "config", "history")},
    }
    report["version"] = save_head(run.out, head, header, extra)
    report["file"] = str(run.out)
    return report


def _split_counts(split: IdentitySplit) -> dict[str, int]:
    return {"train_identities": len(split.train), "held_out_identities": len(split.held_out)}


def _project(head: ProjectionHead, embeddings: EmbeddingMap) -> EmbeddingMap:
    paths = [p for p, e in embeddings.items() if e is not None]
    out: EmbeddingMap = dict.fromkeys(embeddings)
    if paths:
        vectors = head.project(np.stack([embeddings[p] for p in paths]))  # type: ignore[misc]
        out.update(zip(paths, vectors, strict=True))
    return out


def _head_figures(
    head: ProjectionHead, embeddings: EmbeddingMap, train: FaceSet, test: FaceSet, name: str
) -> dict[str, Any]:
    projected = _project(head, embeddings)
    calibration = calibrate_on(train, projected, name, "training identities")
    return protocol_summary(test, projected, name, calibration.tau_identify)


def _train_head(
    head: ProjectionHead,
    train_set: FaceSet,
    embeddings: EmbeddingMap,
    config: TripletConfig,
    on_epoch: Callable[[EpochStats], None] | None,
) -> list[EpochStats]:
    data = labelled_vectors(train_set, embeddings)
    inputs = torch.from_numpy(data.vectors)
    device = torch.device("cpu")  # a 128 -> 128 head: the CPU is fast enough
    return train_triplet(head, inputs, data.labels, config, device=device, on_epoch=on_epoch)


# --- the last blocks of the backbone, on aligned crops --------------------------------

Chips = dict[Path, npt.NDArray[np.uint8] | None]


def aligned_chips(pipeline: FacePipeline, face_set: FaceSet, progress: bool = True) -> Chips:
    """Each image's largest face as the backbone's aligned crop (None: no face)."""
    chips: Chips = {}
    for path in progress_bar(progress, face_set.images, desc="aligning", unit="img"):
        try:
            image = pipeline.decode(path.read_bytes())
            chips[path] = pipeline.locate(image, faces="largest")[0].chip
        except FacesvcError:
            chips[path] = None
    return chips


def _train_blocks(
    pipeline: FacePipeline,
    head: ProjectionHead,
    face_set: FaceSet,
    train_set: FaceSet,
    run: TripletRun,
    on_epoch: Callable[[EpochStats], None] | None,
) -> tuple[list[EpochStats], dict[str, torch.Tensor], Chips]:
    network = getattr(pipeline.backbone, "model", None)
    if network is None:
        raise ValueError(f"{pipeline.backbone.name} cannot retrain its blocks")
    # held-out crops too, for the evaluation
    chips = aligned_chips(pipeline, face_set, run.progress)
    labels, rows = [], []
    for label, files in enumerate(train_set.identities.values()):
        for path in files:
            if (chip := chips[path]) is not None:
                rows.append(chip)
                labels.append(label)
    device = pipeline.backbone.device
    tuned = TunedNetwork(network, head.to(device), run.blocks).to(device)
    inputs = torch.from_numpy(np.stack(rows))
    history = train_triplet(
        tuned,
        inputs,
        np.asarray(labels, dtype=np.int64),
        run.config,
        device=device,
        augment=random_flip,
        on_epoch=on_epoch,
    )
    return history, tuned.trained_backbone_tensors(), chips


def _embed_with_file(
    pipeline: FacePipeline,
    settings: Settings,
    run: TripletRun,
    head: ProjectionHead,
    extra: dict[str, torch.Tensor],
    chips: Chips,
) -> EmbeddingMap:
    """Save a provisional file, load it as the service would, embed every crop with it."""
    provisional = run.out.with_suffix(".partial")
    header = {
        "model": [pipeline.backbone.name, pipeline.backbone.version],
        "dim": head.dim,
        "hidden": head.hidden,
        "calibration": calibration_header(pipeline.backbone.calibration),
    }
    save_head(provisional, head, header, extra)
    try:
        fresh = load_backbone(pipeline.backbone.name, _no_head(settings))
        variant = FacePipeline(
            settings, pipeline.detector, load_projected_backbone(fresh, provisional)
        )
    finally:
        provisional.unlink(missing_ok=True)
    paths = [p for p, c in chips.items() if c is not None]
    out: EmbeddingMap = dict.fromkeys(chips)
    for start in range(0, len(paths), 64):
        part = paths[start : start + 64]
        vectors = variant.embed_chips([chips[p] for p in part])  # type: ignore[misc]
        out.update(zip(part, vectors, strict=True))
    return out


def _no_head(settings: Settings) -> Settings:
    return settings.model_copy(update={"projection_head": None})
