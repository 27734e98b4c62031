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

from . import divergence, evaluation, models, problem_sets, rl, sampling, sft, task, tokenizer
from .cache import ArtifactCache
from .loading import load_model

RL_NAMES = ("simplerl", "dapo")


@dataclass(frozen=True)
class OrganismConfig:
    seed: int = 0  # every part's seed derives from this one (the parts' own seed fields are overridden)
    max_new_tokens: int = 48  # response length limit for demonstrations, RL rollouts and evaluation alike
    shape: models.ModelShape = field(default_factory=models.ModelShape)
    base: sft.SFTConfig = field(default_factory=sft.SFTConfig)
    simplerl: rl.RLConfig = rl.SIMPLERL_LIKE
    dapo: rl.RLConfig = rl.DAPO_LIKE
    sft_control: sft.SFTConfig = sft.SFTConfig(
        steps=120, batch_size=256, lr=3e-4, warmup_steps=10, only_correct=True, log_every=10
    )

    def part(self, name: str):
        """The named part's config with its derived seed and the shared length limit."""
        offset = {"base": 0, "simplerl": 1, "dapo": 2, "sft_control": 3}[name]
        config = replace(getattr(self, name), seed=self.seed * 10 + offset)
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


BASE_CODE = (task, tokenizer, models, sft)
RL_CODE = (*BASE_CODE, rl, sampling, divergence, evaluation, problem_sets)  # sampling uses divergence's top-p


def _base(config: OrganismConfig, cache: ArtifactCache, progress: bool) -> tuple[Path, dict]:
    """The base model's directory, and the key that identifies it inside its descendants' keys."""
    key = {"shape": config.shape, "base": config.part("base")}

    def make_base(out: Path):
        tok = tokenizer.build_tokenizer()
        model = models.new_model(tok, config.shape, seed=config.seed)
        log = sft.train_sft(model, tok, config.part("base"), progress=progress)
        _store(out, model, tok, log)

    return cache.get_or_build("base", key, make_base, code=BASE_CODE) / "model", key


def rl_run(config: OrganismConfig, rl_config: rl.RLConfig, cache: ArtifactCache | None = None,
           progress: bool = True) -> Path:
    """An RL run from the organism's base with ``rl_config`` as given (its own seed included), cached;
    returns the final model's directory (checkpoints and ``log.json`` lie beside it)."""
    cache = cache or ArtifactCache()
    base, base_key = _base(config, cache, progress)

    def build_run(out: Path):
        model, tok = load_model(base)
        policy, log = rl.train_rl(model, tok, rl_config, out_dir=out, progress=progress)
        _store(out, policy, tok, log)

    return cache.get_or_build("rl", {"base": base_key, "rl": rl_config}, build_run, code=RL_CODE) / "model"


def build(config: OrganismConfig = OrganismConfig(), cache: ArtifactCache | None = None,
          progress: bool = True) -> Organism:
    """Train whatever part of the organism is not cached yet; return where each model lies."""
    cache = cache or ArtifactCache()
    base, base_key = _base(config, cache, progress)
    rl_paths = {name: rl_run(config, config.part(name), cache, progress) for name in RL_NAMES}

    def make_sft_control(out: Path):
        model, tok = load_model(base)
        log = sft.train_sft(model, tok, config.part("sft_control"), progress=progress)
        _store(out, model, tok, log)

    control_key = {"base": base_key, "sft": config.part("sft_control")}
    control = cache.get_or_build("sft_control", control_key, make_sft_control, code=BASE_CODE) / "model"
    return Organism(config, base, rl_paths, control)


def _store(out: Path, model, tok, log: list[dict]) -> None:
    models.save(model, tok, out / "model")
    (out / "log.json").write_text(json.dumps(log))
