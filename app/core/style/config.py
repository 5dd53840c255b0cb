"""What the style-transfer code reads of the settings, and nothing else: made from
`Settings` here, in one place; field names are the settings' own (FACESVC_<NAME>)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app.core.config import Settings, settings_subset


@dataclass(frozen=True)
class StyleConfig:
    # a job's limits and defaults (`app.core.style.options.plan`)
    stylize_default_steps: int
    stylize_max_steps: int
    stylize_default_side: int
    stylize_max_side: int
    stylize_gram_normalisation: Literal["nhwc", "gatys", "ng"]
    # the networks' weights (`app.core.style.networks`)
    cache_dir: Path
    stylize_torchvision_vgg19: Path | None
    # where results are kept (`app.core.style.results`)
    stylize_storage: Literal["disk", "database"]
    stylize_results_dir: Path

    @classmethod
    def of(cls, source: Settings | StyleConfig) -> StyleConfig:
        return source if isinstance(source, StyleConfig) else settings_subset(cls, source)
