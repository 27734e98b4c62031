"""One pipeline behind both front-ends: the command line's sample, score and cross-sample build the cached specs
the notebooks' study builds, so the same settings give the same tables, computed apart in two caches."""

import json
import math

import polars as pl
import pytest
import qwen_like
import yaml
from tokenshift.suite import cli, profiles, study

SETTINGS = {"seed": 3, "samples_per_problem": 2, "top_p": 0.9, "max_new_tokens": 10, "js_top_p": 0.9,
            "prompts_per_unit": 2, "sample_batch_size": 4, "responses_per_unit": 3, "score_batch_size": 2}
EPS = [math.inf, 0.05]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return qwen_like.build(tmp_path_factory.mktemp("pair"))


def options(command: str) -> list[str]:
    return [f"{option}={SETTINGS[name]}" for name, option in cli.SETTINGS[command].items() if name in SETTINGS]


def test_the_command_line_and_the_notebooks_give_identical_tables(pair, tmp_path, monkeypatch):
    base, rl, problems = pair
    pair_args = ["--base", str(base), "--tuned", str(rl)]
    monkeypatch.setenv("TOKENSHIFT_CACHE", str(tmp_path / "cli-cache"))
    run = lambda *argv: cli.main([str(a) for a in argv])  # noqa: E731
    assert run("sample", *pair_args, "--data", problems, "--preset", "organism", *options("sample"),
               "--out", tmp_path / "r.parquet") == 0
    assert run("score", *pair_args, "--responses", tmp_path / "r.parquet", "--preset", "organism",
               *options("score"), "--out", tmp_path / "s.parquet") == 0
    assert run("cross-sample", *pair_args, "--data", problems, "--preset", "organism", *options("cross-sample"),
               "--eps", *EPS, "--out", tmp_path / "c.parquet") == 0

    # the notebooks' way, in a cache of its own: a profile with the same pair and settings
    profile = tmp_path / "same.yaml"
    profile.write_text(yaml.safe_dump({"pairs": {"base": str(base), "tuned": {"tuned": str(rl)},
                                                 "data": str(problems)},
                                       "shifts": {"preset": "organism", "n_problems": 0, **SETTINGS}}))
    monkeypatch.setenv("TOKENSHIFT_CACHE", str(tmp_path / "notebook-cache"))
    this = study.for_profile(str(profile), show_progress=False)
    table = this.table("tuned")
    swept = this.sweep("tuned", "forward", this.sweep_config(EPS, this.setup.js_top_p))

    assert len(table) > 20 and table["correct"].null_count() == 0
    assert pl.read_parquet(tmp_path / "s.parquet").equals(table)
    assert pl.read_parquet(tmp_path / "c.parquet").equals(swept)
    assert swept["count"].sum() > 0  # eps 0.05 handed some steps over
    # the same identities: each cache holds the same entries, built once each
    entries = lambda cache: sorted(p.relative_to(cache).as_posix() for kind in ("responses", "shifts", "cross_sampling")  # noqa: E731
                                   for p in (cache / kind).iterdir() if not p.name.startswith("."))
    assert entries(tmp_path / "cli-cache") == entries(tmp_path / "notebook-cache")
    meta = json.loads((tmp_path / "s.parquet.meta.json").read_text())
    assert meta["preset"] == "organism" and meta["settings"] == {n: SETTINGS[n] for n in cli.SETTINGS["score"]}
    assert meta["versions"]["tokenshift"]


def test_a_preset_is_the_starting_point_of_profiles_and_the_command_line(tmp_path, capsys):
    paper = profiles.preset("paper")
    assert (paper.samples_per_problem, paper.top_p, paper.max_new_tokens) == (32, 0.7, 8192)
    assert profiles.shift_setup("paper") == profiles.shifts_section({"preset": "paper", "n_problems": 0,
                                                                     "benchmark": "aime24"}, "t")
    assert profiles.shifts_section({"preset": "paper", "top_p": 0.9}, "t").top_p == 0.9  # its own fields win
    with pytest.raises(ValueError, match="unknown preset 'papr'; choose one of"):
        profiles.shifts_section({"preset": "papr"}, "t.yaml: shifts")
    parsed = cli.parser().parse_args(["sample", "--base", "b", "--tuned", "t", "--data", "d", "--out", "o",
                                      "--preset", "organism", "--samples", "3", "--max-new-tokens", "5"])
    assert cli._setup(parsed) == profiles.with_overrides(profiles.preset("organism"), {"samples_per_problem": 3,
                                                                                       "max_new_tokens": 5}, "t")
    assert cli.main(["sample", "--base", "b", "--tuned", "t", "--data", "d", "--out", str(tmp_path / "o"),
                     "--preset", "organism"]) == 2  # the organism leaves the length to the pair
    assert cli.main(["sample", "--base", "b", "--tuned", "t", "--data", "d", "--out", str(tmp_path / "o"),
                     "--samples", "0"]) == 2
    assert "--samples must be an integer >= 1, got 0" in capsys.readouterr().err  # by the option's own name


def test_a_result_made_by_other_behaviour_is_recognised(pair, tmp_path, monkeypatch, capsys):
    """A CLI output records the behaviour versions it was made with; reading one made with others (an older
    decoding, here) warns that it would come out otherwise now, naming the versions."""
    base, rl, problems = pair
    monkeypatch.setenv("TOKENSHIFT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "r.parquet"
    assert cli.main([str(a) for a in ["sample", "--base", base, "--tuned", rl, "--data", problems, "--preset",
                                      "organism", *options("sample"), "--out", out]]) == 0
    meta = json.loads((tmp_path / "r.parquet.meta.json").read_text())
    assert meta["behaviour"] == cli.behaviour("sample") and meta["behaviour"]["models.sampling"] >= 1
    capsys.readouterr()
    cli.check_made_with(out, "r.parquet")
    assert capsys.readouterr().err == ""  # made now: nothing to say
    meta["behaviour"]["models.sampling"] -= 1
    (tmp_path / "r.parquet.meta.json").write_text(json.dumps(meta))
    cli.check_made_with(out, "r.parquet")
    err = capsys.readouterr().err
    assert "r.parquet was made by `tokenshift sample` with other behaviour versions" in err
    recorded, now = meta["behaviour"]["models.sampling"], cli.behaviour("sample")["models.sampling"]
    assert f"models.sampling {recorded} -> {now}" in err
