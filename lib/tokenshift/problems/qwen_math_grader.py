"""Qwen2.5-Math's own grader, so that a pair can be graded as SimpleRL-Zoo and the Qwen2.5-Math evaluation
(https://github.com/QwenLM/Qwen2.5-Math, ``evaluation/``; SimpleRL-Zoo evaluates with the same harness) graded
it, re-implemented from its behaviour on a benchmark whose references are plain answers (its ``aime24`` path:
the prediction is ``strip_string(extract_answer(response))``, compared by ``math_equal`` with
``strip_string(reference)``). tests/grading_table.py holds its verdicts, computed by running it.

What it does, unlike the suite's default: it finds no "Answer:" line (a response without a box, "the answer is"
or Minerva's closing sentence is graded by its last number); it drops unit words, \\text and a leading
``x =``; numbers equal within a relative 1e-4, or as percentages (73 and 0.73 are equal); other answers are
compared by SymPy after its own normal form. Two differences from the original, both in what can be installed
beside math-verify: LaTeX is parsed by math-verify's latex2sympy2_extended (SymPy's own LaTeX parser needs
antlr 4.11, math-verify 4.13), and matrices are compared only symbolically."""

from __future__ import annotations

import math
import re
import threading

import sympy
from latex2sympy2_extended import latex2sympy
from math_verify.utils import timeout
from sympy.parsing.sympy_parser import parse_expr
from word2number import w2n

from ..core.behaviour import Version
from .latex import braced

BEHAVIOUR = Version(1, libraries=("word2number", "latex2sympy2_extended", "sympy"))
NUMBER = re.compile(r"-?\d*\.?\d+")
CHOICES = ("A", "B", "C", "D", "E")
# LaTeX spacing, which SymPy's LaTeX grammar skips (12\,345 is 12345) and latex2sympy2_extended reads as a sum
SPACING = re.compile(r"\\(?:,|:|;|!|quad|qquad|thinspace|medspace|thickspace|negthinspace)")

# The unit words it deletes where they stand alone (MathQA's units, listed in Qwen2.5-Math's
# evaluation/parser.py), each also with an "s"; they are regular expressions there ("q ." matches "q x").
UNITS = ("east", "degree", "mph", "kmph", "ft", "m sqaure", " m east", "sq m", "deg", "mile", "q .", "monkey",
         "prime", "ratio", "profit of rs", "rd", "o", "gm", "p . m", "lb", "tile", "per", "dm", "lt", "gain", "ab",
         "way", "west", "a .", "b .", "c .", "d .", "e .", "f .", "g .", "h .", "t", "a", "h", "no change", "men",
         "soldier", "pie", "bc", "excess", "st", "inches", "noon", "percent", "by", "gal", "kmh", "c", "acre",
         "rise", "a . m", "th", "π r 2", "sq", "mark", "l", "toy", "coin", "sq . m", "gallon", "° f", "profit",
         "minw", "yr", "women", "feet", "am", "pm", "hr", "cu cm", "square", "v â € ™", "are", "rupee", "rounds",
         "cubic", "cc", "mtr", "s", "ohm", "number", "kmph", "day", "hour", "minute", "min", "second", "man",
         "woman", "sec", "cube", "mt", "sq inch", "mp", "∏ cm ³", "hectare", "more", "sec", "unit", "cu . m",
         "cm 2", "rs .", "rs", "kg", "g", "month", "km", "m", "cm", "mm", "apple", "liter", "loss", "yard", "pure",
         "year", "increase", "decrease", "d", "less", "Surface", "litre", "pi sq m", "s .", "metre", "meter",
         "inch")
UNIT_PATTERNS = [re.compile(r"(^|\W)" + unit + r"($|\W)") for unit in UNITS + tuple(u + "s" for u in UNITS)]

# The normal form, in its order: plain replacements before the unit words, then those after.
BEFORE_UNITS = (("\n", ""), ("\\!", ""), ("bmatrix", "pmatrix"), ("tfrac", "frac"), ("dfrac", "frac"),
                ("\\neq", "\\ne"), ("\\leq", "\\le"), ("\\geq", "\\ge"), ("\\left", ""), ("\\right", ""),
                ("\\{", "{"), ("\\}", "}"))
AFTER_UNITS = (("^{\\circ}", ""), ("^\\circ", ""), ("\\$", ""), ("$", ""), ("\\(", ""), ("\\)", ""))
AFTER_WORDS = (("x=", ""), ("y=", ""), ("z=", ""), ("x\\in", ""), ("y\\in", ""), ("z\\in", ""), ("x\\to", ""),
               ("y\\to", ""), ("z\\to", ""), ("\\emptyset", "{}"), ("(-\\infty,\\infty)", "\\mathbb{R}"),
               ("\\%", ""), ("%", ""), (" .", " 0."), ("{.", "{0."), ("infinity", "\\infty"))


