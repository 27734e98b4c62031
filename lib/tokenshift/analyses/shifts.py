"""The per-token shift table of a model pair, the data of the paper's token-level analyses (Meng et al. 2026:
per-token JS divergence on the RL model's own responses): sample reference responses, then score both models on
them teacher-forced.

As in the paper, the reference paths are by default the tuned model's own samples; any other model's samples
can be used instead (``reference``). Both steps work in units of a few prompts or responses
(``parallel.run_units``), so they split across processes under ``torchrun`` and resume after an interruption.

The cached entry points keep three kinds of entry apart, each keyed only by what it reads: ``responses``
(the sampled ids: the model, the prompts, ``SamplingConfig``), their verdicts (``verdicts.judged``: the
answers and the verifier), and ``shifts`` (the scores: both models, the responses file's digest and
``ScoringConfig``). Re-scoring never re-samples, and a new verifier only re-judges.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ..core import parallel
from ..core.behaviour import Version
from ..core.cache import ArtifactCache, added, execution, model_fingerprint, spec
from ..models import engine, scoring
from ..models import responses as schema
from ..models.loading import DEFAULT_PLACEMENT, Placement, check_same_vocabulary
from ..models.sampling import DECODING, Decoding, decode
from ..problems.problem_sets import ProblemSet
from ..problems.verdicts import judged

REFERENCE_SAMPLING = Version("reference-sampling", 2, uses=(DECODING, parallel.UNITS, schema.RESPONSES))
SCORING = Version("shift-scoring", 1, uses=(scoring.SCORING, parallel.UNITS))


@dataclass(frozen=True)
class SamplingConfig:
    """How reference responses are sampled: every field but the batch and unit sizes is part of the responses'
    identity (each response draws from its own streams, whatever batch or unit it falls in)."""

    samples_per_problem: int = 4  # reference responses per problem
    temperature: float = 1.0
    top_p: float = 1.0  # nucleus of the sampling (the paper's 0.7; the organism's policies are sampled untruncated)
    max_new_tokens: int = 48
    seed: int = 0
    prompts_per_unit: int = execution(64)  # work unit
    batch_size: int = execution(256)  # sequences decoded together
    # "suite": the suite's own decoding loop; "vllm": the inference engine (``models.engine``: the same
    # distributions, other draws; its own environment)
    engine: str = added("suite")

    def __post_init__(self):
        if self.engine not in engine.ENGINES:
            raise ValueError(f"unknown sampling engine {self.engine!r}: choose one of {engine.ENGINES}")


@dataclass(frozen=True)
class ScoringConfig:
    """How responses are scored; batch and unit sizes change how the work runs, not its result."""

    js_top_p: float = 0.7  # p of the top-p truncated JS (the paper's 0.7)
    batch_size: int = execution(16)  # sequences per forward pass
    responses_per_unit: int = execution(64)  # work unit


@REFERENCE_SAMPLING.code
def sample_responses(model, problems: ProblemSet, config: SamplingConfig, out_file: Path, parts: Path,
                     show_progress: bool = True) -> None:
    """Sample ``config.samples_per_problem`` responses per problem into ``out_file``: one row per response, in
    problem-major order, in the responses schema (``responses.COLUMNS``). ``model``: a model, or an engine
    (``models.engine.VllmEngine``)."""
    decoding = Decoding.for_problems(problems, config.max_new_tokens, temperature=config.temperature,
                                     top_p=config.top_p, seed=config.seed)
    frame = lambda index, out: schema.frame(problems.prompts, index, out, config.samples_per_problem)  # noqa: E731

    def work(unit: int, index: list[int]) -> pl.DataFrame:
        out = decode(model, [problems.prompts[i] for i in index], decoding, n=config.samples_per_problem,
                     batch_size=config.batch_size, responses=parallel.responses_of(index, config.samples_per_problem))
        return frame(index, out)

    def stream(todo):  # the engine: every unit queued ahead, each written as soon as its responses are done
        units = [((unit, index), [problems.prompts[i] for i in index],
                  parallel.responses_of(index, config.samples_per_problem)) for unit, index in todo]
        for (unit, index), out in model.sample_units(units, decoding, n=config.samples_per_problem):
            yield unit, frame(index, out)

    by_engine = isinstance(model, engine.VllmEngine)
    parallel.run_units(len(problems), config.prompts_per_unit, None if by_engine else work, out_file, parts,
                       desc="sampling", show_progress=show_progress, stream=stream if by_engine else None)


@SCORING.code
def score_responses(base, tuned, tokenizer, refs: pl.DataFrame, config: ScoringConfig, out_file: Path, parts: Path,
                    show_progress: bool = True) -> None:
    """Score ``base`` vs ``tuned`` on every response of ``refs`` (a responses table, or one eps and rule of a
    cross-sample table) into ``out_file``: ``scoring.score_pair``'s columns with ``response`` and ``problem``
    of ``refs``, plus, where ``refs`` has them, ``correct`` and ``intervened`` (per position) columns."""
    empty = refs.filter(pl.col("response_ids").list.len() == 0)
    if len(empty):
        raise ValueError(f"{len(empty)} reference responses are empty (responses {empty['response'].head(5).to_list()}"
                         "...): there is no position to score; raise max_new_tokens or drop them")

    def work(unit: int, index: list[int]) -> pl.DataFrame:
        part = refs[index]
        table = scoring.score_pair(base, tuned, tokenizer, part["prompt_ids"].to_list(),
                                   part["response_ids"].to_list(), top_p=config.js_top_p,
                                   batch_size=config.batch_size, show_progress=False)
        local = part.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("local"), "response", "problem",
                            *(c for c in ("correct",) if c in part.columns))
        table = (table.rename({"response": "local"}).with_columns(pl.col("local").cast(pl.Int64))
                 .join(local, on="local", how="left"))
        if "intervened" in part.columns:  # cross-sampled responses: which tokens the intervention chose
            flags = (local.select("local").with_columns(intervened=part["intervened"])
                     .explode("intervened").with_columns(position=pl.int_range(pl.len()).over("local")))
            table = table.join(flags, on=["local", "position"], how="left")
        return table.select("response", "problem", pl.exclude("local", "response", "problem"))

    parallel.run_units(len(refs), config.responses_per_unit, work, out_file, parts, desc="scoring",
                       show_progress=show_progress)


def _responses_entry(model_dir, problems: ProblemSet, config: SamplingConfig, cache: ArtifactCache,
                     placement: Placement, show_progress: bool) -> Path:
    inputs = {"model": model_fingerprint(model_dir), "problems": problems.prompt_key(), "runtime": placement.runtime()}
    if config.engine != "suite":  # the engine's numerics are its version's
        inputs["engine"] = f"{config.engine} {engine.require_vllm().__version__}"
    entry = spec("responses", REFERENCE_SAMPLING, config, inputs)

    def build(out: Path):
        if config.engine == "vllm":
            model = placement.engine(model_dir, problems.prompts, config.max_new_tokens)
        else:
            placement.check_fits([model_dir])
            model = placement.load(model_dir)[0]
        sample_responses(model, problems, config, out / "responses.parquet", cache.parts(entry), show_progress)

    return cache.get_or_build(entry, build, collective=True)


def responses(model_dir, problems: ProblemSet, config: SamplingConfig, cache: ArtifactCache | None = None,
              placement: Placement = DEFAULT_PLACEMENT, show_progress: bool = True) -> pl.DataFrame:
    """The model's sampled responses to ``problems``, judged (``correct``), cached: one row per response."""
    cache = cache or ArtifactCache()
    return judged(_responses_entry(model_dir, problems, config, cache, placement, show_progress), "responses.parquet",
                  problems, cache)


