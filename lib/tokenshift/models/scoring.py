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

from ..core import progress
from ..core.behaviour import Version
from .batching import make_batch
from .loading import check_logits, pad_id
from .metrics import NonFiniteLogits, pair_metrics

BEHAVIOUR = Version(1, libraries=("torch", "transformers"))

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


def _hidden(model, batch, rows, cols) -> torch.Tensor:
    ids, mask = batch.ids.to(model.device), batch.attention_mask.to(model.device)
    return model.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state[rows.to(model.device),
                                                                                    cols.to(model.device)]


def _project(model, hidden, vocab: int, device) -> torch.Tensor:
    """fp32 logits over the tokenizer's vocabulary (padding rows of the output layer dropped) on ``device``."""
    head = model.get_output_embeddings()
    return head(hidden.to(head.weight.device))[:, :vocab].float().to(device)


@torch.no_grad()
def score_pair(base, tuned, tokenizer, prompts: list[list[int]], responses: list[list[int]], top_p: float = 0.7,
               max_k: int = 10, batch_size: int = 16, chunk_positions: int | None = None,
               show_progress: bool = True) -> pl.DataFrame:
    """Per-position metrics of ``base`` vs ``tuned`` on each prompt+response (responses include any EOS token).

    Columns: response (index into ``responses``), position, rel_position ((position + 0.5) / length, in
    (0, 1)), length, token_id, token, and the metrics of ``metrics.pair_metrics`` (top-k overlaps as
    topk_overlap_1..k).
    """
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    empty = [i for i, r in enumerate(responses) if not r]
    if empty:
        raise ValueError(f"responses {empty[:10]} are empty: there is no position to score; drop them first")
    limit = min(base.config.max_position_embeddings, tuned.config.max_position_embeddings)
    vocab = len(tokenizer)
    _allocate_large_blocks_with_mmap()
    chunk_positions = chunk_positions or max(1, CHUNK_ELEMENTS // vocab)
    frames = []
    for start in progress.bar(range(0, len(prompts), batch_size), desc="scoring", unit="batch",
                              disable=not show_progress):
        stop = min(start + batch_size, len(prompts))
        batch = make_batch(prompts[start:stop], responses[start:stop], pad_id(tokenizer), max_len=limit)
        rows, cols = batch.response_mask.nonzero(as_tuple=True)  # positions predicting a response token
        h_base, h_tuned = _hidden(base, batch, rows, cols), _hidden(tuned, batch, rows, cols)
        device = h_base.device  # the metrics run where the base model's last layer is
        project = lambda model, h: _project(model, h, vocab, device)
        whole = len(rows) * vocab <= WHOLE_BATCH_ELEMENTS
        prompt_len = torch.tensor([len(p) for p in prompts[start:stop]])
        position = cols - (prompt_len[rows] - 1)
        if whole:
            all_base, all_tuned = project(base, h_base), project(tuned, h_tuned)
        metrics: dict[str, list[torch.Tensor]] = {}
        for c in range(0, len(rows), chunk_positions):
            part = slice(c, c + chunk_positions)
            logits_base = all_base[part] if whole else project(base, h_base[part])
            logits_tuned = all_tuned[part] if whole else project(tuned, h_tuned[part])
            try:
                values = pair_metrics(logits_base, logits_tuned, top_p=top_p, max_k=max_k)
            except NonFiniteLogits as e:  # name the model and the response
                where = f"response {int(rows[c + e.row]) + start} at position {int(position[c + e.row])}"
                for model, logits in ((base, logits_base), (tuned, logits_tuned)):
                    check_logits(logits[e.row : e.row + 1], model, lambda _: where)
                raise
            for name, value in values.items():
                metrics.setdefault(name, []).append(value.cpu())
        metrics = {name: parts[0] if len(parts) == 1 else torch.cat(parts) for name, parts in metrics.items()}
        overlap = metrics.pop("topk_overlap")
        tops = {name: metrics.pop(name)[:, :TOP_TOKENS].numpy()
                for name in ("base_top_ids", "base_top_prob", "tuned_top_ids", "tuned_top_prob")}
        lengths = torch.tensor([len(r) for r in responses[start:stop]])
        token_ids = batch.ids[rows, cols + 1]
        distinct, where = token_ids.unique(return_inverse=True)  # name each distinct token once
        frame = {
            "response": (rows + start).numpy(), "position": position.numpy(),
            "rel_position": ((position + 0.5) / lengths[rows]).numpy(), "length": lengths[rows].numpy(),
            "token_id": token_ids.numpy(),
            "token": np.array(tokenizer.convert_ids_to_tokens(distinct.tolist()), dtype=object)[where.numpy()],
            **{name: value.numpy() for name, value in metrics.items()},
            **{f"topk_overlap_{k + 1}": overlap[:, k].numpy() for k in range(overlap.shape[1])},
            **tops,
        }
        frames.append(pl.DataFrame(frame))
    return pl.concat(frames)
