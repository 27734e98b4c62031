"""The organism's network: the shape of its Qwen2 model and how a new one is initialised."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from ..core import seeding
from ..core.behaviour import Version

BEHAVIOUR = Version(1, libraries=("torch", "transformers"))  # shape -> initial weights


@dataclass(frozen=True)
class ModelShape:
    """Size of the organism's Qwen2 model (about 0.15M parameters at the defaults, with ~500 tokens)."""

    hidden_size: int = 64
    num_layers: int = 3
    num_heads: int = 4
    intermediate_size: int = 128
    max_positions: int = 352  # prompt (up to 15 tokens) + response (up to 320); longer sequences are refused


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
