"""Prompt+response sequences as one right-padded batch, and teacher-forced per-token log-probabilities: what
every trainer and the scorer feed a model."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.behaviour import Version

BATCHING = Version("batching", 1, libraries=("torch", "transformers"))  # sequences -> teacher-forced log-probs


@dataclass
class Batch:
    """Prompt+response sequences, right-padded; ``response_mask`` marks the positions whose next token is a
    response token (so ``logprobs[:, t]`` scores ``ids[:, t + 1]``)."""

    ids: torch.Tensor  # [B, L]
    attention_mask: torch.Tensor  # [B, L]
    response_mask: torch.Tensor  # [B, L - 1], float


@BATCHING.code
def make_batch(prompts: list[list[int]], responses: list[list[int]], pad_id: int, max_len: int | None = None) -> Batch:
    seqs = [p + r for p, r in zip(prompts, responses)]
    width = max(len(s) for s in seqs)
    if max_len is not None and width > max_len:
        raise ValueError(
            f"a prompt+response of {width} tokens exceeds the model's context of {max_len}; "
            "lower max_new_tokens or use a model with longer max_position_embeddings"
        )
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(seqs), width), dtype=torch.long)
    response = torch.zeros((len(seqs), width - 1))
    for i, (p, s) in enumerate(zip(prompts, seqs)):
        ids[i, : len(s)] = torch.tensor(s)
        attention[i, : len(s)] = 1
        response[i, len(p) - 1 : len(s) - 1] = 1
    return Batch(ids, attention, response)


@BATCHING.code
def token_logprobs(model, batch: Batch) -> torch.Tensor:
    """log pi(ids[t+1] | ids[:t+1]) for every position, [B, L-1], computed in fp32."""
    logits = model(input_ids=batch.ids, attention_mask=batch.attention_mask).logits[:, :-1].float()
    return logits.log_softmax(-1).gather(-1, batch.ids[:, 1:, None]).squeeze(-1)
