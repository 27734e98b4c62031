"""The per-token shift table of a model pair, cached: sample reference responses, then score both models.

As in the paper, the reference paths are by default the tuned (RL) model's own samples on held-out
problems; any other model's samples can be used instead (``reference``). Samples and tables are stored as
Parquet in the artifact cache under the models' fingerprints and the ``ShiftConfig``, so the notebooks
01, 02 and 04 share them and a second run reads them back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from . import divergence, evaluation, models, sampling, scoring, task
from .cache import ArtifactCache

SHIFT_CODE = (divergence, scoring, sampling, evaluation, task, models)


@dataclass(frozen=True)
class ShiftConfig:
    n_problems: int = 200  # held-out problems whose responses are scored
    samples_per_problem: int = 4  # reference responses per problem
    temperature: float = 1.0  # sampling of the reference responses
    top_p: float = 1.0  # sampling of the reference responses (the organism's policies are sampled untruncated)
    js_top_p: float = 0.7  # p of the top-p truncated JS (the paper's 0.7)
    max_new_tokens: int = 48
    seed: int = 0


def model_fingerprint(path) -> str:
    """Identity of a model directory for cache keys: its config and weights (large files by size and date)."""
    path = Path(path)
    if not path.is_dir():
        return f"hub:{path}"  # a hub id: the name is all we know offline
    h = hashlib.sha256()
    for f in sorted(p for p in path.iterdir() if p.is_file()):
        stat = f.stat()
        h.update(f.name.encode())
        if stat.st_size < 64 << 20:
            h.update(f.read_bytes())
        else:  # hashing tens of GB of weights on every use would cost minutes
            h.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return h.hexdigest()


def held_out_problems(config: ShiftConfig) -> list[task.Problem]:
    return task.sample_problems(config.n_problems, "held_out", seed=config.seed)


def responses(model_dir, config: ShiftConfig, cache: ArtifactCache | None = None) -> pl.DataFrame:
    """The model's sampled responses to the held-out problems: one row per response, EOS included."""
    cache = cache or ArtifactCache()

    def build(out: Path):
        model, tok = models.load(model_dir)
        problems = held_out_problems(config)
        prompts = evaluation.prompt_ids(problems, tok)
        out_samples = sampling.sample(model, prompts, n=config.samples_per_problem,
                                      max_new_tokens=config.max_new_tokens, eos_token_id=tok.eos_token_id,
                                      pad_token_id=tok.pad_token_id, temperature=config.temperature,
                                      top_p=config.top_p, seed=config.seed)
        pl.DataFrame({
            "problem": out_samples.prompt_index,
            "prompt_ids": [prompts[i] for i in out_samples.prompt_index],
            "response_ids": [ids + [tok.eos_token_id] * s
                             for ids, s in zip(out_samples.response_ids, out_samples.stopped)],
            "stopped": out_samples.stopped,
            "correct": [bool(r) for r in evaluation.rewards(problems, out_samples, tok)],
        }).write_parquet(out / "responses.parquet")

    key = {"model": model_fingerprint(model_dir), "config": config}
    return pl.read_parquet(cache.get_or_build("responses", key, build, code=SHIFT_CODE) / "responses.parquet")


def shift_table(base_dir, tuned_dir, config: ShiftConfig, reference=None, cache: ArtifactCache | None = None,
                progress: bool = True) -> pl.DataFrame:
    """Per-position metrics of ``base_dir`` vs ``tuned_dir`` on ``reference``'s responses (default: the tuned
    model's own), one row per (response, position); see ``scoring.score_pair`` for the columns."""
    cache = cache or ArtifactCache()
    reference = tuned_dir if reference is None else reference
    refs = responses(reference, config, cache)

    def build(out: Path):
        base, base_tok = models.load(base_dir)
        tuned, tuned_tok = models.load(tuned_dir)
        scoring.check_same_vocabulary(base_tok, tuned_tok)
        table = scoring.score_pair(base, tuned, base_tok, refs["prompt_ids"].to_list(),
                                   refs["response_ids"].to_list(), correct=refs["correct"].to_list(),
                                   top_p=config.js_top_p, progress=progress)
        table.write_parquet(out / "shifts.parquet")

    key = {"base": model_fingerprint(base_dir), "tuned": model_fingerprint(tuned_dir),
           "reference": model_fingerprint(reference), "config": config}
    return pl.read_parquet(cache.get_or_build("shifts", key, build, code=SHIFT_CODE) / "shifts.parquet")
