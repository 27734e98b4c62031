import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tokenshift.organism import task

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


def reference_verify(problem, text, stopped):
    """An independent reading of the verifier's rule: space-separated column steps "x+y=s" or "x+y+1=s" (one
    digit each side, a one- or two-digit sum), then "so" and an answer of one to six digits equal to the sum."""
    parts = text.split(" ")
    if not stopped or len(parts) < 2 or parts[-2] != "so":
        return False
    for step in parts[:-2]:
        lhs, eq, total = step.partition("=")
        terms = lhs.split("+")
        if not eq or not 1 <= len(total) <= 2 or not total.isdigit() or len(terms) not in (2, 3):
            return False
        if not all(len(t) == 1 and t.isdigit() for t in terms[:2]) or (len(terms) == 3 and terms[2] != "1"):
            return False
    answer = parts[-1]
    return 1 <= len(answer) <= 6 and answer.isdigit() and int(answer) == problem.answer


ALPHABET = "0123456789+= so"


def single_edits(text):
    """Every text one edit away: each character changed, dropped, or swapped with the next, each character
    of the alphabet added anywhere."""
    for i in range(len(text)):
        yield text[:i] + text[i + 1:]
        if i + 1 < len(text):
            yield text[:i] + text[i + 1] + text[i] + text[i + 2:]
        for c in ALPHABET:
            yield text[:i] + c + text[i + 1:]
    for i in range(len(text) + 1):
        for c in ALPHABET:
            yield text[:i] + c + text[i:]


def test_verify_judges_every_near_miss_as_its_rule_says():
    """Every single-character edit of right answers, with and without working: most break the format or the
    answer, some stay right (a changed step is not checked, a leading zero is harmless); the verifier must agree
    with an independent reading of its rule on each, stopped or not."""
    accepted = rejected = 0
    for p in [task.Problem(4821, 3759), task.Problem(1000, 2000), task.Problem(9999, 9999)]:
        for right in (task.reliable_solution(p), f"so {p.answer}"):
            for text in single_edits(right):
                for stopped in (True, False):
                    verdict = task.verify(p, text, stopped)
                    assert verdict == reference_verify(p, text, stopped), (p, text, stopped)
                    accepted, rejected = accepted + verdict, rejected + (not verdict)
    assert accepted > 50 and rejected > 1000  # both kinds were tried


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