def answer_text(response: str) -> str:
    """The final answer as it reads it: Minerva's "final answer is $...$. I hope", else what follows the last
    "boxed" (its brace group, the rest when it never closes, or up to a "$"), else what follows the last
    "the answer is" or "final answer is", else the last number."""
    response = response.replace("\u043a\u0438", "")  # a step marker of its reward-model data
    if "final answer is $" in response and "$. I hope" in response:
        answer = response.split("final answer is $", 1)[1].split("$. I hope", 1)[0].strip()
    elif "boxed" in response:
        after = response.rsplit("boxed", 1)[1]
        if after.startswith("{"):
            answer = braced(after, 0)
            answer = after[1:] if answer is None else answer
        else:
            answer = after.split("$")[0].strip()
    elif "he answer is" in response or "final answer is" in response:
        marker = "he answer is" if "he answer is" in response else "final answer is"
        answer = response.rsplit(marker, 1)[1].strip()
    else:
        numbers = NUMBER.findall(response.replace(",", ""))
        answer = numbers[-1] if numbers else ""
    answer = re.sub(r"\n\s*", "", answer)
    answer = answer[1:] if answer.startswith(":") else answer
    answer = answer[:-1] if answer.endswith(".") else answer
    return answer[:-1] if answer.endswith("/") else answer


def normalise(answer: str) -> str:
    """Its normal form of an answer (``strip_string``): wrappers, units, dollars, degrees and percent signs gone,
    number words as digits, a short left-hand side ``k =`` dropped, ``\\frac12`` and ``1/2`` as
    ``\\frac{1}{2}``, no spaces."""
    answer = answer.strip().replace("\n", "").rstrip(".")
    for old, new in BEFORE_UNITS:
        answer = answer.replace(old, new)
    answer = re.sub(r"\\begin\{array\}\{.*?\}", r"\\begin{pmatrix}", answer).replace("\\end{array}", "\\end{pmatrix}")
    unit_free = re.sub(r"\\text{.*?}$", "", answer).strip()
    answer = unit_free or answer
    for _ in range(2):
        for pattern in UNIT_PATTERNS:
            answer = pattern.sub(r"\1\2", answer) or answer
    for old, new in AFTER_UNITS:
        answer = answer.replace(old, new)
    answer = number_from_words(answer)
    answer = re.sub(r"\\text\{(.*?)\}", r"\1", answer)
    for old, new in AFTER_WORDS:
        answer = answer.replace(old, new)
    answer = answer if "\\infty" in answer else answer.replace("inf", "\\infty")
    answer = answer.replace("+\\inity", "\\infty").replace("and", "").replace("\\mathbf", "")
    answer = re.sub(r"\\mbox{.*?}", "", answer)
    if "j" in answer and "i" not in answer:
        answer = answer.replace("j", "i")
    answer = re.sub(r"(\d+)\.0*$", r"\1", re.sub(r"(\d+)\.0*([^\d])", r"\1\2", answer))  # 5.00 -> 5
    if not answer:
        return answer
    answer = "0" + answer if answer.startswith(".") else answer
    sides = answer.split("=")
    answer = sides[1] if len(sides) == 2 and len(sides[0]) <= 2 else answer
    answer = re.sub(r"\\sqrt(\w+)", r"\\sqrt{\1}", answer).replace(" ", "")
    return slash_as_frac(braced_fracs(answer))


def number_from_words(text: str) -> str:
    """``text`` as digits where word2number reads a number in it ("seventy three" -> "73", "007" -> "7"),
    else unchanged."""
    try:
        return str(w2n.word_to_num(text))
    except Exception:  # word2number raises several kinds for text that is not a number
        return text


def braced_fracs(text: str) -> str:
    """``\\frac12`` -> ``\\frac{1}{2}``, ``\\frac1{72}`` -> ``\\frac{1}{72}``; unchanged when a ``\\frac`` is
    followed by fewer than two characters."""
    first, *rest = text.split("\\frac")
    out = [first]
    for part in rest:
        if not part.startswith("{"):
            if len(part) < 2:
                return text
            part = "{" + part[0] + "}" + (part[1:] if part[1] == "{" else "{" + part[1] + "}" + part[2:])
        out.append(part)
    return "\\frac".join(out)


def slash_as_frac(text: str) -> str:
    """``a/b`` as ``\\frac{a}{b}`` when each side is an integer written plainly or holds a square root."""
    parts = text.split("/")
    if len(parts) == 2 and all("sqrt" in part or re.fullmatch(r"0|-?[1-9]\d*", part) for part in parts):
        return f"\\frac{{{parts[0]}}}{{{parts[1]}}}"
    return text


def as_number(text: str) -> float | None:
    """The number ``text`` writes (thousands commas ignored, a trailing % as a hundredth), or None."""
    text = text.replace(",", "")
    try:
        return float(text)
    except ValueError:
        pass
    if text.endswith("%"):
        try:
            return float(text[:-1].removesuffix("\\")) / 100
        except ValueError:
            pass
    return None


