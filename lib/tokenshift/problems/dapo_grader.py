"""DAPO's own reward, so that a DAPO pair can be graded as its authors graded it: verl 0.9.1's
``verl/utils/reward_score/math_dapo.py:compute_score`` with its default arguments, re-implemented from its
behaviour (tests/grading_table.py holds its verdicts, computed by running it).

It reads only the last 300 characters of a response. The answer is the rest of the line after the last
"Answer:" (any case; the spaces after the colon may run onto the next line), compared with the reference
after both go through Minerva's answer normalisation (Lewkowycz et al. 2022, "Solving Quantitative Reasoning
Problems with Language Models", appendix D); only when there is no answer line, the last \\boxed{...} of the
last 100 characters, compared exactly with the unnormalised reference. Equal strings only: no equivalence
(0.5 is not 1/2)."""

from __future__ import annotations

import re

from ..core.behaviour import Version
from .latex import braced

BEHAVIOUR = Version(1)
ANSWER = re.compile(r"answer\s*:\s*([^\n]+)", re.IGNORECASE)

# Minerva's normalisation, as data: what is replaced first, then what is deleted (units, spacing commands).
REPLACED = (("an ", ""), ("a ", ""), (".$", "$"), ("\\$", ""), ("\\ ", ""), (" ", ""), ("mbox", "text"),
            (",\\text{and}", ","), ("\\text{and}", ","), ("\\text{m}", "\\text{}"))
DELETED = ("square", "ways", "integers", "dollars", "mph", "inches", "hours", "km", "units", "\\ldots", "sue",
           "points", "feet", "minutes", "digits", "cents", "degrees", "cm", "gm", "pounds", "meters", "meals",
           "edges", "students", "childrentickets", "multiples", "\\text{s}", "\\text{.}", "\\text{\ns}",
           "\\text{}^2", "\\text{}^3", "\\text{\n}", "\\text{}", "\\mathrm{th}", "^\\circ", "^{\\circ}", "\\;",
           ",\\!", "{,}", '"', "\\dots")
# Then, in order: keep the first $...$; unwrap \text, \textbf, \overline (to the first closing brace) and
# \boxed (to the last); expand the shorthands \fracab and \sqrta.
REWRITES = ((r".*?\$(.*?)\$.*", r"$\1$"), (r"\\text\{(.*?)\}", r"\1"), (r"\\textbf\{(.*?)\}", r"\1"),
            (r"\\overline\{(.*?)\}", r"\1"), (r"\\boxed\{(.*)\}", r"\1"), (r"frac([^{])(.)", r"frac{\1}{\2}"),
            (r"sqrt([^{])", r"sqrt{\1}"))


def normalise(answer: str) -> str:
    """Minerva's normal form of a final answer: the right-hand side of its last "=", units and spacing gone,
    LaTeX wrappers unwrapped, and the commas of a plain integer dropped."""
    answer = answer.split("=")[-1]
    for old, new in REPLACED:
        answer = answer.replace(old, new)
    for old in DELETED:
        answer = answer.replace(old, "")
    for pattern, replacement in REWRITES:
        answer = re.sub(pattern, replacement, answer)
    answer = answer.replace("$", "")
    if answer.replace(",", "").isdigit():
        answer = answer.replace(",", "")
    return answer.strip()


def last_box(text: str) -> str | None:
    """The content of the last ``\\boxed{...}``, braces matched; None when there is none or it never closes."""
    start = text.rfind("\\boxed{")
    return None if start < 0 else braced(text, start + len("\\boxed"))


def is_correct(reference: str, response: str) -> bool:
    tail = response[-300:]  # verl's cut: "the longest answer in MATH-500 has 159 characters"
    answers = ANSWER.findall(tail)
    if answers:
        return normalise(answers[-1]) == normalise(reference)
    return last_box(tail[-100:]) == reference
