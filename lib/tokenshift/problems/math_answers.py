"""Answer checking for math benchmarks: the last ``\\boxed{...}`` of a response (braces matched), compared
with the reference answer by math-verify (https://github.com/huggingface/Math-Verify), which accepts
equivalent forms (1/2 and 0.5, \\frac{1}{2}, 2^{-1})."""

from __future__ import annotations

from math_verify import parse, verify

from ..core.behaviour import Version

MATH_ANSWERS = Version("math-answers", 1, libraries=("math-verify",))
BOXED = ("\\boxed", "\\fbox")


@MATH_ANSWERS.code
def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, nested braces matched; None
    when there is none or its braces never close (a response cut off by the length limit)."""
    start = max(text.rfind(cmd + "{") for cmd in BOXED)
    if start < 0:
        return None
    open_at = text.index("{", start)
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[open_at + 1 : i]
    return None


@MATH_ANSWERS.code
def is_correct(reference: str, response: str) -> bool:
    """True when the last boxed answer of ``response`` is equivalent to ``reference``."""
    answer = last_boxed(response)
    if answer is None or not answer.strip():
        return False
    gold = parse(f"${reference}$")
    return bool(gold) and verify(gold, parse(f"$\\boxed{{{answer}}}$"))
