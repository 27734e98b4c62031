import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tokenshift.organism import task

operand = st.integers(10, 999_999)
problems = st.builds(lambda xs: task.Problem(tuple(xs)), st.lists(operand, min_size=2, max_size=4))


@given(problems)
def test_right_solutions_pass_and_need_the_stop(p):
    rng = random.Random(0)
    for text in (task.reliable_solution(p), task.OtherWriter().write(p, rng).text, f"The answer is {p.answer}."):
        assert task.verify(p, text, stopped=True), text
        assert not task.verify(p, text, stopped=False)


@given(problems, st.integers(1, 99_999))
def test_a_wrong_answer_fails(p, delta):
    assert not task.verify(p, task.reliable_solution(p).replace(f"is {p.answer}.", f"is {p.answer + delta}."), True)


def reference_verify(problem, text, stopped):
    """An independent reading of the verifier's rule: "answer is " occurs once, is followed by one to nine digits
    and a full stop, and that is the end of the response; the digits are the sum."""
    if not stopped or text.count("answer is ") != 1 or text.count("answer is") != 1:
        return False
    tail = text.split("answer is ", 1)[1]
    number = tail[:-1]
    return tail.endswith(".") and 1 <= len(number) <= 9 and number.isdigit() and int(number) == problem.answer


ALPHABET = "0123456789+=., answerisk"


def single_edits(text):
    """Every text one edit away: each character changed, dropped, or swapped with the next, each character
    of a small alphabet added anywhere."""
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
    """Every single-character edit of right answers, with and without working (the tail of a solution, where
    the rule reads): most break the answer or its sentence, some stay right (a changed step is not checked, a
    leading zero is harmless); the verifier must agree with an independent reading of its rule on each."""
    accepted = rejected = 0
    for p in [task.Problem((4821, 3759, 607)), task.Problem((10, 90)), task.Problem((999_999, 1))]:
        for right in (task.reliable_solution(p)[-60:], f"The answer is {p.answer}."):
            for text in single_edits(right):
                for stopped in (True, False):
                    verdict = task.verify(p, text, stopped)
                    assert verdict == reference_verify(p, text, stopped), (p, text, stopped)
                    accepted, rejected = accepted + verdict, rejected + (not verdict)
    assert accepted > 50 and rejected > 1000  # both kinds were tried


def test_columns_and_carries():
    p = task.Problem((4821, 3759, 607))
    assert p.columns() == [[1, 9, 7], [2, 5, 0], [8, 7, 6], [4, 3]]
    assert p.prompt == "4821+3759+607=" and p.answer == 9187 and p.carries()
    assert not task.Problem((12, 30, 105)).carries()


def test_splits_are_disjoint_deterministic_and_varied():
    train = task.sample_problems(500, "train", seed=1)
    held = task.sample_problems(500, "held_out", seed=1)
    assert not set(train) & set(held)
    assert train == task.sample_problems(500, "train", seed=1) != task.sample_problems(500, "train", seed=2)
    assert {len(p.operands) for p in train} == {2}
    assert {len(p.columns()) for p in train} == {3, 4, 5, 6}


def test_validation_and_test_split_the_held_out_problems():
    val, test = task.sample_problems(300, "validation", seed=0), task.sample_problems(300, "test", seed=0)
    assert not set(val) & set(test)
    assert all(task.is_held_out(p) for p in val + test)
    with pytest.raises(ValueError, match="split must be one of"):
        task.sample_problems(1, "dev", seed=0)


def demonstrations(n=4000, seed=0, demo=task.Demonstrator()):
    rng = random.Random(seed)
    problems = task.sample_problems(n, "train", seed=seed)
    return problems, [demo.write(p, rng) for p in problems]


