"""Benchmark problems for real checkpoints: JSONL or Parquet files with ``problem`` and ``answer`` fields
(names configurable), or a hub dataset id when online. Malformed input is refused naming the file, line
and field."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from ..models.loading import looks_like_path, offline
from .problem_sets import MathProblem

SUFFIXES = (".jsonl", ".json", ".parquet")


def load_problems(source, problem_field: str = "problem", answer_field: str = "answer",
                  limit: int | None = None) -> list[MathProblem]:
    """Problems from a local file (``.jsonl``/``.parquet``), or a hub dataset id ("org/name", its JSONL or
    Parquet files) when online; the first ``limit`` of them if given."""
    path = Path(source).expanduser()
    if path.exists():
        rows = _read(path)
    elif path.suffix in SUFFIXES or looks_like_path(source):
        raise FileNotFoundError(f"data file {source} does not exist")
    else:
        rows = _read_hub(str(source))
    problems = []
    for where, row in rows:
        missing = [f for f in (problem_field, answer_field) if row.get(f) in (None, "")]
        if missing:
            raise ValueError(f"{where}: missing field {missing[0]!r} (has {sorted(row)}); name the fields with "
                             "problem_field/answer_field (CLI: --problem-field/--answer-field)")
        problems.append(MathProblem(str(row[problem_field]), str(row[answer_field])))
    if not problems:
        raise ValueError(f"{source} holds no problems")
    return problems[:limit]


def _read(path: Path) -> list[tuple[str, dict]]:
    if path.suffix == ".parquet":
        try:
            rows = pl.read_parquet(path).to_dicts()
        except pl.exceptions.PolarsError as e:
            raise ValueError(f"{path} cannot be read as Parquet ({str(e).splitlines()[0]}); pass a Parquet or "
                             "JSON-lines file of problems") from None
        return [(f"{path} row {i + 1}", row) for i, row in enumerate(rows)]
    if path.suffix not in (".jsonl", ".json"):
        raise ValueError(f"{path}: unknown format {path.suffix!r}; pass a .jsonl or .parquet file")
    rows = []
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark, as some editors write, is not data
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8 JSON "
                         "lines") from None
    for n, line in enumerate(text.splitlines(), start=1):  # \n, \r\n and \r line ends alike
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} line {n}: not valid JSON ({e.msg}); each line must be one JSON object") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path} line {n}: expected a JSON object with fields, got {type(row).__name__}")
        rows.append((f"{path} line {n}", row))
    return rows


def _read_hub(dataset_id: str) -> list[tuple[str, dict]]:
    if offline():
        raise ConnectionError(f"{dataset_id} is not a local file and is read as a hub dataset id, but the hub is "
                              "offline (HF_HUB_OFFLINE is set): pass a local .jsonl or .parquet file instead")
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(dataset_id, repo_type="dataset", allow_patterns=["*.jsonl", "*.parquet"]))
    except Exception as e:  # no network, unknown id, gated dataset: all mean "give a local file"
        raise ConnectionError(f"could not fetch hub dataset {dataset_id} ({type(e).__name__}: {e}); pass a local "
                              ".jsonl or .parquet file instead") from e
    files = sorted(p for p in folder.rglob("*") if p.suffix in (".jsonl", ".parquet"))
    if not files:
        raise ValueError(f"hub dataset {dataset_id} has no .jsonl or .parquet file; pass a local file instead")
    return [row for f in files for row in _read(f)]
