"""The per-token shift table of a model pair: sample reference responses, then score both models on them.

As in the paper, the reference paths are by default the tuned (RL) model's own samples; any other model's
samples can be used instead (``reference``). Both steps work in units of a few prompts or responses
(``parallel.run_units``), so they split across processes under ``torchrun`` and resume after an interruption.
The cached entry points (``responses``, ``shift_table``) store their Parquet files in the artifact cache under
the models' fingerprints, the problems and the ``ShiftConfig``, so notebooks 01, 02 and 04 share them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from . import divergence, metrics, models, parallel, problem_sets, sampling, scoring
from .cache import ArtifactCache, model_fingerprint
from .loading import load_model, pad_id
from .problem_sets import ProblemSet

SHIFT_CODE = (divergence, metrics, scoring, sampling, problem_sets, models, parallel)


@dataclass(frozen=True)
class ShiftConfig:
    samples_per_problem: int = 4  # reference responses per problem
    temperature: float = 1.0  # sampling of the reference responses
    top_p: float = 1.0  # sampling of the reference responses (the organism's policies are sampled untruncated)
    js_top_p: float = 0.7  # p of the top-p truncated JS (the paper's 0.7)
    max_new_tokens: int = 48
    seed: int = 0
    prompts_per_unit: int = 64  # sampling work unit (its seed derives from the run's seed and its index)
    responses_per_unit: int = 64  # scoring work unit
    sample_batch_size: int = 256  # sequences decoded together
    batch_size: int = 16  # sequences per forward pass when scoring


def sample_responses(model, problems: ProblemSet, config: ShiftConfig, out_file: Path, parts: Path,
                     progress: bool = True) -> None:
    """Sample ``config.samples_per_problem`` responses per problem into ``out_file``: one row per response,
    in problem-major order, with its stop token (if any) at the end of ``response_ids``."""
    def work(unit: int, index: list[int]) -> pl.DataFrame:
        out = sampling.sample(model, [problems.prompts[i] for i in index], n=config.samples_per_problem,
                              max_new_tokens=config.max_new_tokens, eos_token_id=problems.stop_ids,
                              pad_token_id=pad_id(problems.tokenizer), vocab_size=len(problems.tokenizer),
                              temperature=config.temperature, top_p=config.top_p,
                              seed=parallel.unit_seed(config.seed, unit), batch_size=config.sample_batch_size)
        problem, response = parallel.response_numbers(index, out.prompt_index, config.samples_per_problem)
        return pl.DataFrame({
            "response": response,
            "problem": problem,
            "prompt_ids": [problems.prompts[i] for i in problem],
            "response_ids": out.with_stop_tokens(),
            "stopped": out.stopped,
            "correct": problems.rewards(out, problem),
        }, schema_overrides={"prompt_ids": pl.List(pl.Int64), "response_ids": pl.List(pl.Int64)})

    parallel.run_units(len(problems), config.prompts_per_unit, work, out_file, parts, desc="sampling",
                       progress=progress)


def score_responses(base, tuned, tokenizer, refs: pl.DataFrame, config: ShiftConfig, out_file: Path, parts: Path,
                    progress: bool = True) -> None:
    """Score ``base`` vs ``tuned`` on every response of ``refs`` (as ``sample_responses`` or one eps of
    ``cross_sampling.run_sweep`` writes them) into ``out_file``; see ``scoring.score_pair`` for the columns,
    plus ``problem``, and ``intervened`` per position for cross-sampled responses."""
    empty = refs.filter(pl.col("response_ids").list.len() == 0)
    if len(empty):
        raise ValueError(f"{len(empty)} reference responses are empty (responses {empty['response'].head(5).to_list()}"
                         "...): there is no position to score; raise max_new_tokens or drop them")

    def work(unit: int, index: list[int]) -> pl.DataFrame:
        part = refs[index]
        table = scoring.score_pair(base, tuned, tokenizer, part["prompt_ids"].to_list(),
                                   part["response_ids"].to_list(), correct=part["correct"].to_list(),
                                   top_p=config.js_top_p, batch_size=config.batch_size, progress=False)
        local = pl.DataFrame({"response": range(len(part)), "global": part["response"], "problem": part["problem"]},
                             schema_overrides={"response": pl.Int64})
        table = table.with_columns(pl.col("response").cast(pl.Int64)).join(local, on="response", how="left")
        if "intervened" in part.columns:  # cross-sampled responses: which tokens the intervention chose
            flags = (local.select("response").with_columns(intervened=part["intervened"])
                     .explode("intervened").with_columns(position=pl.int_range(pl.len()).over("response")))
            table = table.join(flags, on=["response", "position"], how="left")
        return (table.drop("response").rename({"global": "response"})
                .select("response", "problem", pl.exclude("response", "problem")))

    parallel.run_units(len(refs), config.responses_per_unit, work, out_file, parts, desc="scoring",
                       progress=progress)


def responses(model_dir, problems: ProblemSet, config: ShiftConfig, cache: ArtifactCache | None = None,
              progress: bool = True) -> pl.DataFrame:
    """The model's sampled responses to ``problems``, cached: one row per response, stop token included."""
    cache = cache or ArtifactCache()
    key = {"model": model_fingerprint(model_dir), "problems": problems.key(), "config": config}

    def build(out: Path):
        model, _ = load_model(model_dir)
        sample_responses(model, problems, config, out / "responses.parquet",
                         cache.parts("responses", key, SHIFT_CODE), progress)

    return pl.read_parquet(cache.get_or_build("responses", key, build, code=SHIFT_CODE) / "responses.parquet")


def shift_table(base_dir, tuned_dir, problems: ProblemSet, config: ShiftConfig, reference=None,
                cache: ArtifactCache | None = None, progress: bool = True) -> pl.DataFrame:
    """Per-position metrics of ``base_dir`` vs ``tuned_dir`` on ``reference``'s responses (default: the tuned
    model's own), one row per (response, position), cached."""
    cache = cache or ArtifactCache()
    reference = tuned_dir if reference is None else reference
    refs = responses(reference, problems, config, cache, progress)
    key = {"base": model_fingerprint(base_dir), "tuned": model_fingerprint(tuned_dir),
           "reference": model_fingerprint(reference), "problems": problems.key(), "config": config}

    def build(out: Path):
        base, base_tok = load_model(base_dir)
        tuned, tuned_tok = load_model(tuned_dir)
        scoring.check_same_vocabulary(base_tok, tuned_tok)
        score_responses(base, tuned, problems.tokenizer, refs, config, out / "shifts.parquet",
                        cache.parts("shifts", key, SHIFT_CODE), progress)

    return pl.read_parquet(cache.get_or_build("shifts", key, build, code=SHIFT_CODE) / "shifts.parquet")
