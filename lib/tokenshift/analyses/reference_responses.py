"""The reference responses of a shift table (Meng et al. 2026 score the tuned model's own samples): a model's
samples of every problem, in units of a few prompts (``parallel.run_units``), so they split across processes under
``torchrun`` and resume after an interruption; by the suite's decoding loop or an inference engine.

The cached entry (``responses``) is keyed only by what sampling reads: the model, the prompts and
``SamplingConfig``; judging its rows is an entry of its own (``ProblemSet.judged``), so a new verifier only
re-judges.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from ..core import parallel
from ..core.behaviour import Version
from ..core.cache import ArtifactCache, added, execution, model_fingerprint, spec
from ..models import engine
from ..models import responses as schema
from ..models.loading import DEFAULT_PLACEMENT, Placement
from ..models.sampling import Decoding, decode

if TYPE_CHECKING:  # handed in; its verdicts are keyed by its own code
    from ..problems.problem_sets import ProblemSet

BEHAVIOUR = Version(1)


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


def responses_entry(model_dir, problems: ProblemSet, config: SamplingConfig, cache: ArtifactCache,
                    placement: Placement, show_progress: bool) -> Path:
    """The cache entry of the model's sampled responses to ``problems`` (``responses.parquet``, not yet judged)."""
    inputs = {"model": model_fingerprint(model_dir), "problems": problems.prompt_key(), "runtime": placement.runtime()}
    if config.engine != "suite":  # the engine's numerics are its version's
        inputs["engine"] = f"{config.engine} {engine.require_vllm().__version__}"
    entry = spec("responses", __name__, config, inputs)

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
    return problems.judged(responses_entry(model_dir, problems, config, cache, placement, show_progress),
                           "responses.parquet", cache)
