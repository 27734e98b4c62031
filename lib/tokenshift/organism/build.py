"""The model organism: a tiny base model and its RLVR-tuned (and SFT-tuned) descendants, built on CPU.

- base: a Qwen2 model SFT-trained to imitate the task's noisy demonstrator (weak at pass@1, but the
  reliable strategy is in its repertoire);
- simplerl: GRPO with a KL penalty to the base, standing in for SimpleRL-Zoo;
- dapo: the DAPO recipe (no KL, clip-higher, token-mean loss, uniform groups dropped), for DAPO-Qwen;
- sft_control: the base fine-tuned on correct demonstrations only, with as many sequences and optimizer
  steps as one RL run, for the paper's SFT-vs-RL contrast.

Each model is an ordinary ``save_pretrained`` directory kept in the artifact cache, so the analyses load
the organism exactly as they load real checkpoints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..core import seeding
from ..core.behaviour import Version
from ..core.cache import ArtifactCache, model_fingerprint, spec
from ..models.loading import load_model, save
from . import architecture, rl, sft, tokenizer

ORGANISM = Version("organism", 1)  # how the parts are seeded, built and stored
RL_NAMES = ("simplerl", "dapo")
LABELS = {"base": "base (SFT on noisy demos)", "simplerl": "SimpleRL-like (GRPO + KL)",
          "dapo": "DAPO-like (no KL, clip-higher)", "sft_control": "SFT control"}  # how figures name each model
# the organism trains on the CPU in fp32 wherever it runs
RUNTIME = {"device": "cpu", "dtype": "float32"}


@dataclass(frozen=True)
class OrganismConfig:
    seed: int = 0  # every part's seed derives from this one (the parts' own seed fields are overridden)
    max_new_tokens: int = 48  # response length limit for demonstrations, RL rollouts and evaluation alike
    shape: architecture.ModelShape = field(default_factory=architecture.ModelShape)
    base: sft.SFTConfig = field(default_factory=sft.SFTConfig)
    simplerl: rl.RLConfig = rl.SIMPLERL_LIKE
    dapo: rl.RLConfig = rl.DAPO_LIKE
    sft_control: sft.SFTConfig = sft.SFTConfig(
        steps=120, batch_size=256, lr=3e-4, warmup_steps=10, only_correct=True, log_every=10
    )

    @ORGANISM.code
    def part(self, name: str):
        """The named part's config with its derived seed and the shared length limit."""
        config = replace(getattr(self, name), seed=seeding.derive(self.seed, "organism", name))
        length = "max_new_tokens" if name in RL_NAMES else "max_response_tokens"
        return replace(config, **{length: self.max_new_tokens})


@dataclass
class Organism:
    config: OrganismConfig
    base: Path
    rl: dict[str, Path]  # name -> model directory
    sft_control: Path

    @property
    def tuned(self) -> dict[str, Path]:
        """Every model tuned from the base, by name: the RL runs, then the SFT control."""
        return {**self.rl, "sft_control": self.sft_control}

    def checkpoints(self, name: str) -> list[tuple[int, Path]]:
        """(step, model directory) for the RL run's saved checkpoints, step 0 being the base."""
        ckpt_dir = self.rl[name].parent / "checkpoints"
        found = sorted((int(p.name.split("_")[1]), p) for p in ckpt_dir.iterdir())
        return [(0, self.base), *found]

    def log(self, name: str) -> list[dict]:
        """Training log of "base", "sft_control" or an RL run: one dict per logged step."""
        return run_log({"base": self.base, "sft_control": self.sft_control}.get(name) or self.rl[name])


def run_log(model_dir: Path) -> list[dict]:
    """The training log stored beside a model the organism built."""
    return json.loads((Path(model_dir).parent / "log.json").read_text())


@ORGANISM.code
def base_model(config: OrganismConfig, cache: ArtifactCache | None = None, show_progress: bool = True) -> Path:
    """The base model's directory: a new Qwen2 of ``config.shape`` SFT-trained on the demonstrator, cached."""
    cache = cache or ArtifactCache()
    entry = spec("base", (ORGANISM, tokenizer.TOKENIZER, architecture.ARCHITECTURE, sft.SFT),
                 {"shape": config.shape, "sft": config.part("base")}, {"runtime": RUNTIME})

    def make_base(out: Path):
        tok = tokenizer.build_tokenizer()
        model = architecture.new_model(tok, config.shape, seed=config.part("base").seed)
        log = sft.train_sft(model, tok, config.part("base"), show_progress, desc="SFT base")
        _store(out, model, tok, log)

    return cache.get_or_build(entry, make_base) / "model"


@ORGANISM.code
def rl_run(config: OrganismConfig, rl_config: rl.RLConfig, cache: ArtifactCache | None = None,
           show_progress: bool = True, name: str = "run") -> Path:
    """An RL run from the organism's base with ``rl_config`` as given (its own seed included), cached;
    returns the final model's directory (checkpoints and ``log.json`` lie beside it)."""
    cache = cache or ArtifactCache()
    base = base_model(config, cache, show_progress)
    entry = spec("rl", (ORGANISM, rl.RL), rl_config, {"base": model_fingerprint(base), "runtime": RUNTIME})

    def build_run(out: Path):
        model, tok = load_model(base, dtype="float32", device_map=None)
        policy, log = rl.train_rl(model, tok, rl_config, out_dir=out, show_progress=show_progress, desc=f"RL {name}")
        _store(out, policy, tok, log)

    return cache.get_or_build(entry, build_run) / "model"


@ORGANISM.code
def build(config: OrganismConfig = OrganismConfig(), cache: ArtifactCache | None = None,
          show_progress: bool = True) -> Organism:
    """Train whatever part of the organism is not cached yet; return where each model lies."""
    cache = cache or ArtifactCache()
    base = base_model(config, cache, show_progress)
    rl_paths = {name: rl_run(config, config.part(name), cache, show_progress, name) for name in RL_NAMES}
    entry = spec("sft_control", (ORGANISM, sft.SFT), config.part("sft_control"),
                 {"base": model_fingerprint(base), "runtime": RUNTIME})

    def make_sft_control(out: Path):
        model, tok = load_model(base, dtype="float32", device_map=None)
        log = sft.train_sft(model, tok, config.part("sft_control"), show_progress, desc="SFT control")
        _store(out, model, tok, log)

    control = cache.get_or_build(entry, make_sft_control) / "model"
    return Organism(config, base, rl_paths, control)


@ORGANISM.code
def _store(out: Path, model, tok, log: list[dict]) -> None:
    save(model, tok, out / "model")
    (out / "log.json").write_text(json.dumps(log))
