"""Answer checking for math benchmarks: the response's final answer, compared with the reference answer.

Where the final answer is depends on how a model was trained to give it (``FORMATS``): the last
``\\boxed{...}`` (braces matched; SimpleRL-Zoo's and most math prompts'), the last answer line (``Answer: ...``,
DAPO's prompt asks for it, written in any case and anywhere on a line, or Minerva's "The final answer is ...")
or whichever of the two comes last ("either").

How it is compared is the grader (``GRADERS``): math-verify (https://github.com/huggingface/Math-Verify, the
default), which accepts equivalent forms (1/2 and 0.5, \\frac{1}{2}, 2^{-1}); "dapo", DAPO's own reward
(``dapo_grader``); or "qwen-math", Qwen2.5-Math's evaluation (``qwen_math_grader``), which SimpleRL-Zoo's numbers
come from: the last two so a run can be set beside the numbers that pair's authors published.
tests/grading_table.py holds the cases both are held to, with each peer's own verdict on them."""

from __future__ import annotations

import re

from math_verify import parse, verify

from ..core.behaviour import Version
from . import dapo_grader, qwen_math_grader
from .latex import braced

BEHAVIOUR = Version(1, libraries=("math-verify",))
FORMATS = ("boxed", "answer_line", "either")
GRADERS = ("math-verify", "dapo", "qwen-math")
OWN_READING = {"dapo": dapo_grader.is_correct, "qwen-math": qwen_math_grader.is_correct}  # find answers their way
BOXED = re.compile(r"\\(?:boxed|fbox)\s*(\{|\S)")
# The last answer marker on a line and what follows it: "Answer:", "**Final Answer:**", "ANSWER:", or
# Minerva's "The final answer is $73$. I hope it is correct." (Lewkowycz et al. 2022).
ANSWER_LINE = re.compile(r"^.*(?:answer[ \t]*:|final answer is)(.*)$", re.IGNORECASE | re.MULTILINE)
HOPE = re.compile(r"\s*I hope it is correct\.?\s*$", re.IGNORECASE)


def last_boxed(text: str) -> tuple[int, str] | None:
    """Where the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text`` starts and its content, nested braces
    matched; ``\\boxed 5`` (no braces) gives what follows up to a space or ``$``. None when there is none or its
    braces never close (a response cut off by the length limit)."""
    found = None
    for found in BOXED.finditer(text):
        pass
    if found is None:
        return None
    if found.group(1) != "{":
        return found.start(), re.match(r"[^\s$]*", text[found.start(1):]).group(0)
    content = braced(text, found.start(1))
    return None if content is None else (found.start(), content)


def last_answer_line(text: str) -> tuple[int, str] | None:
    """Where the last answer line starts and what it gives, with markdown emphasis, surrounding $ and trailing
    periods removed; None when there is none."""
    found = None
    for found in ANSWER_LINE.finditer(text):
        pass
    if found is None:
        return None
    answer = HOPE.sub("", found.group(1)).strip(" \t*").rstrip(".").strip("$ \t").rstrip(".")
    return found.start(), answer


def final_answer(response: str, answer_format: str = "boxed") -> str | None:
    """The answer ``response`` gives in ``answer_format`` (one of ``FORMATS``); None when it gives none."""
    if answer_format not in FORMATS:
        raise ValueError(f"unknown answer format {answer_format!r}: choose one of {FORMATS}")
    found = [f for f in (last_boxed(response) if answer_format != "answer_line" else None,
                         last_answer_line(response) if answer_format != "boxed" else None) if f is not None]
    return max(found)[1] if found else None  # either: the one written last


def is_correct(reference: str, response: str, answer_format: str = "boxed", grader: str = "math-verify") -> bool:
    """True when the final answer of ``response`` (in ``answer_format``) is equivalent to ``reference`` by
    ``grader``; DAPO's and Qwen2.5-Math's graders find the answer their own way and ignore the format."""
    if grader not in GRADERS:
        raise ValueError(f"unknown grader {grader!r}: choose one of {GRADERS}")
    if grader in OWN_READING:
        return OWN_READING[grader](reference, response)
    answer = final_answer(response, answer_format)
    if answer is None or not answer.strip():
        return False
    gold = parse(f"${reference}$")
    return bool(gold) and verify(gold, parse(f"$\\boxed{{{answer}}}$"))