def close(a: float, b: float) -> bool:
    return math.isclose(b, a, rel_tol=1e-4)


def choice(text: str) -> str:
    """The last standalone letter A-E of a multiple-choice answer, else the answer without its end dots."""
    text = text.strip("\n").rstrip(".").rstrip("/").strip(" ").lstrip(":")
    letters = re.findall(r"\b(A|B|C|D|E)\b", text.upper())
    return (letters[-1] if letters else text.strip().strip(".")).rstrip(".").rstrip("/")


def equal(prediction: str, reference: str) -> bool:
    """Its ``math_equal``: the same text (any case); a choice letter; numbers within a relative 1e-4, also as
    percentages; the same text without brackets; tuples and intervals part by part; equations by their sides;
    else SymPy."""
    if prediction.strip().lower() == reference.strip().lower():
        return True
    if reference in CHOICES and choice(prediction) == reference:
        return True
    predicted, expected = as_number(prediction), as_number(reference)
    if predicted is not None and expected is not None:
        return any(close(predicted, target) for target in (expected / 100, expected, expected * 100))
    if not prediction:
        return False
    prediction, reference = prediction.strip(), reference.strip()
    if unbracketed(prediction, reference):
        return True
    if re.match(r"[(\[].+[)\]]", prediction) and re.match(r"[(\[].+[)\]]", reference):
        ours, theirs = prediction[1:-1].split(","), reference[1:-1].split(",")
        if len(ours) == len(theirs) and all(equal(a, b) for a, b in zip(ours, theirs)):
            return True
    if prediction.count("=") == 1 and reference.count("=") == 1:
        ours, theirs = (f"{s.split('=')[0].strip()} - ({s.split('=')[1].strip()})" for s in (prediction, reference))
        if symbolic_equal(ours, theirs) or symbolic_equal(f"-({ours})", theirs):
            return True
    elif prediction.count("=") == 1 and len(prediction.split("=")[0].strip()) <= 2 and "=" not in reference:
        if equal(prediction.split("=")[1], reference):
            return True
    elif reference.count("=") == 1 and len(reference.split("=")[0].strip()) <= 2 and "=" not in prediction:
        if equal(prediction, reference.split("=")[1]):
            return True
    return symbolic_equal(prediction, reference)


def unbracketed(prediction: str, reference: str) -> bool:
    """Equal once brackets go: an outer [] or () of the prediction (unless the reference opens with the
    other kind), then every brace and parenthesis of both."""
    if (prediction.startswith("[") and prediction.endswith("]") and not reference.startswith("(")) or (
            prediction.startswith("(") and prediction.endswith(")") and not reference.startswith("[")):
        prediction, reference = prediction.strip("[]()"), reference.strip("[]()")
    drop = str.maketrans("", "", "{}()")
    return prediction.translate(drop).lower() == reference.translate(drop).lower()


def parsed(text: str):
    """``text`` as a SymPy object: LaTeX first, then SymPy's own syntax, each tried with ``\\\\`` read as ``\\``
    and then as written; the text itself when neither reads it."""
    for parse in (latex2sympy, parse_expr):
        for attempt in (text.replace("\\\\", "\\"), text):
            attempt = SPACING.sub("", attempt) if parse is latex2sympy else attempt
            try:
                return parse(attempt)
            except Exception:  # any parser failure means "not this syntax"
                pass
    return text


def symbolic_equal(a: str, b: str) -> bool:
    """Its harness gives each comparison 3 seconds, and one that runs over is wrong; the alarm that enforces it
    reaches only the main thread, so elsewhere there is no limit."""
    if threading.current_thread() is threading.main_thread():
        return timeout(3)(sympy_equal)(a, b)
    return sympy_equal(a, b)


def sympy_equal(a: str, b: str) -> bool:
    """Equal as SymPy objects: the same text or object, a zero difference, equations with the same sides, or
    numbers within a relative 1e-4."""
    a, b = parsed(a), parsed(b)
    checks = (lambda: str(a) == str(b) or a == b,
              lambda: a.equals(b) or sympy.simplify(a - b) == 0,
              lambda: abs(a.lhs - a.rhs).equals(abs(b.lhs - b.rhs)),
              lambda: close(float(sympy.N(a)), float(sympy.N(b))))
    for check in checks:
        try:
            if check():
                return True
        except Exception:  # a check that does not apply to these objects (strings, equations, matrices)
            pass
    return False


def is_correct(reference: str, response: str) -> bool:
    """Its verdict: the prediction is normalised twice (by its ``extract_answer`` and again by its
    ``run_execute``), the reference once."""
    try:
        return equal(normalise(normalise(answer_text(response))), normalise(reference))
    except Exception:  # incl. the timeout: its harness counts a comparison that fails as wrong
        return False
