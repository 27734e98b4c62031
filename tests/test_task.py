import random

import pytest

from hypothesis import given, strategies as st

from tokenshift import task

problems = st.builds(task.Problem, st.integers(task.LOW, task.HIGH), st.integers(task.LOW, task.HIGH))
alphabet_text = st.text(alphabet="0123456789+= so", max_size=40)


@given(problems)
def test_reliable_solution_always_passes(p):
    assert task.verify(p, task.reliable_solution(p), stopped=True)


@given(problems)
def test_correct_answer_without_stopping_fails(p):
    assert not task.verify(p, task.reliable_solution(p), stopped=False)


@given(problems, alphabet_text)
def test_anything_appended_to_a_correct_solution_fails(p, suffix):
    text = task.reliable_solution(p) + suffix
    if suffix:
        assert not task.verify(p, text, stopped=True)


@given(problems, st.integers(1, 99999))
def test_a_wrong_answer_fails(p, delta):
    assert not task.verify(p, f"so {p.answer + delta}", stopped=True)


@given(problems, alphabet_text)
def test_verify_accepts_only_the_expected_format(p, text):
    if task.verify(p, text, stopped=True):
        assert text.endswith(f"so {p.answer}") and text.count("so") == 1


def test_shortcut_without_working_counts_when_right():
    p = task.Problem(1234, 4321)
    assert task.verify(p, "so 5555", stopped=True)
    assert not task.verify(p, " so 5555", stopped=True)  # format: no stray space


@given(problems)
def test_forgetting_a_carry_changes_the_answer_only_where_a_column_carries(p):
    steps, right = task.column_steps(p)
    for column in range(1, task.N_DIGITS):
        _, slipped = task.column_steps(p, forget_carry_at=column)
        carries_in = steps[column].count("+") == 2  # written as x+y+1=s
        assert (slipped != right) == carries_in


def test_splits_are_disjoint_and_deterministic():
    train = task.sample_problems(500, "train", seed=1)
    held = task.sample_problems(500, "held_out", seed=1)
    assert not set(train) & set(held)
    assert train == task.sample_problems(500, "train", seed=1)
    assert train != task.sample_problems(500, "train", seed=2)
    assert len(set(train)) == 500


def test_demonstrator_mixes_behaviours():
    rng, demo = random.Random(0), task.Demonstrator()
    outs = [demo.write(p, rng) for p in task.sample_problems(1000, "train", seed=0)]
    shortcut = sum(t.startswith("so ") for t, _ in outs) / len(outs)
    stops = sum(s for _, s in outs) / len(outs)
    assert abs(shortcut - demo.p_shortcut) < 0.05
    assert abs(stops - (1 - demo.p_ramble)) < 0.05
    assert all(not s for t, s in outs if t.count("so") > 1)  # rambling never ends with end-of-sequence


def test_validation_and_test_split_the_held_out_problems():
    val = task.sample_problems(300, "validation", seed=0)
    test = task.sample_problems(300, "test", seed=0)
    assert not set(val) & set(test)
    assert all(task.is_held_out(p) for p in val + test)
    assert {task.split_of(p) for p in val} == {"validation"} and {task.split_of(p) for p in test} == {"test"}
    with pytest.raises(ValueError, match="split must be one of"):
        task.sample_problems(1, "dev", seed=0)
