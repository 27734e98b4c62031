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

Each model is an ordinary ``save_pretrained`` directory kept in the artifact cache, so the analyses load
the organism exactly as they load real checkpoints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..core import parallel, seeding
from ..core.behaviour import Version
from ..core.cache import ArtifactCache, model_fingerprint, spec
from ..models.loading import load_model, save
from . import architecture, rl, sft, tokenizer

ORGANISM = Version("organism", 2)  # how the parts are seeded, built and stored
RL_NAMES = ("simplerl", "dapo")
SFT_NAMES = ("sft_offpolicy", "sft_rejection")
LABELS = {"base": "base (SFT on noisy demos)", "simplerl": "SimpleRL-like (GRPO + KL)",
          "dapo": "DAPO-like (no KL, clip-higher)", "sft_offpolicy": "SFT, other writer (off-policy)",
          "sft_rejection": "SFT, own right samples (rejection sampling)"}  # how figures name each model
# The organism trains on the CPU in fp32 wherever it runs, on a fixed number of threads (a BLAS reduction's
# order, hence the last bits of every weight, follows the thread count): the base on two, each later part on
# one, so that two of them train at once on two cores. Its numbers then do not depend on the machine's cores.
BASE_THREADS, PART_THREADS = 2, 1
RUNTIME = {"device": "cpu", "dtype": "float32"}


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

    @ORGANISM.code
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


def checkpoints_of(model_dir: Path) -> list[tuple[int, Path]]:
    """(step, model directory) of the checkpoints saved beside a model the organism built, by step; none for a
    model saved without them."""
    folder = Path(model_dir).parent / "checkpoints"
    return sorted((int(p.name.split("_")[1]), p) for p in folder.iterdir()) if folder.is_dir() else []


def run_log(model_dir: Path) -> list[dict]:
    """The training log stored beside a model the organism built."""
    return json.loads((Path(model_dir).parent / "log.json").read_text())


@ORGANISM.code
def base_model(config: OrganismConfig, cache: ArtifactCache | None = None, show_progress: bool = True) -> Path:
    """The base model's directory: a new Qwen2 of ``config.shape`` SFT-trained on the demonstrator, cached."""
    cache = cache or ArtifactCache()
    entry = spec("base", (ORGANISM, tokenizer.TOKENIZER, architecture.ARCHITECTURE, sft.SFT),
                 {"tokenizer": config.part("tokenizer"), "shape": config.shape, "sft": config.part("base")},
                 {"runtime": {**RUNTIME, "threads": BASE_THREADS}})

    def make_base(out: Path):
        tok = tokenizer.build_tokenizer(config.part("tokenizer"))
        model = architecture.new_model(tok, config.shape, seed=config.part("base").seed)
        with parallel.threads(BASE_THREADS):
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

    def build_run(out: Path):
        model, tok = load_model(base, dtype="float32", device_map=None)
        with parallel.threads(PART_THREADS):
            policy, log = rl.train_rl(model, tok, rl_config, out_dir=out, show_progress=show_progress,
                                      desc=f"RL {name}")
        _store(out, policy, tok, log)

    return cache.get_or_build(_rl_entry(rl_config, base), build_run) / "model"


def _rl_entry(rl_config: rl.RLConfig, base: Path):
    return spec("rl", (ORGANISM, rl.RL), rl_config,
                {"base": model_fingerprint(base), "runtime": {**RUNTIME, "threads": PART_THREADS}})


def _sft_entry(sft_config: sft.SFTConfig, base: Path):
    return spec("sft_control", (ORGANISM, sft.SFT), sft_config,
                {"base": model_fingerprint(base), "runtime": {**RUNTIME, "threads": PART_THREADS}})


@ORGANISM.code
def sft_control(config: OrganismConfig, name: str, cache: ArtifactCache | None = None,
                show_progress: bool = True) -> Path:
    """SFT control ``name`` (one of ``SFT_NAMES``) fine-tuned from the organism's base, cached."""
    cache = cache or ArtifactCache()
    base = base_model(config, cache, show_progress)

    def make_control(out: Path):
        model, tok = load_model(base, dtype="float32", device_map=None)
        with parallel.threads(PART_THREADS):
            log = sft.train_sft(model, tok, config.part(name), show_progress, desc=f"SFT {name}", out_dir=out)
        _store(out, model, tok, log)

    return cache.get_or_build(_sft_entry(config.part(name), base), make_control) / "model"


@ORGANISM.code
def build(config: OrganismConfig = OrganismConfig(), cache: ArtifactCache | None = None,
          show_progress: bool = True, workers: int = 2) -> Organism:
    """Train whatever part of the organism is not cached yet; return where each model lies. After the base,
    the RL runs and SFT controls, which only read the base, train ``workers`` at a time in their own processes
    (each on ``PART_THREADS`` threads, so the result is the same with one worker or many)."""
    cache = cache or ArtifactCache()
    base = base_model(config, cache, show_progress)
    # longest first (the RL runs, then rejection-sampling SFT, which samples as an RL step does), so that the
    # workers finish together
    parts = [("rl", name) for name in RL_NAMES] + [("sft", "sft_rejection"), ("sft", "sft_offpolicy")]
    entry = {"rl": _rl_entry, "sft": _sft_entry}
    todo = [args for args in parts if cache.check(cache.path(entry[args[0]](config.part(args[1]), base)))]
    jobs = [(kind, name, config.part(name) if kind == "rl" else None, config, cache.root, show_progress)
            for kind, name in parts]
    paths = dict(parallel.in_processes(_build_part, jobs, workers if len(todo) > 1 else 1))
    return Organism(config, base, {n: paths[n] for n in RL_NAMES}, {n: paths[n] for n in SFT_NAMES})


def rl_runs(config: OrganismConfig, runs: dict[str, rl.RLConfig], cache: ArtifactCache | None = None,
            show_progress: bool = True, workers: int = 2) -> dict[str, Path]:
    """``rl_run`` for each named RL config (each with its own seed), ``workers`` at a time in their own processes
    (each on ``PART_THREADS`` threads: the same models with one worker or many); name -> final model directory."""
    cache = cache or ArtifactCache()
    base_model(config, cache, show_progress)  # built once here, not by every worker
    todo = [name for name, c in runs.items() if cache.check(cache.path(_rl_entry(c, base_model(config, cache))))]
    jobs = [("rl", name, c, config, cache.root, show_progress) for name, c in runs.items()]
    return dict(parallel.in_processes(_build_part, jobs, workers if len(todo) > 1 else 1))


def _build_part(job) -> tuple[str, Path]:
    kind, name, rl_config, config, root, show_progress = job
    cache = ArtifactCache(root)
    if kind == "rl":
        return name, rl_run(config, rl_config, cache, show_progress, name)
    return name, sft_control(config, name, cache, show_progress)


@ORGANISM.code
def _store(out: Path, model, tok, log: list[dict]) -> None:
    save(model, tok, out / "model")
    (out / "log.json").write_text(json.dumps(log))
