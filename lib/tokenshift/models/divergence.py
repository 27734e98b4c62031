"""Divergences between next-token distributions given as logits or probabilities.

The building blocks every part of the suite shares: probabilities from logits, the JS divergence, and the
one definition of top-p truncation (sampling, cross-sampling and the truncated JS all use it). The
per-position metrics of a scored pair are in ``metrics``. Definitions follow the paper (Meng et al., ICLR 2026, arXiv 2603.22446, its token-level divergence):

- JS divergence with M = (P + Q) / 2, natural log, so 0 <= JS <= ln 2;
- top-p JS: each distribution truncated to the smallest set of tokens whose probability reaches p,
  renormalised, then JS over the union of the two supports (disjoint supports give ln 2).
"""

from __future__ import annotations

import math

import torch

from ..core.behaviour import Version

BEHAVIOUR = Version(1, libraries=("torch",))

LN2 = math.log(2.0)


# A token whose log-probability is below this floor (e^-80, about 1.8e-35) gets probability exactly 0: below it
# exp() underflows into a slow path that made every metric ~10x slower, and a masked token (logit -inf) must
# contribute nothing. Nothing probability-weighted moves at fp32 resolution.
LOGP_FLOOR = -80.0
TINY = torch.finfo(torch.float32).tiny  # smallest normal float: log() of a denormal is slow too


def probs_from_logp(logp: torch.Tensor) -> torch.Tensor:
    """exp(logp), exactly 0 below ``LOGP_FLOOR`` (masked tokens included)."""
    return logp.clamp(min=LOGP_FLOOR).exp().masked_fill(logp < LOGP_FLOOR, 0.0)


def log_probs(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probabilities, probabilities) in fp32 from logits; -inf logits (a masked vocabulary) give
    probability 0."""
    logp = logits.float().log_softmax(-1)
    return logp, probs_from_logp(logp)


def _log_or_tiny(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(min=TINY).log_()  # the clamp only touches exact zeros, whose terms are 0 anyway


def js_terms(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Elementwise terms of JS(P || Q), for small supports given as flat vectors (see ``top_p_js``);
    ``js_divergence`` computes the same sum over whole rows without the temporaries."""
    logm = _log_or_tiny(0.5 * (p + q))
    return 0.5 * (p * (_log_or_tiny(p) - logm)) + 0.5 * (q * (_log_or_tiny(q) - logm))


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) per row of probabilities ``[N, V]``; zero probabilities contribute 0."""
    return torch.special.entr(p).sum(-1)


def js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """JS(P || Q) per row from probabilities ``[N, V]``; entries where a probability is 0 contribute 0.

    All three logs are taken the same way, so identical rows give exactly 0. Written with row-wise dot
    products and reused buffers: at a 152k vocabulary every [N, V] temporary costs memory and time.
    """
    logm = (p + q).mul_(0.5).clamp_(min=TINY).log_()
    js = torch.linalg.vecdot(p, _log_or_tiny(p).sub_(logm))
    js += torch.linalg.vecdot(q, _log_or_tiny(q).sub_(logm))
    return (0.5 * js).clamp(0.0, LN2)  # rounding can step a hair outside the bounds


def ranked_threshold(ranked: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """From probabilities sorted descending per row: (threshold, number kept), both ``[N, 1]``. A token is
    kept when the tokens ranked above it hold less than ``top_p``, so the top-1 always stays."""
    n_keep = ((ranked.cumsum(-1) - ranked) < top_p).sum(-1, keepdim=True)  # mass ranked above < top_p
    return ranked.gather(-1, n_keep - 1), n_keep


def top_p_threshold(p: torch.Tensor, top_p: float, probe: int = 256) -> torch.Tensor:
    """Per row, the smallest probability kept by top-p truncation: the set is ``p >= threshold``.

    The one definition of top-p in the suite (sampling and the truncated JS both use it). A token is kept
    when the tokens ranked above it hold less than ``top_p``, so the top-1 always stays; tokens tied with
    the last kept one are kept too. Only the ``probe`` most likely tokens are sorted; rows whose nucleus is
    wider (flat distributions) fall back to a full sort, so a 152k vocabulary costs a top-k, not a sort.
    """
    k = min(probe, p.shape[-1])
    threshold, n_keep = ranked_threshold(p.topk(k, dim=-1).values, top_p)
    wide = (n_keep == k).squeeze(-1) & (k < p.shape[-1])
    if wide.any():
        threshold[wide] = ranked_threshold(p[wide].sort(dim=-1, descending=True).values, top_p)[0]
    return threshold


def top_p_truncate(p: torch.Tensor, top_p: float) -> torch.Tensor:
    """``p`` truncated to its top-p set and renormalised (exactly 0 outside)."""
    if top_p >= 1.0:
        return p
    kept = p * (p >= top_p_threshold(p, top_p))
    return kept / kept.sum(-1, keepdim=True)


def top_p_js(p: torch.Tensor, q: torch.Tensor, top_p: float) -> torch.Tensor:
    """JS between the top-p truncated, renormalised ``p`` and ``q``, over the union of their supports.

    Computed on the union's entries only (a few per row for a trained model), not the whole vocabulary.
    """
    if top_p >= 1.0:
        return js_divergence(p, q)
    keep_p, keep_q = p >= top_p_threshold(p, top_p), q >= top_p_threshold(q, top_p)
    rows, cols = (keep_p | keep_q).nonzero(as_tuple=True)
    ps, qs = p[rows, cols] * keep_p[rows, cols], q[rows, cols] * keep_q[rows, cols]
    row_sum = lambda x: torch.zeros(p.shape[0], dtype=x.dtype, device=x.device).index_add_(0, rows, x)
    ps, qs = ps / row_sum(ps)[rows], qs / row_sum(qs)[rows]
    return row_sum(js_terms(ps, qs)).clamp(0.0, LN2)
