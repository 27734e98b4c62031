"""Judging responses, cached apart from sampling: a new verifier, or a new math-verify, re-judges in seconds
instead of re-sampling (GPU-hours at paper scale)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ..core.cache import ArtifactCache, spec
from .problem_sets import VERDICTS, ProblemSet


def judged(entry: Path, name: str, problems: ProblemSet, cache: ArtifactCache) -> pl.DataFrame:
    """The responses table ``name`` of cache ``entry`` with a ``correct`` column: each row judged by
    ``problems``' verifier, cached under the table's digest, the reference answers and the verifier's version."""
    table = pl.read_parquet(entry / name)
    key = spec("verdicts", (VERDICTS, problems.verifier), None,
               {"responses": cache.digest(entry, name), "answers": problems.answer_key()})

    def build(out: Path):
        pl.DataFrame({"correct": problems.verdicts(table)}, schema={"correct": pl.Boolean}).write_parquet(
            out / "verdicts.parquet")

    verdicts = pl.read_parquet(cache.get_or_build(key, build) / "verdicts.parquet")
    return table.with_columns(verdicts["correct"])
