"""Teacher-forced scoring of a model pair on identical token ids: one row per (response, position).

Both models read the same prompt+response ids (tokenised once, never re-tokenised between models). Only
final hidden states are kept per batch; the output layer is applied a chunk of positions at a time and its
rows are sliced to the tokenizer's length (Qwen checkpoints pad it to 151,936 or 152,064 rows), so memory
stays bounded whatever the sequence length and vocabulary. Full logits are never stored.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import numpy as np
import polars as pl
import torch
from tqdm import tqdm

from .loading import pad_id
from .metrics import pair_metrics
from .models import make_batch

# The metrics run on chunks of logits of this many elements per model (32 MB in fp32, ~55 positions of a
# 152k vocabulary), which bounds their temporaries.
CHUNK_ELEMENTS = 1 << 23
# A batch whose logits fit in this many elements per model (256 MB in fp32, ~440 positions of a 152k
# vocabulary) gets them from one matmul: per chunk, the output layer's weights (545 MB for Qwen2.5-0.5B)
# would be re-read from memory each time. Longer batches are projected chunk by chunk, bounding the peak.
WHOLE_BATCH_ELEMENTS = 1 << 26
# Each position keeps its top tokens under both models with their probabilities (for the token viewer).
TOP_TOKENS = 5


@functools.cache  # once per process: find_library runs a subprocess (~4 ms)
def _allocate_large_blocks_with_mmap() -> None:
    """Ask glibc to serve blocks of 1 MB and more with mmap, so each chunk's freed temporaries go back to
    the system. By default glibc raises that threshold as blocks are freed, until the chunks' 16-60 MB
    temporaries come from its heap, whose fragmentation grew scoring's footprint erratically from 0.2 to
    over 5 GB for one 4,096-token sequence. Not glibc (macOS, musl): nothing to do."""
    libc_name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(libc_name).mallopt
    except (OSError, AttributeError, TypeError):
        return
    M_MMAP_THRESHOLD = -3
    mallopt(M_MMAP_THRESHOLD, 1 << 20)


def check_same_vocabulary(base_tokenizer, rl_tokenizer) -> None:
    """Refuse a pair whose vocabularies differ (added special tokens included), saying which tokens differ.

    Special-token *roles* may differ (a base model's EOS is <|endoftext|>, its instruct sibling's <|im_end|>):
    both are in the shared vocabulary, and the pair's stop set holds both. Output layers padded past the
    vocabulary may differ too: logits are sliced to the tokenizer's length.
    """
    a, b = base_tokenizer.get_vocab(), rl_tokenizer.get_vocab()
    if a != b:
        only_a = sorted(set(a) - set(b))[:5]
        only_b = sorted(set(b) - set(a))[:5]
        moved = sorted(t for t in set(a) & set(b) if a[t] != b[t])[:5]
        raise ValueError(
            "the two models' vocabularies differ, so their distributions cannot be compared token by token: "
            f"only in base {only_a}, only in RL {only_b}, different ids {moved} (first 5 of each). "
            "Pair models that share a tokenizer."
        )


def _hidden(model, batch, rows, cols) -> torch.Tensor:
    ids, mask = batch.ids.to(model.device), batch.attention_mask.to(model.device)
    return model.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state[rows.to(model.device),
                                                                                    cols.to(model.device)]


def _project(model, hidden, vocab: int, device) -> torch.Tensor:
    """fp32 logits over the tokenizer's vocabulary (padding rows of the output layer dropped) on ``device``."""
    head = model.get_output_embeddings()
    return head(hidden.to(head.weight.device))[:, :vocab].float().to(device)


@torch.no_grad()
def score_pair(base, rl, tokenizer, prompts: list[list[int]], responses: list[list[int]],
               correct: list[bool] | None = None, top_p: float = 0.7, max_k: int = 10,
               batch_size: int = 16, chunk_positions: int | None = None, progress: bool = True) -> pl.DataFrame:
    """Per-position metrics of ``base`` vs ``rl`` on each prompt+response (responses include any EOS token).

    Columns: response, position, rel_position ((position + 0.5) / length, in (0, 1)), length, token_id,
    token, correct, and the metrics of ``metrics.pair_metrics`` (top-k overlaps as topk_overlap_1..k).
    """
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    empty = [i for i, r in enumerate(responses) if not r]
    if empty:
        raise ValueError(f"responses {empty[:10]} are empty: there is no position to score; drop them first")
    limit = min(base.config.max_position_embeddings, rl.config.max_position_embeddings)
    vocab = len(tokenizer)
    _allocate_large_blocks_with_mmap()
    chunk_positions = chunk_positions or max(1, CHUNK_ELEMENTS // vocab)
    frames = []
    for start in tqdm(range(0, len(prompts), batch_size), desc="scoring", disable=not progress, mininterval=2):
        stop = min(start + batch_size, len(prompts))
        batch = make_batch(prompts[start:stop], responses[start:stop], pad_id(tokenizer), max_len=limit)
        rows, cols = batch.response_mask.nonzero(as_tuple=True)  # positions predicting a response token
        h_base, h_rl = _hidden(base, batch, rows, cols), _hidden(rl, batch, rows, cols)
        device = h_base.device  # the metrics run where the base model's last layer is
        project = lambda model, h: _project(model, h, vocab, device)
        whole = len(rows) * vocab <= WHOLE_BATCH_ELEMENTS
        if whole:
            all_base, all_rl = project(base, h_base), project(rl, h_rl)
        metrics: dict[str, list[torch.Tensor]] = {}
        for c in range(0, len(rows), chunk_positions):
            part = slice(c, c + chunk_positions)
            logits_base = all_base[part] if whole else project(base, h_base[part])
            logits_rl = all_rl[part] if whole else project(rl, h_rl[part])
            for name, value in pair_metrics(logits_base, logits_rl, top_p=top_p, max_k=max_k).items():
                metrics.setdefault(name, []).append(value.cpu())
        metrics = {name: parts[0] if len(parts) == 1 else torch.cat(parts) for name, parts in metrics.items()}
        overlap = metrics.pop("topk_overlap")
        tops = {name: metrics.pop(name)[:, :TOP_TOKENS].numpy()
                for name in ("base_top_ids", "base_top_prob", "rl_top_ids", "rl_top_prob")}
        prompt_len = torch.tensor([len(p) for p in prompts[start:stop]])
        lengths = torch.tensor([len(r) for r in responses[start:stop]])
        position = cols - (prompt_len[rows] - 1)
        token_ids = batch.ids[rows, cols + 1]
        distinct, where = token_ids.unique(return_inverse=True)  # name each distinct token once
        frame = {
            "response": (rows + start).numpy(), "position": position.numpy(),
            "rel_position": ((position + 0.5) / lengths[rows]).numpy(), "length": lengths[rows].numpy(),
            "token_id": token_ids.numpy(),
            "token": np.array(tokenizer.convert_ids_to_tokens(distinct.tolist()), dtype=object)[where.numpy()],
            "correct": np.asarray(correct[start:stop], dtype=bool)[rows.numpy()] if correct is not None else None,
            **{name: value.numpy() for name, value in metrics.items()},
            **{f"topk_overlap_{k + 1}": overlap[:, k].numpy() for k in range(overlap.shape[1])},
            **tops,
        }
        frames.append(pl.DataFrame({k: v for k, v in frame.items() if v is not None}))
    return pl.concat(frames)
