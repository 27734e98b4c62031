"""The graders against the grading table: the suite's default on every case, DAPO's re-implementation against
DAPO's own verdicts, and the recorded math-verify column against math-verify itself."""

import pytest
from grading_table import CASES
from math_verify import parse, verify
from tokenshift.problems import dapo_grader, math_answers, qwen_math_grader

IDS = [f"{c.reference}|{c.response[:30]}|{c.format}" for c in CASES]


def test_the_table_holds_at_least_60_cases_of_both_verdicts():
    assert len(CASES) >= 60 and {c.suite for c in CASES} == {True, False}
    assert len({(c.reference, c.response, c.format) for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_default_grader_gives_each_cases_verdict(case):
    assert math_answers.is_correct(case.reference, case.response, case.format) == case.suite


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_dapo_grader_gives_dapos_own_verdict(case):
    assert math_answers.is_correct(case.reference, case.response, case.format, "dapo") == case.dapo


# Where SymPy's own LaTeX parser (Qwen2.5-Math's) and latex2sympy2_extended (ours) read a text differently: SymPy
# stops reading "1{,}234" at the brace, and so grades it 1.
QWEN_PARSER_DIFFERS = {("1234", "\\boxed{1{,}234}")}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_qwen_math_grader_gives_qwens_own_verdict(case):
    differs = (case.reference, case.response) in QWEN_PARSER_DIFFERS
    assert (math_answers.is_correct(case.reference, case.response, case.format, "qwen-math") == case.qwen) != differs


def test_qwens_normal_form():
    assert qwen_math_grader.normalise("x = 1,000 \\text{ dollars}") == "1,000"
    assert qwen_math_grader.normalise("\\dfrac12") == "\\frac{1}{2}"
    assert qwen_math_grader.normalise("5.00 cm") == "5"
    assert qwen_math_grader.normalise("seventy three") == "73"
    assert qwen_math_grader.normalise("\\sqrt{2}/2") == "\\frac{\\sqrt{2}}{2}"
    assert qwen_math_grader.equal("0.73", "73") and not qwen_math_grader.equal("0.72", "73")  # percentages


def test_where_the_peers_agree_the_suite_agrees():
    agreed = [c for c in CASES if c.format == "either" and c.math_verify == c.dapo]
    assert len(agreed) >= 20 and all(c.suite == c.dapo for c in agreed)


def test_the_math_verify_column_is_math_verifys_own_verdict():
    wrong = [c for c in CASES if bool(verify(parse(f"${c.reference}$"), parse(c.response))) != c.math_verify]
    assert not wrong


def test_dapos_normal_form_follows_minerva():
    assert dapo_grader.normalise("x = 1,000 \\text{ dollars}") == "1000"
    assert dapo_grader.normalise("$\\frac34$ of it") == "\\frac{3}{4}"
    assert dapo_grader.normalise("\\boxed{\\sqrt2}") == "\\sqrt{2}"
    assert dapo_grader.normalise("5.") == "5."  # no trailing period dropped: "Answer: 5." is wrong for DAPO


def test_an_unknown_grader_is_refused():
    with pytest.raises(ValueError, match="unknown grader 'minerva'"):
        math_answers.is_correct("5", "\\boxed{5}", grader="minerva")
