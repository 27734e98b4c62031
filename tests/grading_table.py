"""The grading cases: what a final answer is and when it is right, in the kinds the public grader test sets
cover (fractions, decimals, units, separators, multiple choice, equations, sets and intervals, punctuation,
several boxes, nested braces, a brace-less box, Minerva's closing sentence, answers cut off or missing).

Each case gives the suite's verdict with its default grader (math-verify on the final answer that ``format``
says where to find) and three peers' own verdicts, computed by running them (``peer_verdicts.py`` re-checks):
``math_verify``, math-verify 0.9.0 reading the whole response (``verify(parse("$reference$"),
parse(response))``); ``dapo``, DAPO's reward in verl 0.9.1 (``math_dapo.compute_score``); and ``qwen``,
Qwen2.5-Math's evaluation (commit a45202b of github.com/QwenLM/Qwen2.5-Math, ``math_equal`` of the stripped
answer its ``extract_answer`` finds, as for AIME 2024). Where math-verify and DAPO agree on a case whose format
is "either", the suite agrees with them."""

from typing import NamedTuple


class Case(NamedTuple):
    reference: str
    response: str
    format: str
    suite: bool
    math_verify: bool
    dapo: bool
    qwen: bool


LONG_TAIL = " Let me double-check this by substituting back; everything is consistent." * 5
CASES = [
    # fractions
    Case("\\frac{1}{2}", "So it is \\boxed{\\frac{1}{2}}.", "either",
         suite=True, math_verify=True, dapo=True, qwen=True),
    Case("\\frac{1}{2}", "Answer: 1/2", "either", suite=True, math_verify=True, dapo=False, qwen=False),
    Case("\\frac{1}{2}", "Answer: 0.5", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("\\frac{1}{2}", "Hence \\boxed{\\dfrac{1}{2}}", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("\\dfrac{3}{4}", "Answer: $\\frac34$", "either", suite=True, math_verify=True, dapo=False, qwen=False),
    Case("\\frac{1}{2}", "\\boxed{\\frac{2}{4}}", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("\\frac{1}{2}", "\\boxed{\\frac{1}{3}}", "either", suite=False, math_verify=False, dapo=False, qwen=False),
    Case("-\\frac{2}{3}", "\\boxed{\\frac{-2}{3}}", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    # decimals
    Case("0.25", "\\boxed{.25}", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("0.25", "Answer: 0.250", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("3.14", "\\boxed{3.1416}", "either", suite=False, math_verify=False, dapo=False, qwen=False),
    Case("2.5", "\\boxed{\\frac{5}{2}}", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    # units and \text
    Case("5", "The side is \\boxed{5 \\text{ cm}}", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("10", "\\boxed{10\\text{ dollars}}", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("90", "The angle is \\boxed{90^\\circ}", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("12", "Answer: 12 \\text{ apples}", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("\\text{Monday}", "\\boxed{\\text{Monday}}", "either", suite=True, math_verify=True, dapo=True, qwen=True),
    Case("\\text{Monday}", "\\boxed{\\text{Tuesday}}", "either",
         suite=False, math_verify=False, dapo=False, qwen=False),
    # leading zeros
    Case("7", "\\boxed{007}", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("25", "Answer: 025", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    # thousands separators
    Case("1000", "\\boxed{1,000}", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("1000000", "Answer: 1,000,000", "either", suite=True, math_verify=True, dapo=True, qwen=True),
    Case("1234", "\\boxed{1{,}234}", "either", suite=True, math_verify=True, dapo=False, qwen=False),
    # a thin space: no peer reads it as a separator, so neither does the suite
    Case("12345", "\\boxed{12\\,345}", "either", suite=False, math_verify=False, dapo=False, qwen=True),
    # multiple choice
    Case("C", "\\boxed{C}", "either", suite=True, math_verify=True, dapo=True, qwen=True),
    Case("C", "The correct option is \\boxed{(C)}", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("C", "Answer: (B)", "either", suite=False, math_verify=False, dapo=False, qwen=False),
    Case("\\text{(C)}", "\\boxed{C}", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    # equations
    Case("3", "\\boxed{x=3}", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("x=3", "\\boxed{3}", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("3", "Answer: x = 4", "either", suite=False, math_verify=False, dapo=False, qwen=False),
    Case("y=2x+1", "\\boxed{y=1+2x}", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    # sets and intervals
    Case("\\{1,2,3\\}", "\\boxed{\\{3,2,1\\}}", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("[0,1)", "\\boxed{[0,1)}", "either", suite=True, math_verify=True, dapo=True, qwen=True),
    Case("[0,1)", "\\boxed{[0,1]}", "either", suite=False, math_verify=False, dapo=False, qwen=True),
    Case("(-\\infty, 2]", "Answer: $(-\\infty,2]$", "either", suite=True, math_verify=True, dapo=True, qwen=False),
    Case("(1,2)", "\\boxed{(1, 2)}", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("(1,2)", "\\boxed{(2,1)}", "either", suite=False, math_verify=False, dapo=False, qwen=False),
    # trailing punctuation, answer lines in any case and markup
    Case("5", "Answer: 5.", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("5", "so \\boxed{5}.", "either", suite=True, math_verify=True, dapo=True, qwen=True),
    Case("5", "Answer: $5$.", "either", suite=True, math_verify=True, dapo=True, qwen=True),
    Case("5", "ANSWER: 5", "either", suite=True, math_verify=True, dapo=True, qwen=True),
    Case("5", "**Answer:** 5", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("5", "Final Answer: 5", "either", suite=True, math_verify=True, dapo=True, qwen=True),
    Case("5", "final answer: **5**", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("5", "So, my answer: 5", "either", suite=True, math_verify=True, dapo=True, qwen=True),
    Case("0.5", "Answer: 0.5.", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    # several boxes and answer lines: the last one counts
    Case("5", "\\boxed{4}, no wait: \\boxed{5}", "either", suite=True, math_verify=False, dapo=True, qwen=True),
    Case("5", "\\boxed{5}, no wait: \\boxed{4}", "either", suite=False, math_verify=False, dapo=False, qwen=False),
    Case("5", "Answer: 5\nActually it is \\boxed{6}", "either", suite=False, math_verify=False, dapo=True, qwen=False),
    Case("6", "\\boxed{6}\nAnswer: 5", "either", suite=False, math_verify=True, dapo=False, qwen=True),
    Case("7", "Answer: 6\n\nAnswer: 7", "either", suite=True, math_verify=True, dapo=True, qwen=True),
    # nested braces
    Case("\\frac{\\sqrt{3}}{2}", "\\boxed{\\frac{\\sqrt{3}}{2}}", "either",
         suite=True, math_verify=True, dapo=True, qwen=True),
    Case("2^{10}", "\\boxed{2^{10}}", "either", suite=True, math_verify=True, dapo=True, qwen=True),
    Case("1024", "\\boxed{2^{10}}", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("\\sqrt{2}", "\\boxed{\\sqrt2}", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("2\\sqrt{3}", "\\boxed{\\sqrt{12}}", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    # \boxed without braces
    Case("5", "so $\\boxed 5$", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("5", "so $\\boxed 6$", "either", suite=False, math_verify=False, dapo=False, qwen=False),
    # Minerva's closing sentence
    Case("73", "Final Answer: The final answer is $73$. I hope it is correct.", "either",
         suite=True, math_verify=True, dapo=True, qwen=True),
    Case("73", "Final Answer: The final answer is $72$. I hope it is correct.", "either",
         suite=False, math_verify=False, dapo=False, qwen=False),
    Case("73", "The final answer is 73", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    # no answer, or one cut off
    Case("5", "the sum is 5", "either", suite=False, math_verify=True, dapo=False, qwen=True),
    Case("5", "so the answer is \\boxed{5", "either", suite=False, math_verify=False, dapo=False, qwen=True),
    Case("5", "", "either", suite=False, math_verify=False, dapo=False, qwen=False),
    Case("5", "Answer:", "either", suite=False, math_verify=False, dapo=False, qwen=False),
    # signs and constants
    Case("-3", "\\boxed{-3}", "either", suite=True, math_verify=True, dapo=True, qwen=True),
    Case("-3", "\\boxed{3}", "either", suite=False, math_verify=False, dapo=False, qwen=False),
    Case("\\pi", "\\boxed{\\pi}", "either", suite=True, math_verify=True, dapo=True, qwen=True),
    Case("2\\pi", "Answer: $2\\pi$", "either", suite=True, math_verify=True, dapo=True, qwen=False),
    # the format decides where the answer may be
    Case("5", "Answer: 5", "boxed", suite=False, math_verify=True, dapo=True, qwen=True),
    Case("5", "\\boxed{5}", "answer_line", suite=False, math_verify=True, dapo=True, qwen=True),
    Case("5", "\\boxed{5}", "boxed", suite=True, math_verify=True, dapo=True, qwen=True),
    # an answer far from the end (DAPO reads the last 300 characters only)
    Case("5", "Answer: 5\n" + LONG_TAIL, "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("5", "\\boxed{5}" + LONG_TAIL, "either", suite=True, math_verify=True, dapo=False, qwen=True),
    # Qwen2.5-Math's grader: percentages, number words, its last-number fallback
    Case("73", "So the probability is 73%, and the answer line reads Answer: 0.73", "either", suite=False,
         math_verify=False, dapo=False, qwen=True),
    Case("73", "Answer: 0.73", "answer_line", suite=False, math_verify=False, dapo=False, qwen=True),
    Case("73", "\\boxed{seventy three}", "either", suite=False, math_verify=False, dapo=False, qwen=True),
    Case("73", "\\boxed{73.00}", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("73", "the answer is 73 apples.", "either", suite=False, math_verify=True, dapo=False, qwen=True),
    Case("\\frac{1}{2}", "\\boxed{\\frac12}", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("(1,2)", "\\boxed{[1,2]}", "either", suite=False, math_verify=False, dapo=False, qwen=True),
    Case("5", "The result: 5, and 6 remains.\n\nWait, maybe 7", "either", suite=False, math_verify=False,
         dapo=False, qwen=False),
    Case("12", "\\boxed{12 \\text{ degrees}}", "either", suite=True, math_verify=True, dapo=False, qwen=True),
    Case("\\infty", "\\boxed{infinity}", "either", suite=True, math_verify=True, dapo=False, qwen=True),
]
