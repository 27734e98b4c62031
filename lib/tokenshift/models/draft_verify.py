"""Cross-sampling's decoder: two models decode one response together, by draft and verify; a chunk of one
token is the lockstep (both models one token at a time).

The primary drafts a chunk of k tokens with its KV cache, as plain sampling does; the intervention model reads
the whole chunk in one forward pass (its own KV cache), which gives its next-token distribution at every
position of the chunk. At the first position where the rule fires (JS > eps, or the random control's coin for
that step), that token is drawn from the intervention's distribution instead and the rest of the chunk is
dropped: the dropped slots stay in both caches as holes, masked out of attention (position ids count real
tokens only, so the models see the same sequence). Every kept token is drawn from the distribution the rule
picks given the same prefix, with the response's own uniform number for that step (``sampling.uniforms``), so
the tokens are those of decoding one token at a time, up to floating-point rounding (a chunked forward rounds
differently from a one-token one, which can flip a draw that sits on a boundary). With sparse interventions
(the paper: 1.5-10% of tokens) a round costs k steps of the primary and one forward of the intervention,
against 2k steps one token at a time.

Each response's chunk size adapts to the rate at which the rule fires on it: with per-step rate r a round keeps
E[min(k, G)] = (1 - (1 - r)^k) / r tokens (G geometric), so k maximises that per (k + 1) steps (k drafts and
about one verify pass); dense rules fall back to k = 1. A response's chunks, like its draws, depend on its own
history only, never on the batch.

With a ``drafter`` (an inference engine, ``models.engine.VllmEngine``) the engine drafts each chunk from the
response so far, and the primary reads the chunk in one teacher-forced pass beside the intervention, so both
distributions (full vocabulary, fp32), the JS and the switching rule are the suite's own, exactly as without
the engine. The drafted tokens follow the engine's numerics and random streams (each request seeded from the
run's seed, the response and its step): the same distributions as the primary's, other draws than the suite's.
A handed-over token is still drawn by the suite, with the response's own number for its step.

A rule (``analyses.cross_sampling``'s) answers ``fires(js [B, k], responses [B], steps [B, k], entropy [2, B, k])``
-> [B, k] bool without effect (``entropy``: the primary's and the intervention's, in nats), and is told ``handed(responses)`` once a round keeps a handover; ``responses`` index the
decoded responses (0 .. prompts x n - 1), ``steps`` are positions in each response.
"""

from __future__ import annotations

import math

import torch

from ..core import seeding
from ..core.behaviour import Version
from .divergence import entropy, js_divergence, log_probs, top_p_js
from .kv_cache import PreallocatedLayer, forward, new_cache
from .loading import check_logits
from .sampling import (COMPACT_SHARE, Decoding, Samples, check_settings, collect, draw, left_pad, positions,
                       response_numbers, uniforms)

BEHAVIOUR = Version(1, libraries=("torch", "transformers"))
CHUNKS = (1, 2, 4, 8, 16, 32)  # chunk sizes the adaptation chooses from
FIRST_CHUNK = 4  # a response's first guess, before its own rate says more


def best_chunks(fired: torch.Tensor, examined: torch.Tensor, largest: int) -> torch.Tensor:
    """Per response, the chunk size of ``CHUNKS`` (at most ``largest``) that keeps the most tokens per step of
    work at the rate its rule fired so far (``fired`` handovers in ``examined`` kept steps); ``FIRST_CHUNK`` (at
    most ``largest``) before it has kept any."""
    sizes = torch.tensor([k for k in CHUNKS if k <= largest] or [1], dtype=torch.float64)
    rate = (fired / examined.clamp(min=1)).double()[:, None]
    kept = torch.where(rate > 0, (1 - (1 - rate) ** sizes) / rate.clamp(min=1e-12), sizes)
    best = sizes[(kept / (sizes + 1)).argmax(1)].long()
    return torch.where(examined > 0, best, min(FIRST_CHUNK, largest))


