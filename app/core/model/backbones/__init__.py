"""Embedding backbones by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.core.config import Settings
from app.core.errors import ModelUnavailable
from app.core.model.backbones.base import Backbone, Calibration


def _dlib_resnet(settings: Settings) -> Backbone:
    from app.core.model.backbones.dlib_resnet import load_dlib_resnet

    return load_dlib_resnet(settings)


def _facenet_vggface2(settings: Settings) -> Backbone:
    from app.core.model.backbones.facenet import load_facenet_vggface2

    return load_facenet_vggface2(settings)


def _arcface_onnx(settings: Settings) -> Backbone:
    from app.core.model.backbones.arcface import load_arcface_onnx

    return load_arcface_onnx(settings)


# Imports stay inside the loaders: each backbone pulls in only what it needs.
BACKBONES: dict[str, Callable[[Settings], Backbone]] = {
    "dlib-resnet-v1": _dlib_resnet,
    "facenet-vggface2": _facenet_vggface2,
    "arcface-onnx": _arcface_onnx,
}


def load_backbone(name: str, settings: Settings) -> Backbone:
    try:
        loader = BACKBONES[name]
    except KeyError:
        known = ", ".join(sorted(BACKBONES))
        raise ModelUnavailable(f"unknown model {name!r}; known models: {known}") from None
    if settings.projection_head is not None:  # a trained variant (app/core/model/head.py)
        from app.core.model.head import load_projected_backbone

        return load_projected_backbone(loader(settings), settings.projection_head)
    return loader(settings)


@dataclass(frozen=True)
class BackboneInfo:
    """What GET /v1/models says about a backbone, known without running it."""

    name: str
    licence: str
    embedding_size: int
    calibration: Calibration

    @classmethod
    def of(cls, backbone: Backbone) -> BackboneInfo:
        return cls(backbone.name, backbone.licence, backbone.embedding_size, backbone.calibration)


def configured_backbones(settings: Settings, active: Backbone) -> list[BackboneInfo]:
    """The active backbone, then every other one whose weights are present or configured."""
    from app.core.model.backbones import dlib_resnet, facenet

    infos = [BackboneInfo.of(active)]
    candidates: list[Callable[[], BackboneInfo]] = [
        lambda: BackboneInfo(
            dlib_resnet.MODEL_NAME,
            dlib_resnet.DlibResNetBackbone.licence,
            dlib_resnet.EMBEDDING_SIZE,
            dlib_resnet.CALIBRATION,
        )
    ]
    if settings.facenet_weights is not None and settings.facenet_weights.is_file():
        candidates.append(
            lambda: BackboneInfo(
                facenet.FacenetBackbone.name,
                facenet.FacenetBackbone.licence,
                facenet.FacenetBackbone.embedding_size,
                facenet.UNCALIBRATED,
            )
        )
    if settings.arcface_onnx is not None:
        from app.core.model.backbones.arcface import describe_arcface_onnx

        candidates.append(lambda: BackboneInfo.of(describe_arcface_onnx(settings)))
    for describe in candidates:
        try:
            info = describe()
        except ModelUnavailable:
            continue  # configured but unusable: loading it as the active model says why
        if info.name != active.name:
            infos.append(info)
    return infos
