"""The responses schema: one row per sampled or cross-sampled response, as the sampling stages, the cache and
the command line write and read it. Scoring reads ``prompt_ids`` and ``response_ids`` (the stop token, if
any, last) exactly as sampled, so no text is ever re-tokenised between models.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl

from ..core import parallel
from ..core.behaviour import Version
from .sampling import Samples

BEHAVIOUR = Version(1)  # how sampled ids become rows

COLUMNS = {"response": pl.Int64, "problem": pl.Int64, "prompt_ids": pl.List(pl.Int64),
           "response_ids": pl.List(pl.Int64), "stopped": pl.Boolean}
# cross-sampled responses also say at which threshold and by which rule, which steps were handed over, and which
# of those emitted another token than the primary would have
CROSS_COLUMNS = {"eps": pl.Float64, "rule": pl.String, "intervened": pl.List(pl.Boolean), "fraction": pl.Float64,
                 "count": pl.Int64, "changed": pl.List(pl.Boolean), "changed_count": pl.Int64}


def frame(prompts: list[list[int]], index: list[int], samples: Samples, n: int) -> pl.DataFrame:
    """The rows of one work unit: ``samples`` answer ``n`` times each of the problems ``index`` (whose prompts
    are ``prompts[index[i]]``), numbered as in the whole run."""
    problem, response = parallel.response_numbers(index, samples.prompt_index, n)
    return pl.DataFrame({"response": response, "problem": problem, "prompt_ids": [prompts[i] for i in problem],
                         "response_ids": samples.with_stop_tokens(), "stopped": samples.stopped}, schema=COLUMNS)


def digest(table: pl.DataFrame) -> str:
    """sha256 of what scoring reads of a responses table (numbers, ids, and which steps were handed over), the
    same however the table was stored: a notebook's cached responses and the command line's file of the same
    responses score into one cache entry."""
    h = hashlib.sha256()
    for name in ("response", "problem", "prompt_ids", "response_ids", "intervened"):
        if name in table.columns:
            column = table[name]
            h.update(name.encode())
            if isinstance(column.dtype, pl.List):
                h.update(column.list.len().to_numpy().astype("<i8").tobytes())
                column = column.explode()
            h.update(column.cast(pl.Int64).fill_null(-1).to_numpy().astype("<i8").tobytes())
    return h.hexdigest()


def check(table: pl.DataFrame, where: str) -> pl.DataFrame:
    """Refuse a table that does not hold responses, naming what is wrong and what to pass instead."""
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{where} lacks the column(s) {missing} of a responses file (it has {table.columns}): "
                         "pass a file written by `tokenshift sample` or `tokenshift cross-sample`")
    wrong = {c: str(table.schema[c]) for c, t in COLUMNS.items() if table.schema[c] != t}
    if wrong:
        raise ValueError(f"{where}: column types {wrong} are not those of a responses file "
                         f"({ {c: str(t) for c, t in COLUMNS.items()} })")
    keys = ["response", *(c for c in ("eps", "rule") if c in table.columns)]
    duplicated = table.filter(pl.struct(keys).is_duplicated())
    if len(duplicated):
        raise ValueError(f"{where}: {len(duplicated)} rows repeat a response number ({keys} = "
                         f"{duplicated.select(keys).row(0)} and others); a responses file numbers each once")
    return table


def check_ids(table: pl.DataFrame, vocab_size: int, where: str) -> None:
    """Refuse token ids no tokenizer of the pair writes: negative, missing, or past its ``vocab_size`` tokens
    (an output layer's padding rows included), before any model loads."""
    ids = table.select(pl.concat_list("prompt_ids", "response_ids").alias("ids")).explode("ids")["ids"]
    bad = ids.filter(ids.is_null() | (ids < 0) | (ids >= vocab_size))
    if len(bad):
        raise ValueError(f"{where}: token id {bad[0]} is not one of the pair's {vocab_size} tokens (ids 0 to "
                         f"{vocab_size - 1}; an output layer's padding rows are no token): the file was written for "
                         "another tokenizer or edited by hand; sample it again with this pair")


def cut_at_stops(table: pl.DataFrame, stop_ids) -> tuple[pl.DataFrame, int]:
    """The responses each cut after their first stop token (a turn that ran on past its end: sampled without
    the pair's end-of-turn token) and marked stopped, and how many were cut; nothing after a turn's end is
    scored."""
    stops, cut, ran_on = set(stop_ids), [], 0
    for ids in table["response_ids"].to_list():
        end = next((k + 1 for k, token in enumerate(ids) if token in stops), len(ids))
        ran_on += end < len(ids)
        cut.append(ids[:end])
    ends = pl.Series(cut, dtype=COLUMNS["response_ids"]).list.last()
    return table.with_columns(pl.Series("response_ids", cut, dtype=COLUMNS["response_ids"]),
                              stopped=pl.col("stopped") | ends.is_in(list(stops)).fill_null(False)), ran_on


def read(path: Path, where: str = "responses file") -> pl.DataFrame:
    """A responses (or cross-sample) Parquet file, checked."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{where} {path} does not exist")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PAR1":
        raise ValueError(f"{where} {path} is not a Parquet file: pass the .parquet that `tokenshift sample`, "
                         "`tokenshift cross-sample` or `tokenshift score` wrote")
    return pl.read_parquet(path)
