"""Cross-sampling, the paper's causal test: decode with a primary policy and hand each token over to an
intervention policy only where the two disagree.

Both models decode the same batch in lockstep, each with its own KV cache. At every step both score the
current (mixed) prefix; when the JS divergence between their next-token distributions exceeds ``eps`` the
token is sampled from the intervention policy, otherwise from the primary; the chosen token is fed to both.
Forward (primary = base, intervention = RL) asks whether the few high-divergence decisions suffice for RL's
gain; reverse (primary = RL, intervention = base) whether they are necessary.

The random-position control intervenes instead at randomly chosen steps, each response with its own target
fraction (e.g. the fraction a divergence-based run realised on the same prompt and sample slot).

Sampling draws exactly as ``sampling.sample`` does (one draw per step for the whole batch from the chosen
rows' distributions), so ``eps = inf`` reproduces plain sampling from the primary token for token, and a
negative ``eps`` plain sampling from the intervention policy, with the same seed.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import torch
from transformers import DynamicCache

from . import divergence, models, parallel, problem_sets, sampling, scoring
from .cache import ArtifactCache, model_fingerprint
from .divergence import js_divergence, log_probs, top_p_js, top_p_truncate
from .loading import load_model, pad_id
from .problem_sets import ProblemSet
from .sampling import Samples, left_pad, positions, split_at_stop, stop_set


@dataclass
class CrossSamples(Samples):
    intervened: list[list[bool]]  # per response token (and the stop step): from the intervention?
    js: list[list[float]]  # per step: the JS divergence between the two policies

    def intervened_fraction(self) -> list[float]:
        """Per response, the share of its decoding steps (end-of-sequence included) taken by the intervention."""
        return [sum(flags) / len(flags) if flags else 0.0 for flags in self.intervened]

    def intervened_count(self) -> list[int]:
        return [sum(flags) for flags in self.intervened]


@torch.no_grad()
def cross_sample(
    primary,
    intervention,
    prompts: list[list[int]],
    *,
    eps: float = math.inf,
    random_fraction: list[float] | None = None,
    n: int = 1,
    max_new_tokens: int,
    eos_token_id: int | Sequence[int],
    pad_token_id: int,
    vocab_size: int | None = None,
    temperature: float = 1.0,
    top_p: float = 1.0,
    js_top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 256,
) -> CrossSamples:
    """Sample ``n`` responses per prompt, switching to ``intervention`` where JS > ``eps``.

    ``random_fraction`` (one value per response, in prompt-major order) replaces the divergence rule by the
    random-position control: each step is handed over with that probability. ``js_top_p`` < 1 measures the
    divergence on top-p truncated distributions, as the divergence library does; ``vocab_size`` slices
    output layers padded past the tokenizer. Temperature and ``top_p`` shape the sampling as usual.
    """
    if any(len(p) == 0 for p in prompts):
        raise ValueError("an empty prompt cannot be continued: give every prompt at least one token")
    jobs = [i for i in range(len(prompts)) for _ in range(n)]
    if random_fraction is not None and len(random_fraction) != len(jobs):
        raise ValueError(f"random_fraction needs one value per response ({len(jobs)}), got {len(random_fraction)}")
    sampler = torch.Generator().manual_seed(seed)
    chooser = torch.Generator().manual_seed(seed + 1)  # the control's coin flips leave the sampler's draws alone
    out = CrossSamples(prompt_index=jobs, response_ids=[], stopped=[], stop_token=[], intervened=[], js=[])
    for start in range(0, len(jobs), batch_size):
        rows = jobs[start : start + batch_size]
        fractions = None if random_fraction is None else torch.tensor(random_fraction[start : start + batch_size])
        _lockstep_batch(primary, intervention, [prompts[i] for i in rows], eps, fractions, max_new_tokens,
                        stop_set(eos_token_id), pad_token_id, vocab_size, temperature, top_p, js_top_p, sampler,
                        chooser, out)
    return out


def _lockstep_batch(primary, intervention, prompts, eps, fractions, max_new_tokens, stops, pad, vocab,
                    temperature, top_p, js_top_p, sampler, chooser, out: CrossSamples) -> None:
    ids, mask = left_pad(prompts, pad)
    caches = DynamicCache(config=primary.config), DynamicCache(config=intervention.config)
    done = torch.zeros(len(prompts), dtype=torch.bool)
    stop_ids = torch.tensor(sorted(stops))
    tokens, flags, divergences = [], [], []
    step_ids, pos = ids, positions(mask)
    for _ in range(max_new_tokens):
        # each model reads its inputs on its own device; the decisions and draws happen on the CPU in fp32
        logits = [model(input_ids=step_ids.to(model.device), attention_mask=mask.to(model.device),
                        position_ids=pos.to(model.device), cache=cache, use_cache=True)
                  .logits[:, -1, :vocab].float().cpu() for model, cache in zip((primary, intervention), caches)]
        p, q = (log_probs(x)[1] for x in logits)
        js = top_p_js(p, q, js_top_p) if js_top_p < 1.0 else js_divergence(p, q)
        if fractions is None:
            choose = js > eps
        else:
            choose = torch.rand(len(prompts), generator=chooser) < fractions
        if temperature == 0:
            token = torch.where(choose, logits[1].argmax(-1), logits[0].argmax(-1))
        else:
            mixed = torch.where(choose[:, None], logits[1], logits[0]) / temperature
            token = torch.multinomial(top_p_truncate(log_probs(mixed)[1], top_p), 1, generator=sampler).squeeze(-1)
        token = token.masked_fill(done, pad)
        tokens.append(token)
        flags.append(choose & ~done)
        divergences.append(js)
        done |= torch.isin(token, stop_ids)
        if done.all():
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        step_ids, pos = token[:, None], pos[:, -1:] + 1
    tokens, flags, divergences = (torch.stack(x, dim=1).tolist() for x in (tokens, flags, divergences))
    for row, row_flags, row_js in zip(tokens, flags, divergences):
        ids, stop = split_at_stop(row, stops)
        steps = len(ids) + (stop is not None)
        out.response_ids.append(ids)
        out.stopped.append(stop is not None)
        out.stop_token.append(stop)
        out.intervened.append(row_flags[:steps])
        out.js.append(row_js[:steps])


@dataclass(frozen=True)
class SweepConfig:
    """A cross-sampling sweep over eps on a problem set."""

    eps_grid: tuple[float, ...] = (math.inf, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001, 1e-4, 0.0)  # inf: never intervene
    samples_per_problem: int = 4
    temperature: float = 1.0
    top_p: float = 1.0
    js_top_p: float = 1.0  # 1: full-vocabulary JS decides; < 1: top-p truncated JS
    max_new_tokens: int = 48
    seed: int = 0
    prompts_per_unit: int = 64  # work unit (its seed derives from the run's seed and its index)
    batch_size: int = 256  # sequences decoded together


def run_sweep(primary, intervention, problems: ProblemSet, config: SweepConfig, out_file: Path, parts: Path,
              progress: bool = True) -> None:
    """For every eps: cross-sample with the divergence rule, then the random-position control with each
    response's realised fraction as its target. One row per (eps, rule, response) into ``out_file``."""
    common = dict(n=config.samples_per_problem, max_new_tokens=config.max_new_tokens, eos_token_id=problems.stop_ids,
                  pad_token_id=pad_id(problems.tokenizer), vocab_size=len(problems.tokenizer),
                  temperature=config.temperature, top_p=config.top_p, js_top_p=config.js_top_p,
                  batch_size=config.batch_size)

    def work(unit: int, index: list[int]) -> pl.DataFrame:
        prompts, seed = [problems.prompts[i] for i in index], parallel.unit_seed(config.seed, unit)
        frames = []
        for eps in config.eps_grid:
            by_divergence = cross_sample(primary, intervention, prompts, eps=eps, seed=seed, **common)
            runs = [("divergence", by_divergence)]
            if 0 < sum(by_divergence.intervened_count()):
                runs.append(("random", cross_sample(primary, intervention, prompts, seed=seed,
                                                    random_fraction=by_divergence.intervened_fraction(), **common)))
            for rule, out in runs:
                problem, response = parallel.response_numbers(index, out.prompt_index, config.samples_per_problem)
                frames.append(pl.DataFrame({
                    "eps": [eps] * len(problem), "rule": rule, "response": response, "problem": problem, "prompt_ids": [problems.prompts[i] for i in problem],
                    "response_ids": out.with_stop_tokens(), "stopped": out.stopped,
                    "intervened": out.intervened, "fraction": out.intervened_fraction(),
                    "count": out.intervened_count(), "correct": problems.rewards(out, problem),
                }, schema_overrides={"prompt_ids": pl.List(pl.Int64), "response_ids": pl.List(pl.Int64),
                                     "intervened": pl.List(pl.Boolean)}))
        return pl.concat(frames)

    parallel.run_units(len(problems), config.prompts_per_unit, work, out_file, parts, desc="cross-sampling",
                       progress=progress)


def sweep(primary_dir, intervention_dir, problems: ProblemSet, config: SweepConfig, cache=None,
          progress: bool = True) -> pl.DataFrame:
    """``run_sweep`` on two model directories (or hub ids), cached as Parquet."""
    cache = cache or ArtifactCache()
    key = {"primary": model_fingerprint(primary_dir), "intervention": model_fingerprint(intervention_dir),
           "problems": problems.key(), "config": config}
    code = (divergence, sampling, problem_sets, models, parallel, sys.modules[__name__])

    def build(out):
        primary, tok = load_model(primary_dir)
        intervention, other_tok = load_model(intervention_dir)
        scoring.check_same_vocabulary(tok, other_tok)
        run_sweep(primary, intervention, problems, config, out / "sweep.parquet",
                  cache.parts("cross_sampling", key, code), progress)

    return pl.read_parquet(cache.get_or_build("cross_sampling", key, build, code=code) / "sweep.parquet")
