"""Supervised fine-tuning on demonstrations: how the organism's base is made, and the SFT control."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import torch

from ..core import progress, seeding
from ..core.behaviour import Version
from ..models.batching import BATCHING, make_batch, token_logprobs
from . import task

SFT = Version("sft", 1, uses=(task.TASK, BATCHING))


@dataclass(frozen=True)
class SFTConfig:
    steps: int = 1200  # optimizer steps
    batch_size: int = 128  # demonstrations per step
    lr: float = 3e-3  # peak AdamW learning rate, reached after warmup, cosine-decayed to 10% of it
    warmup_steps: int = 100
    weight_decay: float = 0.01
    demonstrator: task.Demonstrator = field(default_factory=task.Demonstrator)
    only_correct: bool = False  # True: imitate only the reliable strategy (the SFT control's data)
    max_response_tokens: int = 48  # rambling demonstrations are cut here, without end-of-sequence
    seed: int = 0
    log_every: int = 50


@SFT.code
def demonstrations(config: SFTConfig, step: int, tokenizer) -> tuple[list, list]:
    """Step ``step``'s batch of (prompt ids, response ids) from fresh training-split problems."""
    seed = seeding.derive(config.seed, "sft-batch", step)
    rng = random.Random(seed)
    problems = task.sample_problems(config.batch_size, "train", seed=seed)
    prompts, responses = [], []
    for p in problems:
        if config.only_correct:
            text, stopped = task.reliable_solution(p), True
        else:
            text, stopped = config.demonstrator.write(p, rng)
        ids = tokenizer(text)["input_ids"][: config.max_response_tokens]
        if stopped and len(ids) < config.max_response_tokens:
            ids.append(tokenizer.eos_token_id)
        prompts.append([tokenizer.bos_token_id, *tokenizer(p.prompt)["input_ids"]])
        responses.append(ids)
    return prompts, responses


@SFT.code
def train_sft(model, tokenizer, config: SFTConfig, show_progress: bool = True, desc: str = "SFT") -> list[dict]:
    """Train ``model`` in place on demonstrations; returns the loss log."""
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, config))
    model.train()
    log, running = [], 0.0
    for step in progress.bar(range(1, config.steps + 1), desc=desc, unit="step", disable=not show_progress):
        prompts, responses = demonstrations(config, step, tokenizer)
        batch = make_batch(prompts, responses, tokenizer.pad_token_id)
        logp = token_logprobs(model, batch)
        loss = -(logp * batch.response_mask).sum() / batch.response_mask.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        schedule.step()
        running += loss.item()
        if step % config.log_every == 0 or step == config.steps:
            log.append({"step": step, "loss": running / (step - (log[-1]["step"] if log else 0))})
            running = 0.0
    model.eval()
    return log


@SFT.code
def lr_factor(step: int, config: SFTConfig) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
