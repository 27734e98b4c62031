"""The suite's one-model decoding loop: seeded, batched sampling with a KV cache (left-padded prompts,
temperature, top-p, a set of stop tokens); two models decode together in ``draft_verify``, with the same draw.

Each response draws from its own random stream, derived from the run's seed and the response's number in the
run (``uniforms``): its tokens depend on the model, its prompt, the seed and that number, never on the batch it
is decoded in, the batch's size, the work unit or the rank (up to floating-point rounding, which can differ
between batch shapes and flip a draw that sits on a boundary).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
import torch

from ..core import seeding
from ..core.behaviour import Version
from .divergence import log_probs, top_p_truncate
from .kv_cache import forward, new_cache
from .loading import check_logits, pad_id

BEHAVIOUR = Version(1, libraries=("torch", "transformers"))


@dataclass
class Samples:
    """Responses to a list of prompts, ``n`` per prompt, in prompt-major order."""

    prompt_index: list[int]  # which prompt each response answers
    response_ids: list[list[int]]  # generated ids, without the stop token
    stopped: list[bool]  # True where the model emitted a stop token before the length limit
    stop_token: list[int | None]  # the stop token emitted, None if none
    # two models only, per decoding step (the stop step included): drawn from the second model? their JS; did
    # that draw differ from the first model's with the same uniform number (a handed-over step can emit the
    # token the first model would have)? and each model's entropy (where the decoder has full distributions)
    chosen: list[list[bool]] = field(default_factory=list)
    js: list[list[float]] = field(default_factory=list)
    changed: list[list[bool]] = field(default_factory=list)
    first_entropy: list[list[float]] = field(default_factory=list)
    second_entropy: list[list[float]] = field(default_factory=list)

    def with_stop_tokens(self) -> list[list[int]]:
        """Each response with the stop token it ended on: the ids a teacher-forced forward should read."""
        return [ids + ([stop] if stop is not None else []) for ids, stop in zip(self.response_ids, self.stop_token)]


def stop_set(eos_token_id: int | Sequence[int]) -> set[int]:
    """The stop tokens as a set: real pairs may stop on several (a base model's <|endoftext|>, an instruct
    model's <|im_end|>)."""
    return {eos_token_id} if isinstance(eos_token_id, int) else set(eos_token_id)


def split_at_stop(row: list[int], stops: set[int]) -> tuple[list[int], int | None]:
    """A decoded row cut before its first stop token, and that token (None if the row never stopped)."""
    for i, token in enumerate(row):
        if token in stops:
            return row[:i], token
    return row, None


def left_pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask for sequences of different lengths, padded on the left."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s) :] = torch.tensor(s)
            mask[i, width - len(s) :] = 1
    return ids, mask


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on each row's first real token, whatever its left padding."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def draw(logits: torch.Tensor, temperature: float, top_p: float, uniform: torch.Tensor) -> torch.Tensor:
    """One token id per row of ``logits`` ([B, V]); temperature 0 means greedy. The only draw of the suite: the
    row's ``uniform`` number ([B, 1], in [0, 1)) read against its cumulative distribution (``torch.multinomial``
    did the same several times slower)."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = top_p_truncate(log_probs(logits.float() / temperature)[1], top_p)
    cdf = probs.cumsum(-1)
    return torch.searchsorted(cdf, uniform * cdf[:, -1:], right=True).clamp(max=probs.shape[-1] - 1).squeeze(-1)


def uniforms(seed: int, responses: Sequence[int], steps: int) -> torch.Tensor:
    """The uniform numbers of each response's draws, one per decoding step ([len(responses), steps]): response r's
    come from its own stream, derived from the run's ``seed`` and r, whatever else is decoded beside it."""
    streams = [torch.Generator().manual_seed(seeding.derive(seed, "response", r)) for r in responses]
    return torch.stack([torch.rand(steps, generator=g) for g in streams]) if streams else torch.zeros(0, steps)


@dataclass(frozen=True)
class Decoding:
    """How responses are decoded, one object for every decoder (one model's loop, cross-sampling's draft and
    verify, the engines) and for the evaluation and RL rollouts that sample through them. Checked on creation,
    before any model runs."""

    max_new_tokens: int
    stop_ids: frozenset[int]  # a response ends at the first of these (a pair may stop on several)
    pad_id: int
    vocab_size: int | None = None  # slices output layers padded past the tokenizer; None: the whole layer
    temperature: float = 1.0  # 0: greedy
    top_p: float = 1.0
    seed: int = 0  # response r of a run draws from its own stream, derived from the seed and r
    js_top_p: float = 1.0  # cross-sampling: the p of the JS that decides a handover (1: full-vocabulary JS)

    def __post_init__(self):
        object.__setattr__(self, "stop_ids", frozenset(stop_set(self.stop_ids)))
        value = self.max_new_tokens
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"max_new_tokens must be an integer of at least 1, got {value!r}")
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be a finite number >= 0, got {self.temperature}")
        for name in ("top_p", "js_top_p"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")

    GENERATE_NAMES = ("max_new_tokens", "eos_token_id", "pad_token_id", "vocab_size", "temperature", "top_p", "seed",
                      "js_top_p")

    @classmethod
    def split(cls, kw: dict) -> tuple[Decoding, dict]:
        """Settings given by transformers' ``generate`` names (``eos_token_id``, ``pad_token_id``, ...; as the
        checks against it and quick scripts give them) as a ``Decoding``, and the other keywords."""
        given = {k: v for k, v in kw.items() if k in cls.GENERATE_NAMES}
        decoding = cls(given["max_new_tokens"], given["eos_token_id"], given.get("pad_token_id", 0),
                       given.get("vocab_size"), given.get("temperature", 1.0), given.get("top_p", 1.0),
                       given.get("seed", 0), given.get("js_top_p", 1.0))
        return decoding, {k: v for k, v in kw.items() if k not in cls.GENERATE_NAMES}

    @classmethod
    def for_problems(cls, problems, max_new_tokens: int, **settings) -> Decoding:
        """Decoding for a problem set: its stop set, and its tokenizer's pad id and length."""
        return cls(max_new_tokens, problems.stop_ids, pad_id(problems.tokenizer), len(problems.tokenizer),
                   **settings)


def response_numbers(responses: Sequence[int] | None, count: int) -> list[int]:
    """Each decoded response's number in the run (its stream's label): ``responses`` as given, else 0..count-1;
    refuses a list of the wrong length or with repeats (two responses would share their draws)."""
    numbers = list(range(count)) if responses is None else list(responses)
    if len(numbers) != count or len(set(numbers)) != count:
        raise ValueError(f"responses must number each of the {count} responses once, got {len(numbers)} numbers "
                         f"with {len(set(numbers))} distinct")
    return numbers


def check_settings(prompts: list[list[int]], n: int, batch_size: int) -> None:
    """Refuse impossible prompts and counts by name, before any model runs (``Decoding`` checks the rest)."""
    if not prompts:
        raise ValueError("no prompts to continue")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("an empty prompt cannot be continued: give every prompt at least one token")
    for name, value in (("n", n), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer of at least 1, got {value!r}")


@torch.no_grad()
def decode(model, prompts: list[list[int]], decoding: Decoding, *, n: int = 1, batch_size: int = 256,
           responses: Sequence[int] | None = None) -> Samples:
    """Sample ``n`` responses to each prompt (token-id lists), ``batch_size`` sequences at a time, as ``decoding``
    says. ``responses`` numbers the responses in the run (prompt-major; default 0, 1, ...): response r draws from
    stream (seed, r)."""
    check_settings(prompts, n, batch_size)
    jobs = [i for i in range(len(prompts)) for _ in range(n)]
    numbers = response_numbers(responses, len(jobs))
    out = Samples(prompt_index=jobs, response_ids=[], stopped=[], stop_token=[])
    for start in range(0, len(jobs), batch_size):
        rows = range(start, min(start + batch_size, len(jobs)))
        _decode_batch(model, [prompts[jobs[r]] for r in rows], [numbers[r] for r in rows], decoding, out)
    return out


# Rows that have stopped leave the batch once they are this share of it: attention reads the whole KV cache at
# every step, so finished rows would cost as much as live ones; compacting at every stop would copy the cache
# too often.
COMPACT_SHARE = 0.125


def _decode_batch(model, prompts, numbers, decoding: Decoding, out: Samples) -> None:
    d = decoding
    max_new_tokens, stops, pad, vocab, temperature, top_p = (d.max_new_tokens, d.stop_ids, d.pad_id, d.vocab_size,
                                                             d.temperature, d.top_p)
    uniform = uniforms(d.seed, numbers, max_new_tokens)
    ids, mask = left_pad(prompts, pad)
    cache = new_cache(model, ids.shape[1] + max_new_tokens)
    size = len(prompts)
    live = torch.arange(size)  # the batch rows the cache holds, in their order
    done = torch.zeros(size, dtype=torch.bool)  # which of them have stopped
    stop_ids = torch.tensor(sorted(stops))
    tokens = torch.full((size, max_new_tokens), pad, dtype=torch.long)
    step_ids, pos = ids, positions(mask)
    for step in range(max_new_tokens):
        # the draw runs in fp32 where the logits come out, so no [batch, vocabulary] tensor crosses to the CPU;
        # the uniform numbers come from CPU generators, so a seed gives the same streams anywhere (a GPU's
        # arithmetic rounds otherwise than a CPU's, so a token whose number sits on a boundary can differ)
        logits = forward(model, step_ids, mask, pos, cache)[:, -1, :vocab].float()
        running = live[~done]
        check_logits(logits[~done.to(logits.device)], model, lambda i: f"response {numbers[running[i]]} at step {step}")
        token = draw(logits, temperature, top_p, uniform[live, step : step + 1].to(logits.device)).cpu()
        token = token.masked_fill(done, pad)
        tokens[live, step] = token
        done |= torch.isin(token, stop_ids)
        if done.all():
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        step_ids, pos = token[:, None], pos[:, -1:] + 1
        if done.sum() >= COMPACT_SHARE * len(live):
            keep = (~done).nonzero().squeeze(-1)
            for layer in cache.layers:
                layer.keep(keep)
            live, done, mask, step_ids, pos = live[keep], done[keep], mask[keep], step_ids[keep], pos[keep]
    collect(out, tokens, stops)


def collect(out: Samples, tokens: torch.Tensor, stops: set[int], per_step=None) -> None:
    """Append a batch's decoded rows to ``out``, each cut at its first stop token; ``per_step`` (two models:
    the handover, JS and changed-token tensors, [B, steps], then optionally both entropies) is cut to each
    response's steps."""
    for i, row in enumerate(tokens.tolist()):
        ids, stop = split_at_stop(row, stops)
        steps = len(ids) + (stop is not None)
        out.response_ids.append(ids)
        out.stopped.append(stop is not None)
        out.stop_token.append(stop)
        if per_step is not None:
            for field_, values in zip((out.chosen, out.js, out.changed, out.first_entropy, out.second_entropy), per_step):
                field_.append(values[i, :steps].tolist())


def sample(model, prompts: list[list[int]], *, n: int = 1, max_new_tokens: int, eos_token_id: int | Sequence[int],
           pad_token_id: int, vocab_size: int | None = None, temperature: float = 1.0, top_p: float = 1.0,
           seed: int = 0, batch_size: int = 256, responses: Sequence[int] | None = None) -> Samples:
    """``decode`` with transformers' ``generate`` names, for a quick call and for checks against it: a response
    ends at the first of the ``eos_token_id`` stop tokens (one id or several)."""
    return decode(model, prompts, Decoding(max_new_tokens, eos_token_id, pad_token_id, vocab_size, temperature, top_p,
                                           seed), n=n, batch_size=batch_size, responses=responses)
