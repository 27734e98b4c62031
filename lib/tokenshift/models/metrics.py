"""Per-position metrics of a model pair, from the logits of both models at the same positions (``[N, V]``).

For each position: JS divergence (full vocabulary and top-p truncated), KL in both directions, both
entropies, the size of both top-p sets (nuclei), top-1 agreement, top-k overlap |top_k(P) & top_k(Q)| / k for
k = 1..10, the rank of the tuned model's top-1 token under the base (0 = also the base's top-1) and its base
probability, and both models' most likely tokens with their probabilities. Work is done in fp32; callers
chunk over positions so memory stays bounded (see ``scoring``).

Speed: at a 152k vocabulary these metrics cost more than the forward passes that produce the logits when
each is computed as its own whole-vocabulary operation (~40 passes over memory). Here the dense part (log-
softmax of both models, the full JS, entropies, KLs and the rank) is one function that ``torch.compile``
fuses into a few loops over the logits, and the top-p JS is computed from the two models' top-16 tokens,
which hold the nucleus of a trained model almost everywhere (rows whose nucleus is wider are done again from
the top 256, then from the whole vocabulary as ``divergence.top_p_js`` does). Without a working compiler the
same function runs eagerly.
"""

from __future__ import annotations

import os
import warnings

import torch

from ..core.behaviour import Version
from .divergence import (LN2, TINY, js_terms, log_probs, probs_from_logp, ranked_threshold, top_p_js,
                         top_p_threshold)

BEHAVIOUR = Version(1)

# Tokens per row searched for the top-p nucleus: first a few, then more, then the whole vocabulary.
FIRST_PROBE, PROBE = 16, 256


class NonFiniteLogits(ValueError):
    """Logits of one row are NaN, +inf or -inf everywhere: no distribution to compare."""

    def __init__(self, row: int):
        super().__init__(f"row {row} of the logits is not a distribution (NaN, +inf, or -inf everywhere)")
        self.row = row


def _dense(base_logits: torch.Tensor, tuned_logits: torch.Tensor):
    """Log-probabilities of both models and the metrics that need the whole vocabulary, in one pass."""
    logp, logq = base_logits.float().log_softmax(-1), tuned_logits.float().log_softmax(-1)
    p, q = probs_from_logp(logp), probs_from_logp(logq)  # 0 for masked tokens (see divergence.LOGP_FLOOR)
    # the three logs are taken the same way, so identical rows give exactly 0
    logm = ((p + q) * 0.5).clamp(min=TINY).log()
    js = 0.5 * ((p * (p.clamp(min=TINY).log() - logm)).sum(-1) + (q * (q.clamp(min=TINY).log() - logm)).sum(-1))
    # in the p-weighted sums a token of probability 0 contributes 0, never 0 * -inf = NaN; KL is +inf only
    # where one model gives probability 0 to a token the other can emit, as it truly is
    weighted = lambda w, x: torch.where(w > 0, w * x, 0.0).sum(-1)
    diff = logp - logq
    base_logp_of_tuned_top1 = logp.gather(-1, tuned_logits.argmax(-1, keepdim=True))
    return (logp, logq, js.clamp(0.0, LN2), -weighted(p, logp), -weighted(q, logq),
            weighted(p, diff).clamp(min=0.0), (-weighted(q, diff)).clamp(min=0.0),
            base_logp_of_tuned_top1.squeeze(-1), (logp > base_logp_of_tuned_top1).sum(-1))


_compiled = torch.compile(_dense, dynamic=True)


def _dense_metrics(base_logits, tuned_logits):
    global _compiled
    if _compiled is not _dense and os.environ.get("TOKENSHIFT_COMPILE", "1") != "0":
        try:
            return _compiled(base_logits, tuned_logits)
        except Exception as e:  # no C++ compiler, an unsupported platform: slower, same metrics
            warnings.warn(f"torch.compile failed ({type(e).__name__}: {str(e)[:200]}); the per-position metrics "
                          "run without it, several times slower")
            _compiled = _dense
    return _dense(base_logits, tuned_logits)


def _nucleus(top_logp: torch.Tensor, top_p: float):
    """From each row's most likely log-probabilities (descending): their probabilities, the top-p threshold
    (as ``divergence.top_p_threshold``), and whether the probe holds the whole kept set, ties included."""
    prob = probs_from_logp(top_logp)
    threshold, n_keep = ranked_threshold(prob, top_p)
    inside = (n_keep.squeeze(-1) < prob.shape[-1]) & (prob[:, -1] < threshold.squeeze(-1))
    return prob, threshold, inside


def _probe_js(logp, logq, top_p: float, probe_p, probe_q):
    """Top-p JS from each model's most likely tokens (``topk`` values and indices), and per row whether the
    probes held both kept sets. The union of the two kept sets is p's kept tokens plus q's kept tokens that
    p did not keep."""
    (vp, ip), (vq, iq) = probe_p, probe_q
    P, thr_p, inside_p = _nucleus(vp, top_p)
    Q, thr_q, inside_q = _nucleus(vq, top_p)
    keep_p, keep_q = P >= thr_p, Q >= thr_q
    q_at_ip = probs_from_logp(logq.gather(-1, ip))
    p_at_iq = probs_from_logp(logp.gather(-1, iq))
    ps = torch.cat([P * keep_p, torch.zeros_like(Q)], -1)
    qs = torch.cat([q_at_ip * (keep_p & (q_at_ip >= thr_q)), Q * (keep_q & (p_at_iq < thr_p))], -1)
    ps = ps / (P * keep_p).sum(-1, keepdim=True)
    qs = qs / (Q * keep_q).sum(-1, keepdim=True)
    return js_terms(ps, qs).sum(-1).clamp(0.0, LN2), inside_p & inside_q


