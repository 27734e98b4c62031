"""The per-token shift table of a model pair, the data of the paper's token-level analyses (Meng et al. 2026:
per-token JS divergence on the RL model's own responses): sample reference responses
(``reference_responses``), then score both models on them teacher-forced (``shift_scores``), each row with its
response's verdict.

As in the paper, the reference paths are by default the tuned model's own samples; any other model's samples
can be used instead (``reference``). Three kinds of cache entry stay apart, each keyed only by what it reads:
``responses`` (the model, the prompts, ``SamplingConfig``), their verdicts (``ProblemSet.judged``: the answers
and the verifier) and ``shifts`` (both models, the responses' content, ``ScoringConfig``). Re-scoring never
re-samples, and a new verifier only re-judges.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from ..core.cache import ArtifactCache
from ..models.loading import DEFAULT_PLACEMENT, Placement
from . import reference_responses, shift_scores

if TYPE_CHECKING:
    from ..problems.problem_sets import ProblemSet


def with_verdicts(table: pl.DataFrame, verdicts: pl.DataFrame) -> pl.DataFrame:
    """A scored table with each response's ``correct`` (from ``verdicts``: response, correct) third."""
    return (table.join(verdicts.select("response", "correct"), on="response", how="left")
            .select(*table.columns[:2], "correct", *table.columns[2:]))


def shift_table(base_dir, tuned_dir, problems: ProblemSet, sampling: reference_responses.SamplingConfig,
                scoring_config: shift_scores.ScoringConfig, reference=None, cache: ArtifactCache | None = None,
                placement: Placement = DEFAULT_PLACEMENT, show_progress: bool = True) -> pl.DataFrame:
    """Per-position metrics of ``base_dir`` vs ``tuned_dir`` on ``reference``'s responses (default: the tuned
    model's own), one row per (response, position), with each response's ``correct``; cached."""
    cache = cache or ArtifactCache()
    reference = tuned_dir if reference is None else reference
    refs_entry = reference_responses.responses_entry(reference, problems, sampling, cache, placement, show_progress)
    refs = pl.read_parquet(refs_entry / "responses.parquet")
    table = shift_scores.scores(base_dir, tuned_dir, problems.tokenizer, refs, scoring_config, cache, placement,
                                show_progress)
    return with_verdicts(table, problems.judged(refs_entry, "responses.parquet", cache))
