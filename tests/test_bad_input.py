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
    from tokenshift.analyses.cross_sampling import cross_sample

    with pytest.raises(ValueError, match="max_new_tokens must be an integer of at least 1, got 0"):
        cross_sample(tiny_model, tiny_model, [[1, 5]], max_new_tokens=0, eos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.pad_token_id)
