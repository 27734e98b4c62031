"""Per-position metrics of a model pair, from the logits of both models at the same positions (``[N, V]``).

For each position: JS divergence (full vocabulary and top-p truncated), KL in both directions, both
entropies, top-1 agreement, top-k overlap |top_k(P) & top_k(Q)| / k for k = 1..10, the rank of the RL
model's top-1 token under the base (0 = also the base's top-1) and its base probability, and both models'
most likely tokens with their probabilities. Work is done in fp32; callers chunk over positions so memory
stays bounded (see ``scoring``).

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

from .divergence import LN2, LOGP_FLOOR, TINY, js_terms, log_probs, ranked_threshold, top_p_js

# Tokens per row searched for the top-p nucleus: first a few, then more, then the whole vocabulary.
FIRST_PROBE, PROBE = 16, 256


def _dense(base_logits: torch.Tensor, rl_logits: torch.Tensor):
    """Log-probabilities of both models and the metrics that need the whole vocabulary, in one pass."""
    logp, logq = base_logits.float().log_softmax(-1), rl_logits.float().log_softmax(-1)
    p, q = logp.clamp(min=LOGP_FLOOR).exp(), logq.clamp(min=LOGP_FLOOR).exp()  # see divergence.LOGP_FLOOR
    # the three logs are taken the same way, so identical rows give exactly 0
    logm = ((p + q) * 0.5).clamp(min=TINY).log()
    js = 0.5 * ((p * (p.clamp(min=TINY).log() - logm)).sum(-1) + (q * (q.clamp(min=TINY).log() - logm)).sum(-1))
    diff = logp - logq
    base_logp_of_rl_top1 = logp.gather(-1, rl_logits.argmax(-1, keepdim=True))
    return (logp, logq, js.clamp(0.0, LN2), -(p * logp).sum(-1), -(q * logq).sum(-1),
            (p * diff).sum(-1).clamp(min=0.0), (-(q * diff).sum(-1)).clamp(min=0.0),
            base_logp_of_rl_top1.squeeze(-1), (logp > base_logp_of_rl_top1).sum(-1))


_compiled = torch.compile(_dense, dynamic=True)


def _dense_metrics(base_logits, rl_logits):
    global _compiled
    if _compiled is not _dense and os.environ.get("TOKENSHIFT_COMPILE", "1") != "0":
        try:
            return _compiled(base_logits, rl_logits)
        except Exception as e:  # no C++ compiler, an unsupported platform: slower, same metrics
            warnings.warn(f"torch.compile failed ({type(e).__name__}: {str(e)[:200]}); the per-position metrics "
                          "run without it, several times slower")
            _compiled = _dense
    return _dense(base_logits, rl_logits)


def _nucleus(top_logp: torch.Tensor, top_p: float):
    """From each row's most likely log-probabilities (descending): their probabilities, the top-p threshold
    (as ``divergence.top_p_threshold``), and whether the probe holds the whole kept set, ties included."""
    prob = top_logp.clamp(min=LOGP_FLOOR).exp()
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
    q_at_ip = logq.gather(-1, ip).clamp(min=LOGP_FLOOR).exp()
    p_at_iq = logp.gather(-1, iq).clamp(min=LOGP_FLOOR).exp()
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


def pair_metrics(base_logits: torch.Tensor, rl_logits: torch.Tensor, top_p: float = 0.7,
                 max_k: int = 10) -> dict[str, torch.Tensor]:
    """All per-position metrics for one chunk of positions; logits ``[N, V]`` of the same vocabulary."""
    if base_logits.shape != rl_logits.shape:
        raise ValueError(f"logit shapes differ: {tuple(base_logits.shape)} vs {tuple(rl_logits.shape)}")
    logp, logq, js, *dense = _dense_metrics(base_logits, rl_logits)
    entropy_p, entropy_q, kl_pq, kl_qp, base_logp_of_rl_top1, rank = dense
    vocab = logp.shape[-1]
    k = min(max_k, vocab)
    probe = min(max(FIRST_PROBE, k), vocab)
    probe_p, probe_q = logp.topk(probe, dim=-1), logq.topk(probe, dim=-1)
    top_base, top_rl = probe_p.indices[:, :k], probe_q.indices[:, :k]
    # overlap of the two top-k sets for every k at once: base's j-th token, found at RL's rank r, is in both
    # top-kk sets from kk = max(j, r) + 1 on; a histogram of those first ranks, summed up, counts them all
    ranks = torch.arange(k, device=logp.device)
    match = top_base[:, :, None] == top_rl[:, None, :]  # [N, k(base), k(rl)]; a token appears once per row
    r = torch.where(match.any(-1), match.int().argmax(-1), k)
    first = torch.maximum(r, ranks)
    hist = torch.zeros(len(first), k + 1, device=logp.device).scatter_add_(1, first, torch.ones_like(first, dtype=torch.float))
    overlap = hist.cumsum(-1)[:, :k] / (ranks + 1)
    prob = lambda top_logp: top_logp.clamp(min=LOGP_FLOOR).exp()
    return {
        "js": js,
        "js_top_p": _top_p_js(logp, logq, top_p, probe_p, probe_q) if top_p < 1.0 else js,
        "entropy_base": entropy_p, "entropy_rl": entropy_q, "kl_base_rl": kl_pq, "kl_rl_base": kl_qp,
        "top1_agree": top_base[:, 0] == top_rl[:, 0],
        "rl_top1_base_rank": rank,
        "rl_top1_base_prob": base_logp_of_rl_top1.exp(),
        "topk_overlap": overlap,  # [N, k]: column j is the overlap of the top-(j+1) sets
        "base_top_ids": top_base, "base_top_prob": prob(probe_p.values[:, :k]),  # [N, k], most likely first
        "rl_top_ids": top_rl, "rl_top_prob": prob(probe_q.values[:, :k]),
    }
