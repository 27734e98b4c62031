"""Cross-sampling with both models in the engine (``engine.VllmEngine``): the handovers of ``draft_verify``,
decided by the same rules, at an engine's speed and without the suite's copies of the models.

Each round, for every running response: the primary's engine drafts a chunk of k tokens and returns, at each drafted
position, its ``listed`` most likely next ids with their log-probabilities; the intervention's engine decodes the
same chunk as forced tokens (``forced_tokens``: the response so far read from its prefix cache, only the chunk
computed) and returns the same at each of those positions. The top-p JS at a position is exact from these lists when
each model's listed ids hold at least p of its mass: its top-p set (``divergence.top_p_threshold``'s definition: a
token is kept while the mass ranked above it is below p) lies inside them then. Where they do not, that model's
whole distribution there is fetched with one more request (one generated token, every id's log-probability, the
prefix read from the engine's prefix cache), and the share of positions decided that way is counted (``Work``). The
rule (``fires``, ``handed``, as ``draft_verify`` calls it) hands the first firing position of the chunk to the
intervention: its token there is drawn from the intervention's listed ids where they decide it (greedy, or
temperature 1 with the top-p set inside them: ``drawn``), else by its engine; the rest of the chunk is dropped, and
the chunk size adapts, per response, to the rate at which the rule fires on it (``draft_verify.best_chunks``).

Random numbers: each request, and each handover's uniform number, is seeded from the run's seed, the response and
its step (a draft at step t, a handover at step t), never from a batch's position, so a response's tokens do not
depend on which others run with it. They are the engine's draws: the same distributions as the suite's decoder,
other tokens; under greedy decoding the tokens and handovers are the lockstep's. "Changed" compares the handed-over
token with the primary's own draft at that step.

The engine's log-probabilities are of the raw output layer (``logprobs_mode`` "raw_logprobs", vLLM's default),
over all its rows: rows past the tokenizer (padding) are included there, and carry a share of the mass that is
negligible in real checkpoints (their rows score far below any token's). Full-vocabulary JS is not offered here:
it needs every id at every position, which the suite's own backends compute in one pass.
"""

from __future__ import annotations

import math
import random

import torch

from ..core import seeding
from ..core.behaviour import Version
from .divergence import LN2
from .draft_verify import best_chunks
from .sampling import Decoding, Samples, check_settings, response_numbers, split_at_stop

BEHAVIOUR = Version(1)  # vLLM's own version enters the keys of the runs that use it (``cross_sampling.sweep``)
LISTED = 20  # ids per position asked of the engines: vLLM's default max_logprobs


def nucleus(listed: dict[int, float], p: float, vocab_size: int, whole: bool = False) -> dict[int, float] | None:
    """The top-p set of a distribution over the ``vocab_size`` tokens, known by its most likely output rows (id
    -> log-probability over every row; ``whole``: all of them), renormalised; None when the listed tokens hold
    less than ``p``, so that the set may reach past them. Rows past the vocabulary (padding) leave the
    distribution as the suite's decoder leaves them out: exactly where all rows are listed, else on the
    assumption that the unlisted ones carry no mass (true of real checkpoints, whose padding rows score far
    below every token)."""
    tokens = {t: math.exp(lp) for t, lp in listed.items() if t < vocab_size}
    mass = sum(tokens.values()) if whole else 1.0 - sum(math.exp(lp) for t, lp in listed.items() if t >= vocab_size)
    ranked = sorted(((t, prob / mass) for t, prob in tokens.items()), key=lambda item: -item[1])
    if sum(prob for _, prob in ranked) < p:
        return None
    kept, above = {}, 0.0
    for token, prob in ranked:
        if above >= p:
            break
        kept[token], above = prob, above + prob
    return {token: prob / above for token, prob in kept.items()}


def drawn(listed: dict[int, float], temperature: float, top_p: float, vocab_size: int, uniform: float) -> int | None:
    """The token drawn with ``uniform`` from a distribution known by its most likely rows, as the sampler would
    draw it: greedy (temperature 0) the most likely token; at temperature 1 from its top-p set; None where the
    listed rows cannot decide (another temperature, or a top-p set that may reach past them)."""
    tokens = {t: lp for t, lp in listed.items() if t < vocab_size}
    if temperature == 0:
        return max(tokens, key=lambda t: (tokens[t], -t))
    kept = nucleus(listed, top_p, vocab_size) if temperature == 1 else None
    if kept is None:
        return None
    total = 0.0
    for token, prob in sorted(kept.items(), key=lambda item: (-item[1], item[0])):
        total += prob
        if uniform < total:
            return token
    return token  # rounding left the cumulative sum a hair under 1


def js(a: dict[int, float], b: dict[int, float]) -> float:
    """JS between two distributions given as id -> probability, over the union of their supports."""
    total = 0.0
    for token in a.keys() | b.keys():
        x, y = a.get(token, 0.0), b.get(token, 0.0)
        m = 0.5 * (x + y)
        total += (x * math.log(x / m) if x else 0.0) + (y * math.log(y / m) if y else 0.0)
    return min(max(0.5 * total, 0.0), LN2)


