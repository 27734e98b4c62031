"""Bad input tried as a new user would: each gives a clear, named error or the right result, never a traceback
from deep inside a library or a silent wrong number."""

import json

import polars as pl
import pytest
from tokenshift.models import responses
from tokenshift.models.sampling import sample
from tokenshift.problems import data
from tokenshift.suite import cli


@pytest.mark.parametrize("encoding, newline", [("utf-8-sig", "\n"), ("utf-8", "\r\n"), ("utf-8-sig", "\r\n")])
def test_jsonl_with_a_byte_order_mark_crlf_and_blank_lines_is_read(tmp_path, encoding, newline):
    rows = [{"problem": "1+1?", "answer": "2"}, {"problem": "2+2?", "answer": "4"}]
    text = newline.join([json.dumps(rows[0]), "", "   ", json.dumps(rows[1]), "", ""])
    path = tmp_path / "p.jsonl"
    path.write_bytes(text.encode(encoding))
    assert [(p.problem, p.answer) for p in data.load_problems(path)] == [("1+1?", "2"), ("2+2?", "4")]


def test_a_problem_file_that_is_not_what_it_says_is_named(tmp_path):
    (tmp_path / "p.parquet").write_text('{"problem": "1+1?", "answer": "2"}')
    with pytest.raises(ValueError, match=r"p.parquet cannot be read as Parquet"):
        data.load_problems(tmp_path / "p.parquet")
    (tmp_path / "q.jsonl").write_bytes(b"\xff\xfe{}")
    with pytest.raises(ValueError, match=r"q.jsonl is not UTF-8 text"):
        data.load_problems(tmp_path / "q.jsonl")


def responses_table(n=3):
    return pl.DataFrame({"response": list(range(n)), "problem": [0] * n, "prompt_ids": [[1, 5]] * n,
                         "response_ids": [[6, 2]] * n, "stopped": [True] * n}, schema=responses.COLUMNS)


def test_a_responses_file_that_is_not_parquet_or_lacks_columns_is_named(tmp_path, capsys):
    text = tmp_path / "r.parquet"
    text.write_text("response,problem\n0,0\n")
    args = ["score", "--base", "b", "--tuned", "t", "--out", str(tmp_path / "o.parquet"), "--responses"]
    assert cli.main([*args, str(text)]) == 2
    assert f"--responses {text} is not a Parquet file" in capsys.readouterr().err
    thin = tmp_path / "thin.parquet"
    responses_table().drop("prompt_ids").write_parquet(thin)
    assert cli.main([*args, str(thin)]) == 2
    assert "lacks the column(s) ['prompt_ids'] of a responses file" in capsys.readouterr().err
    doubled = tmp_path / "doubled.parquet"
    pl.concat([responses_table(), responses_table()]).write_parquet(doubled)
    assert cli.main([*args, str(doubled)]) == 2
    assert "rows repeat a response number" in capsys.readouterr().err
    wrong = tmp_path / "wrong.parquet"
    responses_table().with_columns(pl.col("response").cast(pl.String)).write_parquet(wrong)
    assert cli.main([*args, str(wrong)]) == 2
    assert "column types {'response': 'String'}" in capsys.readouterr().err


def test_the_viewer_and_summary_refuse_files_of_the_wrong_kind(tmp_path, capsys):
    path = tmp_path / "r.parquet"
    responses_table().write_parquet(path)
    assert cli.main(["view", str(path), "--tokenizer", "x", "--out", str(tmp_path / "v.html")]) == 2
    assert "lacks the column(s) ['base_top_ids', 'js', 'js_top_p', 'position', 'token_id', 'tuned_top_ids'] of a " \
           "scored file" in capsys.readouterr().err
    assert cli.main(["summarise", str(tmp_path / "missing.parquet")]) == 2
    (tmp_path / "notes.parquet").write_text("hello")
    assert cli.main(["summarise", str(tmp_path / "notes.parquet")]) == 2
    assert "is not a Parquet file" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, message", [
    ({"max_new_tokens": 0}, "max_new_tokens must be an integer of at least 1, got 0"),
    ({"n": 0}, "n must be an integer of at least 1"),
    ({"batch_size": 0}, "batch_size must be an integer of at least 1"),
    ({"temperature": -1.0}, "temperature must be a finite number >= 0"),
    ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
])
def test_impossible_sampling_settings_are_refused_by_name(tokenizer, tiny_model, kwargs, message):
    settings = {"max_new_tokens": 4, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id,
                **kwargs}
    with pytest.raises(ValueError, match=message):
        sample(tiny_model, [[1, 5]], **settings)


def test_the_same_checks_guard_cross_sampling(tokenizer, tiny_model):
    from tokenshift.analyses.cross_sampling import cross_sample_by_names as cross_sample

    with pytest.raises(ValueError, match="max_new_tokens must be an integer of at least 1, got 0"):
        cross_sample(tiny_model, tiny_model, [[1, 5]], max_new_tokens=0, eos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.pad_token_id)


# The eleven cases a new user met that ended in a traceback, a silent success or a wrong refusal (issue 29):
# each now ends in one line that names the input, the problem and the fix, exit status 2, nothing half-written.

@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    import qwen_like

    return qwen_like.build(tmp_path_factory.mktemp("pair"), teach=False)


def one_line_error(capsys, *fragments):
    """The one error line (progress bars aside), holding every fragment, and no traceback."""
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_a_nan_threshold_is_refused_before_anything_runs(pair, tmp_path, capsys):
    base, rl, problems = pair
    out = tmp_path / "x.parquet"
    assert cli.main(["cross-sample", "--base", str(base), "--tuned", str(rl), "--data", str(problems), "--eps",
                     "0.1", "nan", "--out", str(out)]) == 2
    one_line_error(capsys, "--eps must be a number, or inf, got NaN")
    assert not out.exists() and not list(tmp_path.iterdir())


