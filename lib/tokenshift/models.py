"""Small helpers shared by every trainer and analysis: building the organism's model, batching prompt+response
sequences, and teacher-forced per-token log-probabilities."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM
from transformers.utils import logging as hf_logging

from . import seeding
from .behaviour import Version

ARCHITECTURE = Version("organism-architecture", 1, libraries=("torch", "transformers"))  # shape -> initial weights
BATCHING = Version("batching", 1, libraries=("torch", "transformers"))  # sequences -> teacher-forced log-probs

# transformers draws a progress bar for every load and save: noise around the organism's many small
# checkpoints, which would bury the suite's own progress bars for the work that takes time.
hf_logging.disable_progress_bar()


@dataclass(frozen=True)
class ModelShape:
    """Size of the organism's Qwen2 model (about 0.13M parameters at the defaults)."""

    hidden_size: int = 64
    num_layers: int = 3
    num_heads: int = 4
    intermediate_size: int = 128
    max_positions: int = 128  # prompt (10 tokens) + response; longer sequences are refused


@ARCHITECTURE.code
def new_model(tokenizer, shape: ModelShape, seed: int) -> Qwen2ForCausalLM:
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_heads,
        max_position_embeddings=shape.max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seeding.derive(seed, "init"))
    return Qwen2ForCausalLM(config)


def save(model, tokenizer, path) -> None:
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)


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