def _top_p_js(logp, logq, top_p: float, probe_p, probe_q) -> torch.Tensor:
    """Top-p JS per row: from the given probes where they hold the nucleus (a trained model's usually has a
    few tokens), else from the top ``PROBE`` tokens, else (flat rows) from the whole vocabulary."""
    js, inside = _probe_js(logp, logq, top_p, probe_p, probe_q)
    rows = (~inside).nonzero().squeeze(-1)
    k = min(PROBE, logp.shape[-1])
    if len(rows) and k > probe_p.values.shape[-1]:
        sub_p, sub_q = logp[rows], logq[rows]
        wider, inside = _probe_js(sub_p, sub_q, top_p, sub_p.topk(k, dim=-1), sub_q.topk(k, dim=-1))
        js[rows[inside]] = wider[inside]
        rows = rows[~inside]
    if len(rows):
        js[rows] = top_p_js(log_probs(logp[rows])[1], log_probs(logq[rows])[1], top_p)
    return js


def _nucleus_size(logp: torch.Tensor, probe, top_p: float) -> torch.Tensor:
    """How many tokens each row's top-p set holds (ties with its last token included), counted in the probe
    where it holds the set, else over the whole vocabulary."""
    if top_p >= 1.0:
        return (logp > float("-inf")).sum(-1)
    prob, threshold, inside = _nucleus(probe.values, top_p)
    size = (prob >= threshold).sum(-1)
    rows = (~inside).nonzero().squeeze(-1)
    if len(rows):
        p = probs_from_logp(logp[rows])
        size[rows] = (p >= top_p_threshold(p, top_p)).sum(-1)
    return size


def pair_metrics(base_logits: torch.Tensor, tuned_logits: torch.Tensor, top_p: float = 0.7,
                 max_k: int = 10) -> dict[str, torch.Tensor]:
    """All per-position metrics for one chunk of positions; logits ``[N, V]`` of the same vocabulary."""
    if base_logits.shape != tuned_logits.shape:
        raise ValueError(f"logit shapes differ: {tuple(base_logits.shape)} vs {tuple(tuned_logits.shape)}")
    logp, logq, js, *dense = _dense_metrics(base_logits, tuned_logits)
    broken = torch.isnan(js).nonzero()  # what NaN, +inf or all -inf logits give; checked on [N], not [N, V]
    if len(broken):
        raise NonFiniteLogits(int(broken[0, 0]))
    entropy_p, entropy_q, kl_pq, kl_qp, base_logp_of_tuned_top1, rank = dense
    vocab = logp.shape[-1]
    k = min(max_k, vocab)
    probe = min(max(FIRST_PROBE, k), vocab)
    probe_p, probe_q = logp.topk(probe, dim=-1), logq.topk(probe, dim=-1)
    top_base, top_tuned = probe_p.indices[:, :k], probe_q.indices[:, :k]
    # overlap of the two top-k sets for every k at once: base's j-th token, found at RL's rank r, is in both
    # top-kk sets from kk = max(j, r) + 1 on; a histogram of those first ranks, summed up, counts them all
    ranks = torch.arange(k, device=logp.device)
    match = top_base[:, :, None] == top_tuned[:, None, :]  # [N, k(base), k(rl)]; a token appears once per row
    r = torch.where(match.any(-1), match.int().argmax(-1), k)
    first = torch.maximum(r, ranks)
    hist = torch.zeros(len(first), k + 1, device=logp.device).scatter_add_(1, first, torch.ones_like(first, dtype=torch.float))
    overlap = hist.cumsum(-1)[:, :k] / (ranks + 1)
    prob = probs_from_logp
    return {
        "js": js,
        "js_top_p": _top_p_js(logp, logq, top_p, probe_p, probe_q) if top_p < 1.0 else js,
        "entropy_base": entropy_p, "entropy_tuned": entropy_q, "kl_base_tuned": kl_pq, "kl_tuned_base": kl_qp,
        "top1_agree": top_base[:, 0] == top_tuned[:, 0],
        "tuned_top1_base_rank": rank,
        "tuned_top1_base_prob": base_logp_of_tuned_top1.exp(),
        "nucleus_base": _nucleus_size(logp, probe_p, top_p), "nucleus_tuned": _nucleus_size(logq, probe_q, top_p),
        "topk_overlap": overlap,  # [N, k]: column j is the overlap of the top-(j+1) sets
        "base_top_ids": top_base, "base_top_prob": prob(probe_p.values[:, :k]),  # [N, k], most likely first
        "tuned_top_ids": top_tuned, "tuned_top_prob": prob(probe_q.values[:, :k]),
    }
