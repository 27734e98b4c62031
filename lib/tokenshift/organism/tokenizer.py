"""The organism's subword tokenizer: byte-level BPE trained on the two writers' text, as a ``Qwen2Tokenizer``.

Trained with the ``tokenizers`` library on demonstrations of both writers, with Qwen2's own pre-tokenizer
(digits one by one, words with their leading space, punctuation apart), so the organism's vocabulary is made the
way real ones are: a few hundred merges over the 256 byte symbols, words like " carry" or " answer" as single
tokens, numbers as digits. It is saved as a ``Qwen2Tokenizer`` because transformers forces that class on any
``qwen2`` model directory (``MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS``); built from the trained vocabulary and
merges, it round-trips exactly through ``AutoTokenizer`` on the model directory.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers.models.qwen2 import Qwen2Tokenizer

from ..core import seeding
from ..core.behaviour import Version
from . import task

BEHAVIOUR = Version(1, libraries=("transformers", "tokenizers"))

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"


@dataclass(frozen=True)
class TokenizerConfig:
    vocab_size: int = 1000  # at most; the writers' text supports about 500 (the 256 bytes and ~250 merges)
    demonstrations: int = 4000  # texts of the base's demonstrator in the training corpus
    other_writer: int = 1000  # texts of the other writer (the off-policy SFT control's teacher)
    seed: int = 0


def corpus(config: TokenizerConfig) -> list[str]:
    """Prompts with responses of both writers, from training problems."""
    rng = random.Random(seeding.derive(config.seed, "tokenizer-corpus"))
    problems = task.sample_problems(config.demonstrations, "train", seed=seeding.derive(config.seed, "tokenizer"))
    demo, other = task.Demonstrator(), task.OtherWriter()
    texts = [p.prompt + demo.write(p, rng, max_chars=600).text for p in problems]
    return texts + [p.prompt + other.write(p, rng).text for p in problems[: config.other_writer]]


def build_tokenizer(config: TokenizerConfig = TokenizerConfig()) -> Qwen2Tokenizer:
    # Qwen2's pipeline with no merges lends its pre-tokenizer and decoder, so training splits text as it will
    # be split when the tokenizer is used
    qwen2 = Qwen2Tokenizer(vocab={"a": 0}, merges=[], unk_token=None).backend_tokenizer
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer, bpe.decoder = qwen2.pre_tokenizer, qwen2.decoder
    trainer = trainers.BpeTrainer(vocab_size=config.vocab_size, special_tokens=[PAD, BOS, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(corpus(config), trainer)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" "))
              for m in json.loads(bpe.to_str())["model"]["merges"]]
    return Qwen2Tokenizer(vocab=bpe.get_vocab(), merges=merges, unk_token=None, bos_token=BOS, eos_token=EOS,
                          pad_token=PAD, padding_side="left")
