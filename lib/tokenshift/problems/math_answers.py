"""Answer checking for math benchmarks: the response's final answer, compared with the reference answer by
math-verify (https://github.com/huggingface/Math-Verify), which accepts equivalent forms (1/2 and 0.5,
\\frac{1}{2}, 2^{-1}).

Where the final answer is depends on how a model was trained to give it (``FORMATS``): the last
``\\boxed{...}`` (braces matched; SimpleRL-Zoo's and most math prompts'), the last line of the form
``Answer: ...`` (DAPO's prompt asks for it), or whichever of the two comes last ("either")."""

from __future__ import annotations

import re

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


FORMATS = ("boxed", "answer_line", "either")
ANSWER_LINE = re.compile(r"^[ \t*#]*Answer\s*:[ \t*]*(.*?)[ \t*]*$", re.MULTILINE)


@MATH_ANSWERS.code
def last_answer_line(text: str) -> tuple[int, str] | None:
    """Where the last line of the form ``Answer: ...`` starts and what it gives (surrounding $ removed); None
    when there is none."""
    found = None
    for match in ANSWER_LINE.finditer(text):
        found = (match.start(), match.group(1).strip().strip("$").strip())
    return found


@MATH_ANSWERS.code
def final_answer(response: str, answer_format: str = "boxed") -> str | None:
    """The answer ``response`` gives in ``answer_format`` (one of ``FORMATS``); None when it gives none."""
    if answer_format not in FORMATS:
        raise ValueError(f"unknown answer format {answer_format!r}: choose one of {FORMATS}")
    boxed = last_boxed(response) if answer_format != "answer_line" else None
    line = last_answer_line(response) if answer_format != "boxed" else None
    if boxed is not None and line is not None:  # either: the one written last
        return boxed if max(response.rfind(cmd + "{") for cmd in BOXED) > line[0] else line[1]
    return boxed if boxed is not None else line[1] if line is not None else None


@MATH_ANSWERS.code
def is_correct(reference: str, response: str, answer_format: str = "boxed") -> bool:
    """True when the final answer of ``response`` (in ``answer_format``) is equivalent to ``reference``."""
    answer = final_answer(response, answer_format)
    if answer is None or not answer.strip():
        return False
    gold = parse(f"${reference}$")
    return bool(gold) and verify(gold, parse(f"$\\boxed{{{answer}}}$"))
