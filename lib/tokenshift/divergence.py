"""Per-position divergence metrics between two next-token distributions given as logits.

Every function takes logits of the base and the RL model at the same positions, ``[N, V]``, and returns
one value (or one row) per position. Work is done in fp32 log-space; callers chunk over positions so that
memory stays bounded (see ``scoring``). Definitions follow the paper (shared/paper.md):

- JS divergence with M = (P + Q) / 2, natural log, so 0 <= JS <= ln 2;
- top-p JS: each distribution truncated to the smallest set of tokens whose probability reaches p,
  renormalised, then JS over the union of the two supports (disjoint supports give ln 2);
- KL in both directions, entropies, top-1 agreement, top-k overlap |top_k(P) & top_k(Q)| / k, the rank of
  the RL model's top-1 token under the base (0 = also the base's top-1), and its base probability.
"""

from __future__ import annotations

import math

import torch

LN2 = math.log(2.0)


def _xlogy_diff(p: torch.Tensor, logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """sum_v p (log p - log q), with 0 log 0 = 0 (so -inf log-probabilities where p = 0 do no harm)."""
    terms = p * (logp - logq)
    return torch.where(p > 0, terms, torch.zeros_like(terms)).sum(-1)


def js_from_logprobs(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """JS(P || Q) from log-probabilities (which may be -inf outside a support)."""
    logm = torch.logaddexp(logp, logq) - LN2
    js = 0.5 * _xlogy_diff(logp.exp(), logp, logm) + 0.5 * _xlogy_diff(logq.exp(), logq, logm)
    return js.clamp(0.0, LN2)  # rounding can step a hair outside the bounds


def kl_from_logprobs(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    return _xlogy_diff(logp.exp(), logp, logq).clamp(min=0.0)


def entropy_from_logprobs(logp: torch.Tensor) -> torch.Tensor:
    p = logp.exp()
    return -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(-1)


def top_p_logprobs(logp: torch.Tensor, top_p: float) -> torch.Tensor:
    """Log-probabilities truncated to the smallest set reaching ``top_p`` and renormalised (-inf outside).

    The one definition of top-p in the suite: sampling uses it too, so "the set a sampler could pick" and
    "the support of the truncated distribution" are always the same tokens.
    """
    if top_p >= 1.0:
        return logp
    sorted_logp, order = logp.sort(dim=-1, descending=True)
    # drop a token when the tokens ranked above it already reach top_p (so the top-1 always stays)
    before = sorted_logp.exp().cumsum(-1) - sorted_logp.exp()
    drop = (before >= top_p).scatter(-1, order, before >= top_p)
    kept = logp.masked_fill(drop, float("-inf"))
    return kept - kept.logsumexp(-1, keepdim=True)


def pair_metrics(base_logits: torch.Tensor, rl_logits: torch.Tensor, top_p: float = 0.7,
                 max_k: int = 10) -> dict[str, torch.Tensor]:
    """All per-position metrics for one chunk of positions; logits ``[N, V]`` of the same vocabulary."""
    if base_logits.shape != rl_logits.shape:
        raise ValueError(f"logit shapes differ: {tuple(base_logits.shape)} vs {tuple(rl_logits.shape)}")
    logp = base_logits.float().log_softmax(-1)
    logq = rl_logits.float().log_softmax(-1)
    k = min(max_k, logp.shape[-1])
    top_base = logp.topk(k, dim=-1).indices
    top_rl = logq.topk(k, dim=-1).indices
    rl_top1 = top_rl[:, :1]
    base_logp_of_rl_top1 = logp.gather(-1, rl_top1)
    # overlap of the two top-k sets for every k at once: is base's j-th token among RL's top k?
    in_rl = top_base[:, :, None] == top_rl[:, None, :]  # [N, k(base), k(rl)]
    ks = torch.arange(1, k + 1)
    overlap = torch.stack([in_rl[:, :kk, :kk].any(-1).sum(-1) for kk in ks], dim=-1).float() / ks
    return {
        "js": js_from_logprobs(logp, logq),
        "js_top_p": js_from_logprobs(top_p_logprobs(logp, top_p), top_p_logprobs(logq, top_p)),
        "kl_base_rl": kl_from_logprobs(logp, logq),
        "kl_rl_base": kl_from_logprobs(logq, logp),
        "entropy_base": entropy_from_logprobs(logp),
        "entropy_rl": entropy_from_logprobs(logq),
        "top1_agree": (top_base[:, 0] == top_rl[:, 0]),
        "rl_top1_base_rank": (logp > base_logp_of_rl_top1).sum(-1),
        "rl_top1_base_prob": base_logp_of_rl_top1.squeeze(-1).exp(),
        "topk_overlap": overlap,  # [N, k]: column j is the overlap of the top-(j+1) sets
    }
