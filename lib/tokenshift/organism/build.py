"""The model organism: a tiny base model and its RLVR-tuned (and SFT-tuned) descendants, built on CPU.

- base: a Qwen2 model SFT-trained to imitate the task's noisy demonstrator (weak at pass@1, but the
  reliable strategy is in its repertoire);
- simplerl: GRPO with a KL penalty to the base, standing in for SimpleRL-Zoo;
- dapo: the DAPO recipe (no KL, clip-higher, token-mean loss, uniform groups dropped), for DAPO-Qwen;
- sft_offpolicy: the base fine-tuned on another writer's right solutions (the paper's SFT-vs-RL contrast), until
  its held-out NLL stops improving (``sft.EarlyStop``); the model at one RL run's budget of steps is kept beside
  it as a dose point (``checkpoints``);
- sft_rejection: the base fine-tuned on its own right samples (on-policy data without RL's objective), with one
  RL run's budget of optimizer steps and sequences.

Each part is an entry of the artifact cache built by its own module (``base``, ``rl.trained``, ``sft.trained``,
laid out as ``storage`` says), so each is keyed by the code that trains it: a new RL trainer rebuilds the RL
runs only, and the analyses load the organism exactly as they load real checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ..core import parallel, seeding
from ..core.cache import ArtifactCache
from . import architecture, rl, sft, tokenizer
from .base import base_model
from .storage import checkpoints_of, run_log

RL_NAMES = ("simplerl", "dapo")
SFT_NAMES = ("sft_offpolicy", "sft_rejection")
LABELS = {"base": "base (SFT on noisy demos)", "simplerl": "SimpleRL-like (GRPO + KL)",
          "dapo": "DAPO-like (no KL, clip-higher)", "sft_offpolicy": "SFT, other writer (off-policy)",
          "sft_rejection": "SFT, own right samples (rejection sampling)"}  # how figures name each model


@dataclass(frozen=True)
class OrganismConfig:
    seed: int = 0  # every part's seed derives from this one (the parts' own seed fields are overridden)
    max_new_tokens: int = 320  # response length limit for demonstrations, RL rollouts and evaluation alike
    tokenizer: tokenizer.TokenizerConfig = field(default_factory=tokenizer.TokenizerConfig)
    shape: architecture.ModelShape = field(default_factory=architecture.ModelShape)
    base: sft.SFTConfig = field(default_factory=sft.SFTConfig)
    simplerl: rl.RLConfig = rl.SIMPLERL_LIKE
    dapo: rl.RLConfig = rl.DAPO_LIKE
    # the SFT controls train on as many sequences per step as an RL step's rollouts (and "own_correct" samples as
    # many rollouts per step); rejection sampling gets one RL run's steps, off-policy SFT trains until its held-out
    # NLL stops improving (at most 15 RL runs' steps), keeping the model at one RL run's steps as a dose point
    sft_offpolicy: sft.SFTConfig = sft.SFTConfig(steps=15 * rl.DAPO_LIKE.steps, batch_size=rl.DAPO_LIKE.rollouts,
                                                 lr=3e-4, warmup_steps=10, source="other_writer", log_every=10,
                                                 stop=sft.EarlyStop(), save_steps=(rl.DAPO_LIKE.steps,))
    sft_rejection: sft.SFTConfig = sft.SFTConfig(steps=rl.DAPO_LIKE.steps, batch_size=rl.DAPO_LIKE.rollouts,
                                                 rollouts=rl.DAPO_LIKE.rollouts, lr=3e-4, warmup_steps=10,
                                                 source="own_correct", log_every=10)

    def part(self, name: str):
        """The named part's config with its derived seed and the shared length limit."""
        config = replace(getattr(self, name), seed=seeding.derive(self.seed, "organism", name))
        if name == "tokenizer":
            return config
        length = "max_new_tokens" if name in RL_NAMES else "max_response_tokens"
        return replace(config, **{length: self.max_new_tokens})


