"""How a benchmark is put to a pair and judged: prompt templates, answer formats, and benchmark files that
list a problem twice."""

import json

import polars as pl
import pytest
from tokenshift.problems import data, math_answers, problem_sets

DAPO_STYLE = ("Solve the following math problem step by step. The last line of your response should be of the "
              "form Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n{problem}\n\n"
              "Remember to put your answer on its own line after \"Answer:\".")


@pytest.mark.parametrize("response, fmt, expected", [
    ("so x = 5, hence \\boxed{5}.", "boxed", "5"),
    ("so x = 5.\nAnswer: 5", "boxed", None),
    ("so x = 5.\nAnswer: 5", "answer_line", "5"),
    ("so x = 5.\n**Answer:** $\\frac{3}{4}$  ", "answer_line", "\\frac{3}{4}"),
    ("Answer: 4\nwait, recheck.\nAnswer: 5", "answer_line", "5"),
    ("first \\boxed{4}, then\nAnswer: 5", "either", "5"),  # whichever comes last
    ("Answer: 4\nso \\boxed{5}", "either", "5"),
    ("no final answer at all", "either", None),
    ("so my final answer: 6.", "answer_line", "6"),  # anywhere on a line, any case, trailing period dropped
    ("The final answer is $73$. I hope it is correct.", "answer_line", "73"),  # Minerva's closing sentence
    ("hence $\\boxed 7$", "boxed", "7"),
    ("no answer line here", "answer_line", None),
])
def test_the_final_answer_is_found_where_the_format_says(response, fmt, expected):
    assert math_answers.final_answer(response, fmt) == expected


def test_answer_formats_are_judged_by_math_verify_and_unknown_ones_refused():
    assert math_answers.is_correct("\\frac{3}{4}", "so\nAnswer: 0.75", "answer_line")
    assert not math_answers.is_correct("\\frac{3}{4}", "so\nAnswer: 0.75")  # boxed only: no boxed answer
    assert math_answers.is_correct("6", "\\boxed{6}") and not math_answers.is_correct("6", "\\boxed{7}", "either")
    with pytest.raises(ValueError, match="unknown answer format 'last_line'"):
        math_answers.final_answer("x", "last_line")


def test_a_prompt_template_needs_its_slot_once():
    assert problem_sets.check_prompt(DAPO_STYLE) == DAPO_STYLE
    for bad in ("Solve: {question}", "{problem} and again {problem}", None):
        with pytest.raises(ValueError, match=r"the slot \{problem\} exactly once"):
            problem_sets.check_prompt(bad)


def write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_a_problem_listed_twice_is_refused_naming_both_rows(tmp_path):
    rows = [{"problem": "Find x.", "answer": "1"}, {"problem": "Find y.", "answer": "2"},
            {"problem": "Find  x.\n", "answer": "1"}]  # the same problem, spaced differently
    with pytest.raises(ValueError, match=r"line 3 repeats the problem of .*line 1 .*files: 'data/train-\*'"):
        data.load_problems(write_jsonl(tmp_path / "p.jsonl", rows))


def test_a_hub_dataset_is_read_at_its_revision_from_the_splits_own_files(tmp_path, monkeypatch):
    """A dataset like yentinglin/aime_2025: its split in data/, and copies of the same problems in part1/."""
    folder = tmp_path / "snapshot"
    (folder / "data").mkdir(parents=True)
    (folder / "part1").mkdir()
    problems = [{"question": f"Problem {i}", "answer": str(i)} for i in range(4)]
    pl.DataFrame(problems).write_parquet(folder / "data" / "train-00000-of-00001.parquet")
    pl.DataFrame(problems[:2]).write_parquet(folder / "part1" / "train-00000-of-00001.parquet")
    calls = []

    def snapshot_download(repo_id, repo_type, allow_patterns, revision):
        calls.append((repo_id, repo_type, allow_patterns, revision))
        return str(folder)  # a real download would hold only the matching files; the loader filters anyway

    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    got = data.load_problems("org/aime", "question", files="data/train-*", revision="abc123")
    assert [p.problem for p in got] == [f"Problem {i}" for i in range(4)]
    assert calls == [("org/aime", "dataset", ["data/train-*"], "abc123")]
    with pytest.raises(ValueError, match="part1/train-00000-of-00001.parquet row 1 repeats the problem"):
        data.load_problems("org/aime", "question")