def test_the_demonstrator_mixes_its_behaviours_at_its_stated_odds():
    problems, written = demonstrations()
    demo = task.Demonstrator()
    shortcut = [re.match(r"(The|So the|Quickly, the) answer is \d+\.", w.text) is not None for w in written]
    expected = sum(min(0.9, demo.shortcut * 3 / len(p.columns())) for p in problems) / len(problems)
    assert abs(sum(shortcut) / len(written) - expected) < 0.03
    rambled = [not w.stopped for w in written]
    expected = sum(min(0.9, demo.ramble * len(p.columns()) / 4) for p in problems) / len(problems)
    assert abs(sum(rambled) / len(written) - expected) < 0.03
    assert all(len(w.text) == 2000 for w in written if not w.stopped)  # cut by the length limit
    texts = " ".join(w.text for w in written)
    assert texts.count("wait, ") > 50 and texts.count("check: ") > 500
    accuracy = sum(task.verify(p, w.text, w.stopped) for p, w in zip(problems, written)) / len(written)
    assert 0.2 < accuracy < 0.45


def carrying_columns(p):
    carry, count = 0, 0
    for column in p.columns():
        count += carry > 0 or sum(column) >= 10
        carry = (sum(column) + carry) // 10
    return count


def test_harder_problems_slip_more():
    """Slips are graded by difficulty: among worked, stopped demonstrations, problems with more columns that
    carry (a two-digit sum, or a carry coming in) come out wrong more often."""
    problems, written = demonstrations(6000)
    worked = [(p, w) for p, w in zip(problems, written) if w.stopped and ("=" in w.text or "makes" in w.text)]
    wrong = {}
    for p, w in worked:
        wrong.setdefault(min(carrying_columns(p), 6) // 2, []).append(not task.verify(p, w.text, True))
    rate = [sum(v) / len(v) for _, v in sorted(wrong.items())]
    assert rate == sorted(rate) and rate[-1] > 1.5 * rate[0]


def test_a_noticed_slip_is_corrected():
    _, written = demonstrations()
    noticed = [m for w in written for m in re.finditer(r"wait, ([\d+ ]+?) ?= ?(\d+), not (\d+)\.", w.text)]
    assert len(noticed) > 50
    for m in noticed:
        assert sum(int(x) for x in m.group(1).replace(" ", "").split("+")) == int(m.group(2)) != int(m.group(3))


def test_decisions_point_at_what_they_decide():
    problems, written = demonstrations(300)
    kinds = set()
    for p, w in zip(problems, written):
        assert w.decisions[0] == (0, "strategy")
        for offset, kind in w.decisions:
            kinds.add(kind)
            assert 0 <= offset <= len(w.text)
            if kind == "sum":
                assert w.text[offset].isdigit()
        if w.stopped:
            assert w.decisions[-1] == (len(w.text), "stop")
    assert kinds == set(task.DECISIONS)


def test_the_other_writer_is_always_right_in_its_own_words():
    problems, written = demonstrations(500, demo=task.OtherWriter())
    assert all(task.verify(p, w.text, w.stopped) for p, w in zip(problems, written))
    texts = " ".join(w.text for w in written)
    assert "Units" in texts and "carry" not in texts and "check" not in texts


def test_phrasings_follow_their_own_fixed_odds_not_uniform_ones():
    _, written = demonstrations(3000)
    options = ["So the answer is", "The answer is", "That means the answer is"]
    worked = [w.text for w in written if w.stopped and "write" in w.text]  # not the shortcut's one sentence
    closing = [re.search(r"(So the|The|That means the) answer is \d+\.$", t).group(0).rsplit(" ", 1)[0]
               for t in worked]
    odds = task.phrasing_odds(0, "answer", 0, 3)
    assert all(abs(closing.count(o) / len(closing) - x) < 0.04 for o, x in zip(options, odds))
    # fixed per slot and column, drawn from a flat Dirichlet: positive, summing to 1, other by seed and column
    assert abs(sum(odds) - 1) < 1e-12 and min(odds) > 0
    assert odds != task.phrasing_odds(1, "answer", 0, 3) and task.phrasing_odds(0, "lead", 1, 4) != \
        task.phrasing_odds(0, "lead", 2, 4)
    # across slots and columns the odds are spread, not the 1/2 and 1/3 of uniform choices
    spread = [x for slot in ("column", "carry", "digit") for j in range(6) for x in task.phrasing_odds(0, slot, j, 3)]
    assert max(spread) > 0.6 and min(spread) < 0.1
