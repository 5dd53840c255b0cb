"""What the style-transfer code reads of the settings, and nothing else: made from
`Settings` here, in one place; field names are the settings' own (FACESVC_<NAME>)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app.core.config import Settings


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
        if isinstance(source, StyleConfig):
            return source
        return cls(
            stylize_default_steps=source.stylize_default_steps,
            stylize_max_steps=source.stylize_max_steps,
            stylize_default_side=source.stylize_default_side,
            stylize_max_side=source.stylize_max_side,
            stylize_gram_normalisation=source.stylize_gram_normalisation,
            cache_dir=source.cache_dir,
            stylize_torchvision_vgg19=source.stylize_torchvision_vgg19,
            stylize_storage=source.stylize_storage,
            stylize_results_dir=source.stylize_results_dir,
        )
