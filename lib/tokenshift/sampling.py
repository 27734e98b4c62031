"""Seeded batched sampling from any causal LM with a KV cache (left-padded prompts, temperature, top-p)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache

from .divergence import log_probs, top_p_truncate


@dataclass
class Samples:
    """Responses to a list of prompts, ``n`` per prompt, in prompt-major order."""

    prompt_index: list[int]  # which prompt each response answers
    response_ids: list[list[int]]  # generated ids, without the end-of-sequence token
    stopped: list[bool]  # True where the model emitted end-of-sequence before the length limit


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
    eos_token_id: int,
    pad_token_id: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 256,
) -> Samples:
    """Sample ``n`` responses to each prompt (token-id lists), ``batch_size`` sequences at a time."""
    if any(len(p) == 0 for p in prompts):
        raise ValueError("an empty prompt cannot be continued: give every prompt at least one token")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    generator = torch.Generator().manual_seed(seed)
    jobs = [i for i in range(len(prompts)) for _ in range(n)]
    out = Samples(prompt_index=jobs, response_ids=[], stopped=[])
    for start in range(0, len(jobs), batch_size):
        batch = [prompts[i] for i in jobs[start : start + batch_size]]
        ids, stopped = _sample_batch(
            model, batch, max_new_tokens, eos_token_id, pad_token_id, temperature, top_p, generator
        )
        out.response_ids += ids
        out.stopped += stopped
    return out


def _sample_batch(model, prompts, max_new_tokens, eos_id, pad_id, temperature, top_p, generator):
    ids, mask = left_pad(prompts, pad_id)
    cache = DynamicCache(config=model.config)
    done = torch.zeros(len(prompts), dtype=torch.bool)
    generated = []
    step_ids, pos = ids, positions(mask)
    for _ in range(max_new_tokens):
        logits = model(input_ids=step_ids, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True).logits
        token = next_token(logits[:, -1], temperature, top_p, generator)
        token = token.masked_fill(done, pad_id)
        generated.append(token)
        done |= token == eos_id
        if done.all():
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        step_ids, pos = token[:, None], pos[:, -1:] + 1
    rows = torch.stack(generated, dim=1).tolist()
    responses, stopped = [], []
    for row in rows:
        if eos_id in row:
            responses.append(row[: row.index(eos_id)])
            stopped.append(True)
        else:
            responses.append(row)
            stopped.append(False)
    return responses, stopped
