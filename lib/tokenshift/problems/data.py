"""Benchmark problems for real checkpoints: JSONL or Parquet files with ``problem`` and ``answer`` fields
(names configurable), or a hub dataset id when online (at a pinned revision, reading the split's own files).
Malformed input is refused naming the file, line and field, and so is a problem that appears twice (a hub
dataset that keeps copies of its split in several folders doubles its problems when every file is read)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from ..core.cache import COMMIT, file_digest
from ..core.paths import looks_like_path
from ..models.loading import offline
from .problem_sets import MathProblem

SUFFIXES = (".jsonl", ".json", ".parquet")


def load_problems(source, problem_field: str = "problem", answer_field: str = "answer",
                  limit: int | None = None, files: str = "", revision: str = "",
                  count: int | None = None) -> list[MathProblem]:
    """Problems from a local file (``.jsonl``/``.parquet``), or a hub dataset id ("org/name") when online: the
    files matching ``files`` (a glob, e.g. "data/train-*"; default every JSONL and Parquet file) at commit
    ``revision`` (default: the main branch). Exactly ``count`` of them when given, or an error naming what was
    found; the first ``limit`` of them if given."""
    path = Path(source).expanduser()
    if path.exists():
        rows = _read(path)
    elif path.suffix in SUFFIXES or looks_like_path(source):
        raise FileNotFoundError(f"data file {source} does not exist")
    else:
        rows = _read_hub(str(source), files, revision)
    problems, seen = [], {}
    for where, row in rows:
        missing = [f for f in (problem_field, answer_field) if row.get(f) in (None, "")]
        if missing:
            raise ValueError(f"{where}: missing field {missing[0]!r} (has {sorted(row)}); name the fields with "
                             "problem_field/answer_field (CLI: --problem-field/--answer-field)")
        text = str(row[problem_field])
        first = seen.setdefault(" ".join(text.split()), where)
        if first != where:
            raise ValueError(f"{where} repeats the problem of {first} ({text[:60]!r}...): a benchmark lists each "
                             "problem once. A hub dataset may keep its split in several folders: read one split's "
                             "files (pairs.data: {dataset: ID, files: 'data/train-*'}; CLI: --data-files)")
        problems.append(MathProblem(text, str(row[answer_field])))
    if not problems:
        raise ValueError(f"{source} holds no problems")
    if count is not None and len(problems) != count:
        at = f"@{revision}" if revision else ""
        raise ValueError(f"{source}{at}{f' ({files})' if files else ''} holds {len(problems)} problems, not the "
                         f"{count} it should (first {problems[0].problem[:50]!r}, last {problems[-1].problem[:50]!r}): "
                         "read only the split's own files (files:), pin the revision that holds them, or correct "
                         "problems:")
    return problems[:limit]


def provenance(source, files: str = "", revision: str = "") -> str:
    """Where a benchmark's problems come from, as a run records it: a local file and its sha256, or a hub dataset
    at the commit it names or resolved to (from the local hub cache after the first download)."""
    path = Path(source).expanduser()
    if path.exists():
        return f"local file {path.resolve()} (sha256 {file_digest(path)})"
    commit = revision if COMMIT.match(revision or "") else None
    if commit is None:
        from huggingface_hub import snapshot_download

        try:
            commit = Path(snapshot_download(str(source), repo_type="dataset", revision=revision or None,
                                            allow_patterns=[files] if files else ["*.jsonl", "*.parquet"],
                                            local_files_only=True)).name
        except Exception:  # not downloaded here: the run itself read it from the hub, or failed saying why
            commit = f"{revision or 'main'} (unresolved)"
    return f"{source}@{commit}{f' ({files})' if files else ''}"


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
    # read_text turns \r\n and a bare \r into \n; lines end there alone, as a JSON string may hold other line
    # breaks (U+2028, U+0085) that str.splitlines would cut at
    for n, line in enumerate(text.split("\n"), start=1):
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


def _read_hub(dataset_id: str, files: str = "", revision: str = "") -> list[tuple[str, dict]]:
    if offline():
        raise ConnectionError(f"{dataset_id} is not a local file and is read as a hub dataset id, but the hub is "
                              "offline (HF_HUB_OFFLINE is set): pass a local .jsonl or .parquet file instead")
    from huggingface_hub import snapshot_download

    patterns = [files] if files else ["*.jsonl", "*.parquet"]
    try:
        folder = Path(snapshot_download(dataset_id, repo_type="dataset", allow_patterns=patterns,
                                        revision=revision or None))
    except Exception as e:  # no network, unknown id or revision, gated dataset: all mean "give a local file"
        raise ConnectionError(f"could not fetch hub dataset {dataset_id} ({type(e).__name__}: {e}); pass a local "
                              ".jsonl or .parquet file instead") from e
    found = sorted(p for p in folder.rglob("*") if p.suffix in (".jsonl", ".parquet")
                   and (not files or p.relative_to(folder).match(files)))
    if not found:
        matching = f" matching {files}" if files else ""
        raise ValueError(f"hub dataset {dataset_id} has no .jsonl or .parquet file{matching}; pass a local file instead")
    return [row for f in found for row in _read(f)]
