"""Supervised fine-tuning: how the organism's base is made, and the two SFT controls beside the RL runs.

A step trains on one batch of (prompt, response) pairs from fresh training problems, drawn from ``source``:
- "demonstrator": the base's teacher, with its variation and mistakes (``task.Demonstrator``);
- "other_writer": another writer's always-right solutions, in its own style (``task.OtherWriter``): the
  off-policy SFT control, the paper's SFT-vs-RL contrast;
- "own_correct": the frozen starting model's own samples, only those the verifier accepts (rejection
  sampling): on-policy data without RL's objective, which separates "RL" from "learning from its own samples".
  Each step samples ``rollouts`` responses, as an RL step does, and trains on the right ones.

With ``stop`` (``EarlyStop``) a run ends when its held-out NLL stops improving, by a rule fixed before it runs:
every ``every`` steps the mean NLL per token of a fixed set of held-out problems' demonstrations (validation
split, written by the run's own source) is measured; the run stops once ``patience`` measurements in a row have
not beaten the best by ``min_gain`` nats, or at ``steps``, and keeps the weights of the last measurement that did
(where the plateau began; the smaller gains after it do not count as improving).
``save_steps`` keeps the model at those steps beside the final one (``checkpoints/step_NNNN``): a dose point, e.g.
the step matched to an RL run's budget.
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..core import progress, seeding
from ..core.behaviour import Version
from ..core.cache import ArtifactCache
from ..models.batching import make_batch, token_logprobs
from ..models.loading import save
from ..models.sampling import Decoding, decode
from . import storage, task
from .problems import OrganismProblems, prompt_ids

BEHAVIOUR = Version(1)
SOURCES = ("demonstrator", "other_writer", "own_correct")


@dataclass(frozen=True)
class EarlyStop:
    """When a run stops (see the module's docstring): fixed before it runs, never chosen from its results."""

    every: int = 50  # steps between held-out measurements
    patience: int = 3  # measurements in a row without beating the best by min_gain
    min_gain: float = 0.01  # nats per token
    problems: int = 64  # held-out problems (validation split) measured


@dataclass(frozen=True)
class SFTConfig:
    steps: int = 1600  # optimizer steps
    batch_size: int = 32  # sequences per step ("own_correct": at most this many of the accepted samples)
    lr: float = 3e-3  # peak AdamW learning rate, reached after warmup, cosine-decayed to 10% of it
    warmup_steps: int = 100
    weight_decay: float = 0.01
    source: str = "demonstrator"  # "demonstrator", "other_writer" or "own_correct" (see the module's docstring)
    demonstrator: task.Demonstrator = field(default_factory=task.Demonstrator)
    rollouts: int = 128  # "own_correct": samples drawn per step from the frozen starting model
    max_response_tokens: int = 320  # longer demonstrations (rambling ones) are cut here, without end-of-sequence
    seed: int = 0
    log_every: int = 50
    stop: EarlyStop | None = None  # None: train all ``steps``; else stop by that rule (at most ``steps``)
    save_steps: tuple[int, ...] = ()  # keep the model at these steps too (checkpoints/step_NNNN)

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        if self.stop is not None and self.source == "own_correct":
            raise ValueError("early stopping measures held-out demonstrations; own_correct has none: set stop=None")


def demonstrations(config: SFTConfig, step: int, tokenizer) -> tuple[list, list]:
    """Step ``step``'s batch of (prompt ids, response ids) written by the demonstrator or the other writer."""
    seed = seeding.derive(config.seed, "sft-batch", step)
    rng = random.Random(seed)
    problems = task.sample_problems(config.batch_size, "train", seed=seed)
    writer = config.demonstrator if config.source == "demonstrator" else task.OtherWriter()
    prompts, responses = [], []
    for p in problems:
        written = writer.write(p, rng)
        ids = tokenizer(written.text)["input_ids"][: config.max_response_tokens]
        if written.stopped and len(ids) < config.max_response_tokens:
            ids.append(tokenizer.eos_token_id)
        prompts.append(prompt_ids(p, tokenizer))
        responses.append(ids)
    return prompts, responses


def own_correct_samples(sampler, config: SFTConfig, step: int, tokenizer) -> tuple[list, list, float]:
    """Step ``step``'s batch from ``sampler``'s own samples: (prompt ids, response ids with their stop token)
    of the accepted ones, at most ``batch_size``, and the share accepted."""
    seed = seeding.derive(config.seed, "sft-own-samples", step)
    problems = OrganismProblems(task.sample_problems(config.rollouts, "train", seed=seed), tokenizer)
    out = decode(sampler, problems.prompts, Decoding(config.max_response_tokens, problems.stop_ids,
                                                     tokenizer.pad_token_id, seed=seed))
    accepted = [i for i, ok in enumerate(problems.rewards(out)) if ok][: config.batch_size]
    ids = out.with_stop_tokens()
    return ([problems.prompts[out.prompt_index[i]] for i in accepted], [ids[i] for i in accepted],
            len(accepted) / config.rollouts)


def held_out_set(config: SFTConfig, tokenizer) -> tuple[list, list]:
    """The early-stopping measurement's (prompt ids, response ids): ``config.stop.problems`` validation problems,
    written once by the run's source with a fixed seed."""
    seed = seeding.derive(config.seed, "sft-held-out")
    rng = random.Random(seed)
    writer = config.demonstrator if config.source == "demonstrator" else task.OtherWriter()
    prompts, responses = [], []
    for p in task.sample_problems(config.stop.problems, "validation", seed=seed):
        written = writer.write(p, rng)
        ids = tokenizer(written.text)["input_ids"][: config.max_response_tokens]
        prompts.append(prompt_ids(p, tokenizer))
        responses.append(ids + [tokenizer.eos_token_id] * (written.stopped and len(ids) < config.max_response_tokens))
    return prompts, responses


@torch.no_grad()
def held_out_nll(model, batch) -> float:
    """Mean NLL per response token of ``batch`` (``make_batch``'s), in eval mode."""
    was_training = model.training
    model.eval()
    logp = token_logprobs(model, batch)
    model.train(was_training)
    return float(-(logp * batch.response_mask).sum() / batch.response_mask.sum())


def train_sft(model, tokenizer, config: SFTConfig, show_progress: bool = True, desc: str = "SFT",
              out_dir: Path | None = None) -> list[dict]:
    """Train ``model`` in place on ``config.source``'s data; returns the loss log (and, for "own_correct", the
    share of samples accepted; with ``config.stop``, the held-out NLL at each measurement, and in the last entry,
    where the run stopped, the step whose weights it kept). ``save_steps`` models go to ``out_dir/checkpoints``."""
    sampler = copy.deepcopy(model).eval() if config.source == "own_correct" else None
    held_out = make_batch(*held_out_set(config, tokenizer), tokenizer.pad_token_id) if config.stop else None
    best = (math.inf, 0, None)  # (held-out NLL, step, weights)
    since_best = 0
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, config))
    model.train()
    log, running, accepted, start = [], 0.0, [], time.perf_counter()
    for step in progress.bar(range(1, config.steps + 1), desc=desc, unit="step", disable=not show_progress):
        if sampler is None:
            prompts, responses = demonstrations(config, step, tokenizer)
        else:
            prompts, responses, share = own_correct_samples(sampler, config, step, tokenizer)
            accepted.append(share)
        if responses:
            batch = make_batch(prompts, responses, tokenizer.pad_token_id)
            logp = token_logprobs(model, batch)
            loss = -(logp * batch.response_mask).sum() / batch.response_mask.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            running += loss.item()
        schedule.step()
        if out_dir is not None and step in config.save_steps:
            save(model, tokenizer, Path(out_dir) / "checkpoints" / f"step_{step:04d}")
        measured = held_out is not None and (step % config.stop.every == 0 or step == config.steps)
        if step % config.log_every == 0 or step == config.steps or measured:
            since = step - (log[-1]["step"] if log else 0)
            entry = {"step": step, "loss": running / since, "seconds": time.perf_counter() - start}
            if accepted:
                entry["accepted"] = sum(accepted[-since:]) / since
            if measured:
                entry["held_out_nll"] = held_out_nll(model, held_out)
                if entry["held_out_nll"] < best[0] - config.stop.min_gain:
                    best, since_best = (entry["held_out_nll"], step, copy.deepcopy(model.state_dict())), 0
                else:
                    since_best += 1
            log.append(entry)
            running = 0.0
            if measured and since_best >= config.stop.patience:
                break
    if held_out is not None:
        model.load_state_dict(best[2])
        log[-1].update(kept_step=best[1], kept_held_out_nll=best[0])  # the last entry is where the run stopped
    model.eval()
    return log


def lr_factor(step: int, config: SFTConfig) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def entry(config: SFTConfig, base: Path):
    """The cache entry of an SFT control from model directory ``base`` (``storage.tuned_entry``)."""
    return storage.tuned_entry("sft_control", __name__, config, base)


def trained(base: Path, config: SFTConfig, cache: ArtifactCache, show_progress: bool = True,
            name: str = "run") -> Path:
    """An SFT control from model directory ``base`` with ``config`` as given (its own seed included),
    cached; returns the final model's directory (checkpoints and ``log.json`` lie beside it)."""
    train = lambda model, tok, out: (model, train_sft(model, tok, config, show_progress, f"SFT {name}", out))  # noqa: E731
    return storage.tuned(entry(config, base), base, cache, train)