def engine_cross_sample(primary, intervention, prompts: list[list[int]], rule, decoding: Decoding, *, n: int = 1,
                        max_chunk: int = 32, listed: int = LISTED, responses=None) -> Samples:
    """Cross-sample ``n`` responses to each prompt with two engines (``primary`` drafts, ``intervention``
    verifies and takes the handed-over steps) and ``rule`` (``analyses.cross_sampling``'s rules), deciding on
    top-p JS (``decoding.js_top_p`` < 1). Returns ``Samples`` with the JS and the handovers of every kept step, as
    ``draft_verify`` does; ``responses`` numbers the responses in the run, which seeds their requests."""
    check_settings(prompts, n, 1)
    max_new_tokens, seed, js_top_p = decoding.max_new_tokens, decoding.seed, decoding.js_top_p
    if not 0 < js_top_p < 1:
        raise ValueError(f"the engine decides on top-p JS (0 < js_top_p < 1), got {js_top_p}: full-vocabulary JS "
                         "needs every id at every position; cross-sample it with the suite's models (method draft)")
    if max_chunk < 1 or listed < 1:
        raise ValueError(f"max_chunk and listed must be at least 1, got {max_chunk} and {listed}")
    jobs = [i for i in range(len(prompts)) for _ in range(n)]
    size, stops, numbers = len(jobs), decoding.stop_ids, response_numbers(responses, len(jobs))
    kept = [[] for _ in range(size)]
    chosen, divergence, changed = ([[] for _ in range(size)] for _ in range(3))
    fired = torch.zeros(size, dtype=torch.long)  # handovers kept per response
    live = list(range(size))
    while live:
        prefixes = [prompts[jobs[r]] + kept[r] for r in live]
        chunks = best_chunks(fired[live], torch.tensor([len(kept[r]) for r in live]), max_chunk).tolist()
        drafted = primary.draft(prefixes, [min(k, max_new_tokens - len(kept[r])) for k, r in zip(chunks, live)],
                                [seeding.derive(seed, "engine draft", numbers[r], len(kept[r])) for r in live],
                                decoding, logprobs=listed)
        read = intervention.force(prefixes, [ids for ids, _ in drafted], listed)
        scores = _divergences(primary, intervention, prefixes, drafted, read, [numbers[r] for r in live], decoding)
        width = max(len(ids) for ids, _ in drafted)
        table = torch.zeros(len(live), width)
        valid = torch.zeros(len(live), width, dtype=torch.bool)
        for i, row in enumerate(scores):
            table[i, : len(row)], valid[i, : len(row)] = torch.tensor(row), True
        rows, steps = torch.tensor(live), torch.tensor([len(kept[r]) for r in live])[:, None] + torch.arange(width)
        fire = rule.fires(table, rows, steps, None) & valid  # no entropies: the engines list top tokens only
        first = {i: int(fire[i].float().argmax()) for i in range(len(live)) if fire[i].any()}
        # the handed-over token: drawn from the intervention's listed ids where they decide it, else by its engine
        seeds = {i: seeding.derive(seed, "engine handover", numbers[live[i]], len(kept[live[i]]) + at)
                 for i, at in first.items()}
        swapped = {i: drawn(read[i][at], decoding.temperature, decoding.top_p, decoding.vocab_size,
                            random.Random(seeds[i]).random())
                   for i, at in first.items()}
        undecided = [i for i, token in swapped.items() if token is None]
        swapped.update(zip(undecided, intervention.next_token(
            [prefixes[i] + drafted[i][0][: first[i]] for i in undecided], [seeds[i] for i in undecided], decoding,
            kind="handover")) if undecided else {})
        for i, r in enumerate(live):
            ids = drafted[i][0]
            at = first.get(i, len(ids))
            new = ids[:at] + ([swapped[i]] if i in first else [])
            kept[r] += new
            divergence[r] += scores[i][: len(new)]
            chosen[r] += [False] * at + [True] * (i in first)
            changed[r] += [False] * at + ([new[-1] != ids[at]] if i in first else [])
        handed = torch.tensor([live[i] for i in first], dtype=torch.long)
        rule.handed(handed)
        fired[handed] += 1
        live = [r for r in live if len(kept[r]) < max_new_tokens and not (kept[r] and kept[r][-1] in stops)]
    out = Samples(prompt_index=jobs, response_ids=[], stopped=[], stop_token=[])
    for r in range(size):
        ids, stop = split_at_stop(kept[r], stops)
        steps = len(ids) + (stop is not None)
        out.response_ids.append(ids)
        out.stopped.append(stop is not None)
        out.stop_token.append(stop)
        out.chosen.append(chosen[r][:steps])
        out.js.append(divergence[r][:steps])
        out.changed.append(changed[r][:steps])
    return out


def _divergences(primary, intervention, prefixes, drafted, read, numbers, decoding: Decoding) -> list[list[float]]:
    """Per drafted chunk, the top-p JS at each of its positions; a model whose listed ids there do not hold its
    top-p set gives its whole distribution at that position with one more request."""
    vocab, js_top_p = decoding.vocab_size, decoding.js_top_p
    sets = [[[nucleus(p, js_top_p, vocab), nucleus(q, js_top_p, vocab)] for p, q in zip(lps, read_row)]
            for (ids, lps), read_row in zip(drafted, read)]
    for side, engine in enumerate((primary, intervention)):
        missing = [(i, j) for i, row in enumerate(sets) for j, pair in enumerate(row) if pair[side] is None]
        if not missing:
            continue
        whole = engine.next_token([prefixes[i] + drafted[i][0][:j] for i, j in missing],
                                  [seeding.derive(decoding.seed, "engine lookup", numbers[i], j) for i, j in missing],
                                  decoding, logprobs=-1, kind="whole distribution")
        for (i, j), (_, lps) in zip(missing, whole):
            sets[i][j][side] = nucleus(lps, js_top_p, vocab, whole=True)
    return [[js(p, q) for p, q in row] for row in sets]
