"""The atlas end to end on two tiny local pairs of the Qwen shape: each prompted and graded as its registry
entry says, one comparison table and figure, and a rerun that resumes without redoing a finished pair."""

import polars as pl
import pytest
import qwen_like
import yaml
from test_prompts_and_answers import DAPO_STYLE
from tokenshift.suite import atlas, cli


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("atlas")
    base, rl, problems = qwen_like.build(root / "taught")
    same_base, untaught, _ = qwen_like.build(root / "untaught", teach=False)  # its "RL" model is the base itself
    pairs = {"boxed-pair": {"base": str(base), "tuned": {"rl": str(rl)}, "data": str(problems),
                            "template_from": "rl", "checked": "a test pair"},
             "dapo-style": {"base": str(same_base), "tuned": {"same": str(untaught)}, "data": str(problems),
                            "prompt": DAPO_STYLE, "answer_format": "answer_line", "grader": "dapo",
                            "max_new_tokens": 12}}
    shifts = {"n_problems": 0, "samples_per_problem": 2, "max_new_tokens": 16, "prompts_per_unit": 3}
    path = root / "pairs.yaml"
    path.write_text(yaml.safe_dump({"shifts": shifts, "pairs": pairs}))
    return path


def test_the_atlas_compares_each_pair_run_its_own_way(registry, tmp_path):
    assert cli.main(["atlas", "--registry", str(registry), "--out-dir", str(tmp_path)]) == 0
    table = pl.read_parquet(tmp_path / "atlas.parquet")
    assert table["pair"].to_list() == ["boxed-pair", "dapo-style"] and table["model"].to_list() == ["rl", "same"]
    boxed, dapo = table.row(0, named=True), table.row(1, named=True)
    assert "Please reason step by step" in boxed["first_prompt"] and "Answer: $Answer" in dapo["first_prompt"]
    assert boxed["grading"] == "math-verify on the last \\boxed{}" and dapo["grading"].startswith("DAPO's own")
    assert table["max_new_tokens"].to_list() == [16, 12]  # the atlas's stated budget, or the pair's own if shorter
    assert dapo["frac_full_js_lt_0.01"] == 1.0 and dapo["mean_js"] == 0.0  # a model against itself
    assert boxed["frac_full_js_lt_0.01"] < 1.0 and boxed["checked"] == "a test pair" and dapo["checked"] == "unchecked"
    assert (tmp_path / "atlas.png").read_bytes()[:4] == b"\x89PNG"


def test_an_interrupted_atlas_resumes_without_redoing_a_finished_pair(registry, tmp_path, monkeypatch, capsys):
    real, computed = atlas.pair_rows, []

    def second_fails(name, *args, **kwargs):
        if name == "dapo-style":
            raise ValueError("interrupted")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(atlas, "pair_rows", second_fails)
    assert cli.main(["atlas", "--registry", str(registry), "--out-dir", str(tmp_path)]) == 2
    assert (tmp_path / "pairs" / "boxed-pair.parquet").is_file() and not (tmp_path / "atlas.parquet").exists()
    monkeypatch.setattr(atlas, "pair_rows", lambda name, *a, **k: computed.append(name) or real(name, *a, **k))
    assert cli.main(["atlas", "--registry", str(registry), "--out-dir", str(tmp_path)]) == 0
    assert computed == ["dapo-style"] and len(pl.read_parquet(tmp_path / "atlas.parquet")) == 2


def test_a_registry_is_checked_whole_before_the_first_pair_runs(registry, tmp_path, capsys):
    assert cli.main(["atlas", "--registry", str(registry), "--pairs", "nope", "--out-dir", str(tmp_path)]) == 2
    assert "has no pair(s) ['nope']" in capsys.readouterr().err
    spec = yaml.safe_load(registry.read_text())
    spec["pairs"]["dapo-style"]["grader"] = "minerva"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(spec))
    assert cli.main(["atlas", "--registry", str(bad), "--out-dir", str(tmp_path / "out")]) == 2
    assert "pairs.dapo-style: unknown grader 'minerva'" in capsys.readouterr().err
    assert not (tmp_path / "out" / "pairs" / "boxed-pair.parquet").exists()  # nothing ran


def test_the_repositorys_registry_states_its_budget_and_each_pairs_own():
    setup, entries = atlas.load_registry(cli.REPO / "registry" / "pairs.yaml")
    assert setup.max_new_tokens > 0 and all(e["max_new_tokens"] > 0 and e["checked"] for e in entries.values())
    assert entries["dapo-qwen-32b"]["grader"] == "dapo" and entries["dapo-qwen-32b"]["answer_format"] == "answer_line"
    zoo = entries["simplerl-zoo-qwen2.5-32b"]  # SimpleRL-Zoo's qwen-boxed prompt, graded by Qwen2.5-Math's code
    assert zoo["grader"] == "qwen-math" and zoo["system"] == "You are a helpful assistant."
