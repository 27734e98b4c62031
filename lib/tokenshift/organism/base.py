"""The organism's base model: a new Qwen2 SFT-trained to imitate the task's noisy demonstrator, cached. Its key
holds this module's code and what it imports (the tokenizer, the network, SFT), not the RL trainer's."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..core import parallel
from ..core.behaviour import Version
from ..core.cache import ArtifactCache, spec
from . import architecture, sft, storage, tokenizer

if TYPE_CHECKING:
    from .build import OrganismConfig

BEHAVIOUR = Version(1)


def base_model(config: OrganismConfig, cache: ArtifactCache | None = None, show_progress: bool = True) -> Path:
    """The base model's directory: a new Qwen2 of ``config.shape`` SFT-trained on the demonstrator, cached."""
    cache = cache or ArtifactCache()
    entry = spec("base", __name__, {"tokenizer": config.part("tokenizer"), "shape": config.shape,
                                    "sft": config.part("base")},
                 {"runtime": storage.runtime(storage.BASE_THREADS)})

    def make_base(out: Path):
        tok = tokenizer.build_tokenizer(config.part("tokenizer"))
        model = architecture.new_model(tok, config.shape, seed=config.part("base").seed)
        with parallel.threads(storage.BASE_THREADS):
            log = sft.train_sft(model, tok, config.part("base"), show_progress, desc="SFT base")
        storage.store(out, model, tok, log)

    return cache.get_or_build(entry, make_base) / "model"