class _GrowingLayer(PreallocatedLayer):
    """A preallocated KV cache layer that doubles its buffers when a round needs more slots than it has (the
    dropped ends of chunks stay as masked holes, so slots outnumber tokens)."""

    def update(self, key_states, value_states, *args, **kwargs):
        if self.is_initialized and self.filled + key_states.shape[-2] > self.buffers[0].shape[-2]:
            grown = []
            for buffer in self.buffers:
                bigger = buffer.new_empty((*buffer.shape[:2], 2 * buffer.shape[2] + key_states.shape[-2],
                                           buffer.shape[-1]))
                bigger[:, :, : self.filled] = buffer[:, :, : self.filled]
                grown.append(bigger)
            self.buffers = tuple(grown)
        return super().update(key_states, value_states, *args, **kwargs)


@torch.no_grad()
def draft_verify(primary, intervention, prompts: list[list[int]], rule, decoding: Decoding, *, n: int = 1,
                 batch_size: int = 256, max_chunk: int = 32, drafter=None, responses=None) -> Samples:
    """Cross-sample ``n`` responses to each prompt with ``rule`` (see the module's docstring), by draft and verify
    with chunks of at most ``max_chunk`` tokens (1: the lockstep), switching on ``decoding.js_top_p`` JS. Returns
    ``Samples`` with the JS and the handovers of every kept step. ``responses`` numbers the responses in the run
    (prompt-major; default 0, 1, ...): response r draws from stream (seed, r), as ``sampling.decode``'s does.

    ``drafter``: None (the primary drafts) or an engine that drafts for it, with
    ``draft(prefixes, lengths, seeds, decoding)`` -> per prefix (a list of token ids) up to its length of new
    tokens, ending early only on a stop token, which it keeps."""
    check_settings(prompts, n, batch_size)
    if isinstance(max_chunk, bool) or not isinstance(max_chunk, int) or max_chunk < 1:
        raise ValueError(f"max_chunk must be an integer of at least 1, got {max_chunk!r}")
    jobs = [i for i in range(len(prompts)) for _ in range(n)]
    numbers = response_numbers(responses, len(jobs))
    out = Samples(prompt_index=jobs, response_ids=[], stopped=[], stop_token=[])
    for start in range(0, len(jobs), batch_size):
        rows = list(range(start, min(start + batch_size, len(jobs))))
        _batch((primary, intervention), [prompts[jobs[r]] for r in rows], torch.tensor(rows),
               [numbers[r] for r in rows], uniforms(decoding.seed, [numbers[r] for r in rows],
                                                    decoding.max_new_tokens), rule, decoding, max_chunk, drafter, out)
    return out


def _forward(model, ids, mask, cache, vocab, device=None):
    """The model's fp32 logits for ``ids`` on ``device`` (default: where they come out), as in the lockstep:
    no [batch, vocabulary] tensor crosses to the CPU."""
    logits = forward(model, ids, mask, positions(mask)[:, -ids.shape[1] :], cache)
    return logits[..., :vocab].float().to(device or logits.device)