@dataclass
class Organism:
    config: OrganismConfig
    base: Path
    rl: dict[str, Path]  # RL run name -> model directory
    sft: dict[str, Path]  # SFT control name -> model directory

    @property
    def tuned(self) -> dict[str, Path]:
        """Every model tuned from the base, by name: the RL runs, then the SFT controls."""
        return {**self.rl, **self.sft}

    def checkpoints(self, name: str) -> list[tuple[int, Path]]:
        """(step, model directory) for a run's saved checkpoints (an RL run's; an SFT control's dose points), step 0
        being the base."""
        return [(0, self.base), *checkpoints_of(self.tuned[name])]

    def log(self, name: str) -> list[dict]:
        """Training log of "base", an SFT control or an RL run: one dict per logged step."""
        return run_log(self.base if name == "base" else self.tuned[name])


def rl_run(config: OrganismConfig, rl_config: rl.RLConfig, cache: ArtifactCache | None = None,
           show_progress: bool = True, name: str = "run") -> Path:
    """An RL run from the organism's base with ``rl_config`` as given (its own seed included), cached;
    returns the final model's directory (checkpoints and ``log.json`` lie beside it)."""
    cache = cache or ArtifactCache()
    return rl.trained(base_model(config, cache, show_progress), rl_config, cache, show_progress, name)


def sft_control(config: OrganismConfig, name: str, cache: ArtifactCache | None = None,
                show_progress: bool = True) -> Path:
    """SFT control ``name`` (one of ``SFT_NAMES``) fine-tuned from the organism's base, cached."""
    cache = cache or ArtifactCache()
    return sft.trained(base_model(config, cache, show_progress), config.part(name), cache, show_progress, name)


def build(config: OrganismConfig = OrganismConfig(), cache: ArtifactCache | None = None,
          show_progress: bool = True, workers: int = 2) -> Organism:
    """Train whatever part of the organism is not cached yet; return where each model lies. After the base,
    the RL runs and SFT controls, which only read the base, train ``workers`` at a time in their own processes
    (each on ``storage.PART_THREADS`` threads, so the result is the same with one worker or many)."""
    cache = cache or ArtifactCache()
    base = base_model(config, cache, show_progress)
    # longest first (the RL runs, then rejection-sampling SFT, which samples as an RL step does), so that the
    # workers finish together
    parts = [("rl", name) for name in RL_NAMES] + [("sft", "sft_rejection"), ("sft", "sft_offpolicy")]
    entry = {"rl": rl.entry, "sft": sft.entry}
    todo = [args for args in parts if cache.check(cache.path(entry[args[0]](config.part(args[1]), base)))]
    jobs = [(kind, name, config.part(name) if kind == "rl" else None, config, cache.root, show_progress)
            for kind, name in parts]
    paths = dict(parallel.in_processes(_build_part, jobs, workers if len(todo) > 1 else 1))
    return Organism(config, base, {n: paths[n] for n in RL_NAMES}, {n: paths[n] for n in SFT_NAMES})


def rl_runs(config: OrganismConfig, runs: dict[str, rl.RLConfig], cache: ArtifactCache | None = None,
            show_progress: bool = True, workers: int = 2) -> dict[str, Path]:
    """``rl_run`` for each named RL config (each with its own seed), ``workers`` at a time in their own processes
    (each on ``storage.PART_THREADS`` threads: the same models with one worker or many); name -> final model
    directory."""
    cache = cache or ArtifactCache()
    base_model(config, cache, show_progress)  # built once here, not by every worker
    todo = [name for name, c in runs.items() if cache.check(cache.path(rl.entry(c, base_model(config, cache))))]
    jobs = [("rl", name, c, config, cache.root, show_progress) for name, c in runs.items()]
    return dict(parallel.in_processes(_build_part, jobs, workers if len(todo) > 1 else 1))


def _build_part(job) -> tuple[str, Path]:
    kind, name, rl_config, config, root, show_progress = job
    cache = ArtifactCache(root)
    if kind == "rl":
        return name, rl_run(config, rl_config, cache, show_progress, name)
    return name, sft_control(config, name, cache, show_progress)

