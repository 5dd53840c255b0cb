"""Embedding backbones by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.core.config import Settings
from app.core.errors import ModelUnavailable
from app.core.model.backbones.base import Backbone, Calibration
from app.core.model.options import BackboneOptions


def _dlib_resnet(options: BackboneOptions) -> Backbone:
    from app.core.model.backbones.dlib_resnet import load_dlib_resnet

    return load_dlib_resnet(options)


def _facenet_vggface2(options: BackboneOptions) -> Backbone:
    from app.core.model.backbones.facenet import load_facenet_vggface2

    return load_facenet_vggface2(options)


def _arcface_onnx(options: BackboneOptions) -> Backbone:
    from app.core.model.backbones.arcface import load_arcface_onnx

    return load_arcface_onnx(options)


# Imports stay inside the loaders: each backbone pulls in only what it needs.
BACKBONES: dict[str, Callable[[BackboneOptions], Backbone]] = {
    "dlib-resnet-v1": _dlib_resnet,
    "facenet-vggface2": _facenet_vggface2,
    "arcface-onnx": _arcface_onnx,
}


def load_backbone(name: str, source: BackboneOptions | Settings) -> Backbone:
    try:
        loader = BACKBONES[name]
    except KeyError:
        known = ", ".join(sorted(BACKBONES))
        raise ModelUnavailable(f"unknown model {name!r}; known models: {known}") from None
    options = BackboneOptions.of(source)
    if (
        options.projection_head is not None
    ):  # a trained variant (app/core/model/backbones/projected.py)
        from app.core.model.backbones.projected import load_projected_backbone

        return load_projected_backbone(loader(options), options.projection_head)
    return loader(options)


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


def configured_backbones(
    source: BackboneOptions | Settings, active: Backbone, *, normalise: bool = True
) -> list[BackboneInfo]:
    """The active backbone, then every other one whose weights are present or configured
    (`normalise`: FACESVC_NORMALISE_EMBEDDINGS, which picks dlib's thresholds)."""
    from app.core.model.backbones import dlib_resnet, facenet

    options = BackboneOptions.of(source)
    infos = [BackboneInfo.of(active)]
    dlib_calibration = dlib_resnet.CALIBRATION_L2 if normalise else dlib_resnet.CALIBRATION
    candidates: list[Callable[[], BackboneInfo]] = [
        lambda: BackboneInfo(
            dlib_resnet.MODEL_NAME,
            dlib_resnet.DlibResNetBackbone.licence,
            dlib_resnet.EMBEDDING_SIZE,
            dlib_calibration,
        )
    ]
    if options.facenet_weights is not None and options.facenet_weights.is_file():
        candidates.append(
            lambda: BackboneInfo(
                facenet.FacenetBackbone.name,
                facenet.FacenetBackbone.licence,
                facenet.FacenetBackbone.embedding_size,
                facenet.UNCALIBRATED,
            )
        )
    if options.arcface_onnx is not None:
        from app.core.model.backbones.arcface import describe_arcface_onnx

        candidates.append(lambda: BackboneInfo.of(describe_arcface_onnx(options)))
    for describe in candidates:
        try:
            info = describe()
        except ModelUnavailable:
            continue  # configured but unusable: loading it as the active model says why
        if info.name != active.name:
            infos.append(info)
    return infos