def _batch(models, prompts, rows, numbers, uniform, rule, decoding: Decoding, max_chunk: int, drafter,
           out: Samples) -> None:
    d = decoding
    max_new, pad, vocab, temperature, top_p, js_top_p = (d.max_new_tokens, d.pad_id, d.vocab_size, d.temperature,
                                                         d.top_p, d.js_top_p)
    stop_ids = torch.tensor(sorted(d.stop_ids))
    ids, mask = left_pad(prompts, pad)
    size = len(prompts)
    caches = [new_cache(m, ids.shape[1] + 2 * max_new, _GrowingLayer) for m in models]
    pending, mask = ids[:, -1].clone(), mask[:, :-1]  # each row's last token, not yet in the caches
    if mask.shape[1]:  # both caches read the prompt but its last token, which each round feeds first
        for model, cache in zip(models, caches):
            _forward(model, ids[:, :-1], mask, cache, vocab)
    live = torch.arange(size)  # batch rows the caches hold, in their order
    length = torch.zeros(size, dtype=torch.long)  # tokens kept per batch row
    done = torch.zeros(size, dtype=torch.bool)
    tokens = torch.full((size, max_new), pad, dtype=torch.long)
    chosen = torch.zeros((size, max_new), dtype=torch.bool)
    changed = torch.zeros((size, max_new), dtype=torch.bool)
    divergence = torch.zeros((size, max_new))
    entropies = torch.zeros((2, size, max_new))  # the primary's and the intervention's at each kept step
    fired = torch.zeros(size, dtype=torch.long)  # handovers kept per batch row
    while not done.all():
        # each running row's own chunk size; the round drafts the largest, and a row keeps at most its own
        wants = torch.where(done[live], 0, best_chunks(fired[live], length[live], max_chunk).clamp(max=max_new))
        k = int(wants.max())
        t0 = length[live]
        steps = t0[:, None] + torch.arange(k)  # each row's response positions in this chunk
        u = uniform[live[:, None], steps.clamp(max=max_new - 1)]
        running = ~done[live]
        if drafter is None:
            # draft: the primary, k tokens, one at a time with its cache; the draws and the divergence run where its
            # logits come out (as in plain sampling: the CPU's uniform numbers, the device's arithmetic)
            drafts, p_logits, step_ids = [], [], pending[live][:, None]
            for i in range(k):
                mask = torch.cat([mask, mask.new_ones(len(mask), 1)], dim=1)
                logits = _forward(models[0], step_ids, mask, caches[0], vocab)[:, -1]
                device = logits.device
                check_logits(logits[running.to(device)], models[0],
                             lambda r: f"a response at step {int(steps[r, i])}")
                drafts.append(draw(logits, temperature, top_p, u[:, i : i + 1].to(device)))
                p_logits.append(logits)
                step_ids = drafts[-1][:, None]
            drafts, p_logits = torch.stack(drafts, 1).cpu(), torch.stack(p_logits, 1)
            chunk = torch.cat([pending[live][:, None], drafts[:, :-1]], dim=1)
        else:
            # the engine drafts from each running response so far; the primary then reads the chunk in one pass
            wanted = torch.where(running, torch.minimum(max_new - t0, wants), 0)
            drafts = _engine_drafts(drafter, [prompts[r] + tokens[r, : length[r]].tolist() for r in live.tolist()],
                                    wanted, [seeding.derive(d.seed, "engine draft", numbers[r], int(length[r]))
                                             for r in live.tolist()], k, d)
            mask = torch.cat([mask, mask.new_ones(len(mask), k)], dim=1)
            chunk = torch.cat([pending[live][:, None], drafts[:, :-1]], dim=1)
            p_logits = _forward(models[0], chunk, mask, caches[0], vocab)
            device = p_logits.device
            check_logits(p_logits[running.to(device)].flatten(0, 1), models[0],
                         lambda r: "a response in a drafted chunk")
        # verify: the intervention reads [pending, d_0 .. d_(k-2)] in one pass (the same slots as the primary)
        q_logits = _forward(models[1], chunk, mask, caches[1], vocab, device)
        check_logits(q_logits[running.to(device)].flatten(0, 1), models[1],
                     lambda r: "a response in a verified chunk")
        p, q = (log_probs(x.flatten(0, 1))[1] for x in (p_logits, q_logits))
        js = (top_p_js(p, q, js_top_p) if js_top_p < 1.0 else js_divergence(p, q)).view(len(live), k).cpu()
        h = torch.stack([entropy(p), entropy(q)]).view(2, len(live), k).cpu()
        # which positions count: within the length limit and up to each row's first stop token
        stops = torch.isin(drafts, stop_ids)
        valid = ((steps < max_new) & (torch.cumsum(stops.long(), 1) - stops.long() < 1) & running[:, None]
                 & (torch.arange(k) < wants[:, None]))
        fire = rule.fires(js, rows[live], steps, h) & valid
        first = torch.where(fire.any(1), fire.float().argmax(1), valid.sum(1))  # first handover, else the count
        handed = fire.any(1)
        kept = first + handed  # tokens this round keeps per row
        fired[live] += handed
        # the handed-over token: the intervention's draw with the step's own number
        at = first.clamp(max=k - 1)
        at_device = at.to(device)
        step_u = u.gather(1, at[:, None]).to(device)
        swapped = draw(q_logits[torch.arange(len(live), device=device), at_device], temperature, top_p, step_u).cpu()
        # the primary's draw with the step's number (the engine's draft came from its own stream), so "changed"
        # means what it means without the engine
        own = drafts.gather(1, at[:, None]).squeeze(1) if drafter is None else draw(
            p_logits[torch.arange(len(live), device=device), at_device], temperature, top_p, step_u).cpu()
        new = torch.where(handed, swapped, own)
        row_tokens = torch.where(torch.arange(k) == first[:, None], new[:, None], drafts)
        keep = torch.arange(k) < kept[:, None]
        at_rows, at_steps = live[:, None].expand(-1, k)[keep], steps[keep]
        tokens[at_rows, at_steps], divergence[at_rows, at_steps] = row_tokens[keep], js[keep]
        entropies[:, at_rows, at_steps] = h[:, keep]
        chosen[live[handed], (t0 + first)[handed]] = True
        changed[live[handed], (t0 + first)[handed]] = (new != own)[handed]
        rule.handed(rows[live[handed]])
        # the chunk's slots hold [pending, d_0 .. d_(k-2)]: a row keeps the first `kept` of them (the pending token
        # and all its kept tokens but the last, which becomes the next pending one); the rest become holes
        mask[:, -k:] = (torch.arange(k) < kept[:, None]).long()
        moved = kept > 0
        pending[live[moved]] = row_tokens[moved, kept[moved] - 1]
        length[live] += kept
        done[live] |= moved & (torch.isin(pending[live], stop_ids) | (length[live] >= max_new))
        running = ~done[live]
        if (~running).sum() >= COMPACT_SHARE * len(live) and running.any():
            index = running.nonzero().squeeze(-1)
            for cache in caches:
                for layer in cache.layers:
                    layer.keep(index)
            live, mask = live[index], mask[index]
    collect(out, tokens, d.stop_ids, (chosen, divergence, changed, *entropies))


