"""Where inference runs."""

from __future__ import annotations

import torch


def resolve_device(setting: str) -> torch.device:
    """'auto' picks the first CUDA device when there is one, else the CPU."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)