def test_a_notebook_parameter_of_the_wrong_type_is_refused(tmp_path, capsys):
    import yaml
    from tokenshift.suite import profiles, runner

    spec = profiles.load("smoke")
    spec["notebooks"]["03_cross_sampling"]["bisection_steps"] = "two"
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert runner.main(["--profile", str(path)]) == 2
    one_line_error(capsys, "notebook 03_cross_sampling parameter bisection_steps must be like its default 2 (int), "
                           "got 'two' (str)")
    spec["notebooks"]["03_cross_sampling"]["bisection_steps"] = 1
    spec["notebooks"]["03_cross_sampling"]["eps_grid"] = [0.1, float("nan")]
    path.write_text(yaml.safe_dump(spec))
    assert runner.main(["--profile", str(path)]) == 2
    one_line_error(capsys, "eps_grid must be a number, or inf, got NaN")


def test_verifying_a_cache_root_that_does_not_exist_is_an_error(tmp_path, capsys):
    assert cli.main(["cache", "--verify", "--root", str(tmp_path / "typo")]) == 2
    one_line_error(capsys, f"cache root {tmp_path / 'typo'} does not exist: check --root")
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize("bad_id, what", [(-3, "token id -3"), (10**6, "token id 1000000"),
                                          ("padding", "is not one of the pair's")])
def test_token_ids_outside_the_pairs_vocabulary_are_refused_before_any_model_loads(pair, tmp_path, capsys,
                                                                                    monkeypatch, bad_id, what):
    from tokenshift.models import loading
    from transformers import AutoTokenizer

    base, rl, _ = pair
    vocab = len(AutoTokenizer.from_pretrained(base))
    bad_id = vocab + 1 if bad_id == "padding" else bad_id  # a row of the padded output layer
    table = responses_table().with_columns(pl.lit([5, bad_id]).alias("response_ids"))
    path = tmp_path / "r.parquet"
    table.write_parquet(path)
    monkeypatch.setattr(loading, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    assert cli.main(["score", "--base", str(base), "--tuned", str(rl), "--responses", str(path), "--out",
                     str(tmp_path / "o.parquet")]) == 2
    one_line_error(capsys, what, f"the pair's {vocab} tokens", "sample it again with this pair")


def test_a_model_directory_without_a_tokenizer_is_named(pair, tmp_path, capsys):
    import shutil

    base, rl, _ = pair
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in base.iterdir():
        if f.name in ("config.json", "model.safetensors", "generation_config.json"):
            shutil.copy(f, bare)
    path = tmp_path / "r.parquet"
    responses_table().write_parquet(path)
    assert cli.main(["score", "--base", str(bare), "--tuned", str(rl), "--responses", str(path), "--out",
                     str(tmp_path / "o.parquet")]) == 2
    one_line_error(capsys, f"model directory {bare} holds no tokenizer", "tokenizer.save_pretrained(DIR)")


def test_a_profile_that_is_not_yaml_is_named_with_its_line(tmp_path, capsys):
    from tokenshift.suite import runner

    path = tmp_path / "broken.yaml"
    path.write_text("shifts:\n  seed: 0\n samples_per_problem: [2\n")
    assert runner.main(["--profile", str(path)]) == 2
    one_line_error(capsys, f"{path} is not valid YAML", "at line")


def test_a_full_disk_leaves_no_half_written_output_and_the_previous_one_untouched(pair, tmp_path, capsys,
                                                                                  monkeypatch):
    import errno

    base, rl, problems = pair
    out = tmp_path / "s.parquet"
    out.write_bytes(b"the previous run's output")
    write = pl.DataFrame.write_parquet
    calls = []

    def fills_the_disk(self, file, *a, **k):  # the third write (the merged file) finds the disk full
        calls.append(file)
        if len(calls) == 3:
            with open(file, "wb") as f:
                f.write(b"PAR1 half")
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return write(self, file, *a, **k)

    monkeypatch.setattr(pl.DataFrame, "write_parquet", fills_the_disk)
    assert cli.main(["sample", "--base", str(base), "--tuned", str(rl), "--data", str(problems), "--samples", "1",
                     "--max-new-tokens", "4", "--prompts-per-unit", "2", "--out", str(out)]) == 2
    one_line_error(capsys, "No space left on device", "free some space", "earlier output is left as it was")
    assert out.read_bytes() == b"the previous run's output"
    assert not [p for p in tmp_path.rglob("*.tmp")]  # finished units stay in the parts folder for a resume


def test_tidying_a_cache_on_a_read_only_file_system_is_one_line(tmp_path, capsys, monkeypatch):
    import builtins
    import errno

    (tmp_path / "cache" / "responses" / ".abc-123").mkdir(parents=True)  # a killed build's leftovers
    real_open = builtins.open

    def read_only(file, mode="r", *a, **k):
        if any(m in mode for m in "wax+"):
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", read_only)
    assert cli.main(["cache", "--clean", "--root", str(tmp_path / "cache")]) == 2
    one_line_error(capsys, "Read-only file system", "use a writable location")


def test_jsonl_strings_may_hold_unicode_line_separators(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [{"problem": "first\u2028second line", "answer": "2"}, {"problem": "x\u0085y", "answer": "3"}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert [(p.problem, p.answer) for p in data.load_problems(path)] == [("first\u2028second line", "2"),
                                                                          ("x\u0085y", "3")]
    path.write_bytes(b'{"problem": "1+1?", "answer": "2"}\r{"problem": "2+2?", "answer": "4"}\r')  # old Mac line ends
    assert [p.answer for p in data.load_problems(path)] == ["2", "4"]