def _engine_drafts(drafter, prefixes, wanted, seeds, k, decoding: Decoding) -> torch.Tensor:
    """The drafter's tokens for each prefix (``wanted`` of them; 0: none, a finished row), as [rows, k] padded
    ids; refuses a draft that is short without a stop, or holds an id outside the vocabulary."""
    stops, vocab, wanted = decoding.stop_ids, decoding.vocab_size, wanted.tolist()
    ask = [i for i, w in enumerate(wanted) if w]
    drafted = drafter.draft([prefixes[i] for i in ask], [wanted[i] for i in ask], [seeds[i] for i in ask], decoding)
    drafts = torch.full((len(prefixes), k), decoding.pad_id, dtype=torch.long)
    for i, ids in zip(ask, drafted, strict=True):
        ended = bool(ids) and ids[-1] in stops
        if len(ids) > wanted[i] or (len(ids) < wanted[i] and not ended) or \
                any(not 0 <= t < (vocab or math.inf) for t in ids):
            raise RuntimeError(f"the engine drafted {ids} for {wanted[i]} new tokens after {len(prefixes[i])} "
                               f"(vocabulary of {vocab}): a draft must have that many ids in the vocabulary, fewer "
                               "only when it ends on a stop token; is the engine's max_model_len shorter than the "
                               "prompt plus max_new_tokens?")
        drafts[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return drafts