def scores(base_dir, tuned_dir, tokenizer, refs: pl.DataFrame, config: ScoringConfig,
           cache: ArtifactCache | None = None, placement: Placement = DEFAULT_PLACEMENT,
           show_progress: bool = True) -> pl.DataFrame:
    """``score_responses`` of ``base_dir`` vs ``tuned_dir`` on ``refs`` (checked responses), cached under the
    responses' content (``responses.digest``), so a notebook's table and the command line's scores of the same
    responses are one entry. Any ``correct`` of ``refs`` is left for the caller to join."""
    cache = cache or ArtifactCache()
    refs = refs.drop("correct", strict=False)
    entry = spec("shifts", SCORING, config, {
        "base": model_fingerprint(base_dir), "tuned": model_fingerprint(tuned_dir),
        "responses": schema.digest(refs), "runtime": placement.runtime()})

    def build(out: Path):
        placement.check_fits([base_dir, tuned_dir])
        base, base_tok = placement.load(base_dir)
        tuned, tuned_tok = placement.load(tuned_dir)
        check_same_vocabulary(base_tok, tuned_tok)
        score_responses(base, tuned, tokenizer, refs, config, out / "shifts.parquet", cache.parts(entry),
                        show_progress)

    return pl.read_parquet(cache.get_or_build(entry, build, collective=True) / "shifts.parquet")


def with_verdicts(table: pl.DataFrame, verdicts: pl.DataFrame) -> pl.DataFrame:
    """A scored table with each response's ``correct`` (from ``verdicts``: response, correct) third."""
    return (table.join(verdicts.select("response", "correct"), on="response", how="left")
            .select(*table.columns[:2], "correct", *table.columns[2:]))


def shift_table(base_dir, tuned_dir, problems: ProblemSet, sampling: SamplingConfig, scoring_config: ScoringConfig,
                reference=None, cache: ArtifactCache | None = None, placement: Placement = DEFAULT_PLACEMENT,
                show_progress: bool = True) -> pl.DataFrame:
    """Per-position metrics of ``base_dir`` vs ``tuned_dir`` on ``reference``'s responses (default: the tuned
    model's own), one row per (response, position), with each response's ``correct``; cached."""
    cache = cache or ArtifactCache()
    reference = tuned_dir if reference is None else reference
    refs_entry = _responses_entry(reference, problems, sampling, cache, placement, show_progress)
    table = scores(base_dir, tuned_dir, problems.tokenizer, pl.read_parquet(refs_entry / "responses.parquet"),
                   scoring_config, cache, placement, show_progress)
    return with_verdicts(table, judged(refs_entry, "responses.parquet", problems, cache))
