"""Seeded batched sampling from any causal LM with a KV cache (left-padded prompts, temperature, top-p)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from .divergence import log_probs, top_p_truncate


@dataclass
class Samples:
    """Responses to a list of prompts, ``n`` per prompt, in prompt-major order."""

    prompt_index: list[int]  # which prompt each response answers
    response_ids: list[list[int]]  # generated ids, without the stop token
    stopped: list[bool]  # True where the model emitted a stop token before the length limit
    stop_token: list[int | None]  # the stop token emitted, None if none

    def with_stop_tokens(self) -> list[list[int]]:
        """Each response with the stop token it ended on: the ids a teacher-forced forward should read."""
        return [ids + ([stop] if stop is not None else []) for ids, stop in zip(self.response_ids, self.stop_token)]


def stop_set(eos_token_id: int | Sequence[int]) -> set[int]:
    """The stop tokens as a set: real pairs may stop on several (a base model's <|endoftext|>, an instruct
    model's <|im_end|>)."""
    return {eos_token_id} if isinstance(eos_token_id, int) else set(eos_token_id)


def split_at_stop(row: list[int], stops: set[int]) -> tuple[list[int], int | None]:
    """A decoded row cut before its first stop token, and that token (None if the row never stopped)."""
    for i, token in enumerate(row):
        if token in stops:
            return row[:i], token
    return row, None


def left_pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask for sequences of different lengths, padded on the left."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s) :] = torch.tensor(s)
            mask[i, width - len(s) :] = 1
    return ids, mask


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on each row's first real token, whatever its left padding."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def next_token(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> torch.Tensor:
    """One sampled token id per row of ``logits`` ([B, V]); temperature 0 means greedy."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = top_p_truncate(log_probs(logits.float() / temperature)[1], top_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def sample(
    model,
    prompts: list[list[int]],
    *,
    n: int = 1,
    max_new_tokens: int,
    eos_token_id: int | Sequence[int],
    pad_token_id: int,
    vocab_size: int | None = None,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 256,
) -> Samples:
    """Sample ``n`` responses to each prompt (token-id lists), ``batch_size`` sequences at a time; a response
    ends at the first of the ``eos_token_id`` stop tokens (one id or several). ``vocab_size`` slices output
    layers padded past the tokenizer, whose extra rows no text can contain."""
    if any(len(p) == 0 for p in prompts):
        raise ValueError("an empty prompt cannot be continued: give every prompt at least one token")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    generator = torch.Generator().manual_seed(seed)
    jobs = [i for i in range(len(prompts)) for _ in range(n)]
    stops = stop_set(eos_token_id)
    out = Samples(prompt_index=jobs, response_ids=[], stopped=[], stop_token=[])
    for start in range(0, len(jobs), batch_size):
        batch = [prompts[i] for i in jobs[start : start + batch_size]]
        for row in _sample_batch(model, batch, max_new_tokens, stops, pad_token_id, vocab_size, temperature,
                                 top_p, generator):
            ids, stop = split_at_stop(row, stops)
            out.response_ids.append(ids)
            out.stopped.append(stop is not None)
            out.stop_token.append(stop)
    return out


def _sample_batch(model, prompts, max_new_tokens, stops, pad_id, vocab, temperature, top_p,
                  generator) -> list[list[int]]:
    ids, mask = left_pad(prompts, pad_id)
    cache = DynamicCache(config=model.config)
    stop_ids = torch.tensor(sorted(stops))
    done = torch.zeros(len(prompts), dtype=torch.bool)
    generated = []
    # sampling draws on the CPU, so a seed gives the same tokens wherever the model runs
    mask = mask.to(model.device)
    step_ids, pos = ids.to(model.device), positions(mask)
    for _ in range(max_new_tokens):
        logits = model(input_ids=step_ids, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True).logits
        token = next_token(logits[:, -1, :vocab].cpu(), temperature, top_p, generator)
        token = token.masked_fill(done, pad_id)
        generated.append(token)
        done |= torch.isin(token, stop_ids)
        if done.all():
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        step_ids, pos = token[:, None].to(model.device), pos[:, -1:] + 1
    return torch.stack(generated, dim=1).tolist()
