"""Where inference runs."""

from __future__ import annotations

import torch


def resolve_device(setting: str) -> torch.device:
    """'auto' picks the first CUDA device when there is one, else the CPU."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def resolve_devices(setting: str) -> list[torch.device]:
    """Every device the service runs a model replica on: 'auto' and 'cuda' mean all
    CUDA devices (the CPU when there is none); 'cuda:N' and 'cpu' that one device."""
    if setting in ("auto", "cuda") and torch.cuda.is_available():
        return [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    if setting == "auto":
        return [torch.device("cpu")]
    return [torch.device(setting)]
