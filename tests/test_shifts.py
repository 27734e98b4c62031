import polars as pl

from tokenshift import models, shifts, task
from tokenshift.cache import ArtifactCache, model_fingerprint
from tokenshift.problem_sets import OrganismProblems

from conftest import TINY_SHAPE


def test_shift_table_is_cached_and_scores_the_reference_responses(tmp_path, tokenizer):
    base_dir, tuned_dir = tmp_path / "base", tmp_path / "tuned"
    models.save(models.new_model(tokenizer, TINY_SHAPE, seed=0), tokenizer, base_dir)
    models.save(models.new_model(tokenizer, TINY_SHAPE, seed=1), tokenizer, tuned_dir)
    problems = OrganismProblems(task.sample_problems(3, "held_out", seed=0), tokenizer)
    # units of 2 prompts and 4 responses: the unit boundaries fall inside the problem set
    config = shifts.ShiftConfig(samples_per_problem=2, max_new_tokens=8, prompts_per_unit=2, responses_per_unit=4)
    cache = ArtifactCache(tmp_path / "cache")
    table = shifts.shift_table(base_dir, tuned_dir, problems, config, cache=cache, progress=False)
    refs = shifts.responses(tuned_dir, problems, config, cache)
    assert refs["response"].to_list() == list(range(6)) and refs["problem"].to_list() == [0, 0, 1, 1, 2, 2]
    assert len(table) == sum(len(r) for r in refs["response_ids"])
    assert table["response"].unique().sort().to_list() == list(range(6))
    assert (table["js"] > 0).any()
    assert table["base_top_ids"].dtype.shape == (5,) and (table["base_top_prob"].arr.sum() <= 1 + 1e-6).all()
    entries = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert entries == ["responses", "shifts"]
    assert not list((tmp_path / "cache").rglob("*.parts"))  # the units are merged and removed
    again = shifts.shift_table(base_dir, tuned_dir, problems, config, cache=cache, progress=False)
    assert again.equals(table)
    # on the base's responses instead: a different entry, the same columns
    other = shifts.shift_table(base_dir, tuned_dir, problems, config, reference=base_dir, cache=cache, progress=False)
    assert other.columns == table.columns and len(list((tmp_path / "cache" / "shifts").iterdir())) == 2


def test_an_interrupted_sampling_run_resumes_from_its_finished_units(tmp_path, tokenizer, tiny_model):
    problems = OrganismProblems(task.sample_problems(5, "held_out", seed=0), tokenizer)
    config = shifts.ShiftConfig(samples_per_problem=2, max_new_tokens=6, prompts_per_unit=2)
    whole = tmp_path / "whole.parquet"
    shifts.sample_responses(tiny_model, problems, config, whole, tmp_path / "parts-a", progress=False)
    # a run that stopped after its first unit left that unit behind; a marker frame shows it is reused as is
    parts = tmp_path / "parts-b"
    parts.mkdir()
    pl.read_parquet(whole).head(4).with_columns(pl.lit(True).alias("stopped")).write_parquet(parts / "unit-000000.parquet")
    resumed = tmp_path / "resumed.parquet"
    shifts.sample_responses(tiny_model, problems, config, resumed, parts, progress=False)
    a, b = pl.read_parquet(whole), pl.read_parquet(resumed)
    assert b["stopped"].head(4).all() and a.tail(6).equals(b.tail(6))
    assert not parts.exists()


def test_fingerprint_follows_the_weights(tmp_path, tokenizer):
    a, b = tmp_path / "a", tmp_path / "b"
    models.save(models.new_model(tokenizer, TINY_SHAPE, seed=0), tokenizer, a)
    models.save(models.new_model(tokenizer, TINY_SHAPE, seed=0), tokenizer, b)
    assert model_fingerprint(a) == model_fingerprint(b)
    models.save(models.new_model(tokenizer, TINY_SHAPE, seed=2), tokenizer, b)
    assert model_fingerprint(a) != model_fingerprint(b)
    assert model_fingerprint("Qwen/Qwen2.5-32B") == "hub:Qwen/Qwen2.5-32B"
