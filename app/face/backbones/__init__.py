"""Embedding backbones by name."""

from __future__ import annotations

from collections.abc import Callable

from app.config import Settings
from app.errors import ModelUnavailable
from app.face.backbones.base import Backbone


def _dlib_resnet(settings: Settings) -> Backbone:
    from app.face.backbones.dlib_resnet import load_dlib_resnet

    return load_dlib_resnet(settings)


def _facenet_vggface2(settings: Settings) -> Backbone:
    from app.face.backbones.facenet import load_facenet_vggface2

    return load_facenet_vggface2(settings)


# Imports stay inside the loaders: each backbone pulls in only what it needs.
BACKBONES: dict[str, Callable[[Settings], Backbone]] = {
    "dlib-resnet-v1": _dlib_resnet,
    "facenet-vggface2": _facenet_vggface2,
}


def load_backbone(name: str, settings: Settings) -> Backbone:
    try:
        loader = BACKBONES[name]
    except KeyError:
        known = ", ".join(sorted(BACKBONES))
        raise ModelUnavailable(f"unknown model {name!r}; known models: {known}") from None
    return loader(settings)
