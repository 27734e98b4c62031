"""The organism's character-level tokenizer: a Qwen2 byte-level BPE tokenizer with no merges.

One token per character keeps every decision of a response visible as its own position, which is what the
token-level analyses look at. It is built as a ``Qwen2Tokenizer`` because transformers forces that class on
any ``qwen2`` model directory (``MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS``): a tokenizer of another kind
saved there would be rebuilt as Qwen2's byte-level pipeline on load and lose its spaces. With an empty merge
list the same pipeline is character level, so ``AutoTokenizer`` on the model directory round-trips exactly.
"""

from __future__ import annotations

from transformers.models.qwen2 import Qwen2Tokenizer

from ..core.behaviour import Version

TOKENIZER = Version("tokenizer", 1, libraries=("transformers", "tokenizers"))

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
ALPHABET = "0123456789+= abcdefghijklmnopqrstuvwxyz"
_BYTE_LEVEL_SPACE = "\u0120"  # how byte-level BPE spells " " in its vocabulary


@TOKENIZER.code
def build_tokenizer() -> Qwen2Tokenizer:
    chars = [_BYTE_LEVEL_SPACE if c == " " else c for c in ALPHABET]
    vocab = {tok: i for i, tok in enumerate([PAD, BOS, EOS, *chars])}
    return Qwen2Tokenizer(
        vocab=vocab, merges=[], unk_token=None, bos_token=BOS, eos_token=EOS, pad_token=PAD, padding_side="left"
    )


def check_text(text: str) -> None:
    """Refuse characters the organism cannot spell, naming them (the tokenizer would drop them silently)."""
    bad = sorted(set(text) - set(ALPHABET))
    if bad:
        raise ValueError(f"text has characters outside the organism's alphabet: {bad!r}; allowed: {ALPHABET!r}")
