"""The scores of a shift table: base and tuned model teacher-forced on the same responses, every position's
divergences and metrics (``models.scoring``), in units of a few responses (``parallel.run_units``), so they split
across processes under ``torchrun`` and resume after an interruption.

The cached entry (``shifts``) is keyed by both models, the responses' content (``responses.digest``) and
``ScoringConfig``: re-scoring never re-samples, and the command line's scores and a notebook's of the same
responses are one entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ..core import parallel
from ..core.behaviour import Version
from ..core.cache import ArtifactCache, execution, model_fingerprint, spec
from ..models import responses as schema
from ..models import scoring
from ..models.loading import DEFAULT_PLACEMENT, Placement, check_same_vocabulary

BEHAVIOUR = Version(1)


@dataclass(frozen=True)
class ScoringConfig:
    """How responses are scored; batch and unit sizes change how the work runs, not its result."""

    js_top_p: float = 0.7  # p of the top-p truncated JS (the paper's 0.7)
    batch_size: int = execution(16)  # sequences per forward pass
    responses_per_unit: int = execution(64)  # work unit


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


def scores(base_dir, tuned_dir, tokenizer, refs: pl.DataFrame, config: ScoringConfig,
           cache: ArtifactCache | None = None, placement: Placement = DEFAULT_PLACEMENT,
           show_progress: bool = True) -> pl.DataFrame:
    """``score_responses`` of ``base_dir`` vs ``tuned_dir`` on ``refs`` (checked responses), cached under the
    responses' content (``responses.digest``), so a notebook's table and the command line's scores of the same
    responses are one entry. Any ``correct`` of ``refs`` is left for the caller to join."""
    cache = cache or ArtifactCache()
    refs = refs.drop("correct", strict=False)
    entry = spec("shifts", __name__, config, {
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
