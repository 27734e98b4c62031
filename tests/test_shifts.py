from tokenshift import models, shifts
from tokenshift.cache import ArtifactCache

from conftest import TINY_SHAPE


def test_shift_table_is_cached_and_scores_the_reference_responses(tmp_path, tokenizer):
    base_dir, tuned_dir = tmp_path / "base", tmp_path / "tuned"
    models.save(models.new_model(tokenizer, TINY_SHAPE, seed=0), tokenizer, base_dir)
    models.save(models.new_model(tokenizer, TINY_SHAPE, seed=1), tokenizer, tuned_dir)
    config = shifts.ShiftConfig(n_problems=3, samples_per_problem=2, max_new_tokens=8)
    cache = ArtifactCache(tmp_path / "cache")
    table = shifts.shift_table(base_dir, tuned_dir, config, cache=cache, progress=False)
    refs = shifts.responses(tuned_dir, config, cache)
    assert len(refs) == 6 and len(table) == sum(len(r) for r in refs["response_ids"])
    assert (table["js"] > 0).any()
    entries = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert entries == ["responses", "shifts"]
    again = shifts.shift_table(base_dir, tuned_dir, config, cache=cache, progress=False)
    assert again.equals(table)
    # on the base's responses instead: a different entry, the same columns
    other = shifts.shift_table(base_dir, tuned_dir, config, reference=base_dir, cache=cache, progress=False)
    assert other.columns == table.columns and len(list((tmp_path / "cache" / "shifts").iterdir())) == 2


def test_fingerprint_follows_the_weights(tmp_path, tokenizer):
    a, b = tmp_path / "a", tmp_path / "b"
    models.save(models.new_model(tokenizer, TINY_SHAPE, seed=0), tokenizer, a)
    models.save(models.new_model(tokenizer, TINY_SHAPE, seed=0), tokenizer, b)
    assert shifts.model_fingerprint(a) == shifts.model_fingerprint(b)
    models.save(models.new_model(tokenizer, TINY_SHAPE, seed=2), tokenizer, b)
    assert shifts.model_fingerprint(a) != shifts.model_fingerprint(b)
    assert shifts.model_fingerprint("Qwen/Qwen2.5-32B") == "hub:Qwen/Qwen2.5-32B"
