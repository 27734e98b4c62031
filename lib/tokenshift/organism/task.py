"""The organism's verifiable task: adding two numbers of three to six digits in a written chain of thought.

A problem is two numbers of the same width; the prompt is ``"482107+375931="``. A writer adds the columns from
the right, each time restating what is left of the numbers (their last digits are the column's), saying what
it writes down and carries, and ends by stating the answer::

    We add 482107 and 375931. ones: 482107+375931, 7+1=8, write 8. Next, tens: 48210+37593, 0+3=3, write 3.
    ... So the answer is 858038.<eos>

``verify`` is the single source of truth for accuracy in the suite: reward 1 only when the response states
``answer is <N>.`` exactly once, as its very end, stopped with end-of-sequence, and N is the sum. The working is
not checked: an answer without working counts if it is right.

Two writers make the demonstrations the organism is trained on:

- ``Demonstrator``, whom the base imitates, writes with variation that the reward does not see (restating the
  problem or not, several phrasings and connectives, one line per column or one paragraph, an optional read-out
  of the digits) and takes decisions that decide the reward, at odds that depend on the problem: answering
  without working (tempting on short problems, right only when no column carries), adding a column in the head
  instead of writing it out (risky on hard columns: a carry coming in, a two-digit sum), slips, checking a column
  and
  noticing a slip ("wait, ..."), and stopping after the answer or going on until the length limit.
- ``OtherWriter``, whom the off-policy SFT control imitates, is always right and writes in another style and
  structure.

Each demonstration also says where its decisions fall (``Written.decisions``: character offsets and kinds) and
where it takes a reward-neutral choice (``Written.choices``: a phrasing, a connective, restating or reading out,
one line per column or not), so the suite can tell the positions that decide the reward from those that only
vary the wording (``organism.labels``).
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
from dataclasses import dataclass, field

from ..core import seeding
from ..core.behaviour import Version

BEHAVIOUR = Version(1)  # problems, splits, the verifier and both writers

MIN_DIGITS, MAX_DIGITS = 3, 6
COLUMN_NAMES = ("ones", "tens", "hundreds", "thousands", "ten-thousands", "hundred-thousands", "millions")


@dataclass(frozen=True)
class Problem:
    operands: tuple[int, ...]

    @property
    def prompt(self) -> str:
        return "+".join(map(str, self.operands)) + "="

    @property
    def answer(self) -> int:
        return sum(self.operands)

    def columns(self) -> list[list[int]]:
        """The digits of each column, ones first; a number too short for a column has no digit there."""
        digits = [str(x)[::-1] for x in self.operands]
        return [[int(d[j]) for d in digits if j < len(d)] for j in range(max(map(len, digits)))]

    def carries(self) -> bool:
        """Whether any column carries (then adding digits without carrying gives a wrong answer)."""
        carry = 0
        for column in self.columns():
            carry = (sum(column) + carry) // 10
            if carry:
                return True
        return False


def _digest(problem: Problem) -> bytes:
    return hashlib.sha256(problem.prompt.encode()).digest()


def is_held_out(problem: Problem) -> bool:
    """A fixed 20% of all problems, chosen by hash, is never trained on (by SFT or RL)."""
    return _digest(problem)[0] % 5 == 0


SPLITS = ("train", "held_out", "validation", "test")  # validation and test are the two halves of held_out


def split_of(problem: Problem) -> str:
    if not is_held_out(problem):
        return "train"
    return "validation" if _digest(problem)[1] % 2 == 0 else "test"


def random_problem(rng: random.Random) -> Problem:
    """Two numbers of the same width, three to six digits, so problems (and responses) vary in length."""
    width = rng.randint(MIN_DIGITS, MAX_DIGITS)
    return Problem(tuple(rng.randint(10 ** (width - 1), 10**width - 1) for _ in range(2)))


def sample_problems(n: int, split: str, seed: int) -> list[Problem]:
    """``n`` distinct problems from ``split``, deterministic in ``seed``.

    "held_out" is every problem no training sees; "validation" and "test" split it in halves, for choosing
    hyperparameters on one and reporting on the other.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng = random.Random(seeding.derive(seed, "problems", split))
    seen: set[Problem] = set()
    out: list[Problem] = []
    while len(out) < n:
        p = random_problem(rng)
        if p not in seen and (split_of(p) == split or (split == "held_out" and is_held_out(p))):
            seen.add(p)
            out.append(p)
    return out


def extract_answer(response: str) -> int | None:
    """The answer a response states: ``answer is <N>.`` exactly once, as the response's end; else None."""
    if response.count("answer is") != 1:
        return None
    match = re.search(r"answer is (\d{1,9})\.$", response)
    return int(match.group(1)) if match else None


def verify(problem: Problem, response: str, stopped: bool) -> bool:
    """True only for a right answer stated once, at the very end, properly terminated.

    ``response`` is the decoded text after the prompt without special tokens; ``stopped`` says whether
    the model emitted end-of-sequence (a response cut off by the length limit never counts).
    """
    if not stopped:
        return False
    answer = extract_answer(response)
    return answer is not None and answer == problem.answer


@dataclass
class Written:
    """A demonstration: the text after the prompt, whether it ends with end-of-sequence, where its
    reward-relevant decisions fall: (character offset, kind), kind one of ``DECISIONS``, and where its
    reward-neutral choices fall (character offsets). Each sits before the text it decides."""

    text: str
    stopped: bool
    decisions: list[tuple[int, str]] = field(default_factory=list)
    choices: list[int] = field(default_factory=list)


# strategy: work or answer at once; method: write a column out or add it in the head; sum: a column's sum (where
# slips happen); check: whether to check a column (and to notice a slip); stop: end after the answer or go on
DECISIONS = ("strategy", "method", "sum", "check", "stop")


class _Text:
    """A growing text that records where decisions and reward-neutral choices are taken; ``sep`` (a newline or a
    space, chosen once) ends a line, its first use being where that choice shows."""

    def __init__(self, sep: str = " "):
        self.parts: list[str] = []
        self.length = 0
        self.decisions: list[tuple[int, str]] = []
        self.choices: list[int] = []
        self.sep, self.sep_shown = sep, False

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)

    def decide(self, kind: str) -> None:
        self.decisions.append((self.length, kind))

    def choose(self) -> None:
        if not self.choices or self.choices[-1] != self.length:
            self.choices.append(self.length)

    def end_line(self) -> None:
        if not self.sep_shown:
            self.choose()
            self.sep_shown = True
        self.add(self.sep)

    def __str__(self) -> str:
        return "".join(self.parts)


@dataclass(frozen=True)
class Demonstrator:
    """The base's teacher: a human-like writer with variation the reward ignores and decisions it does not.

    Odds of the reward-relevant decisions (each capped at 0.9):
    - answering at once, without working: ``shortcut`` x 3 / columns (tempting on short problems); the answer
      adds each column's digits without carrying, right only when nothing carries;
    - adding a column in the head ("tens of 482+375 at a glance is 8") instead of writing its sum out: ``quick``; a
      column added in the head is wrong with probability ``quick_error`` x difficulty, where difficulty is 1,
      plus 1 for a two-digit sum, plus 1 for a carry coming in (so the choice is cheap on easy columns, costly on
      hard ones);
    - a slip in a written-out sum: ``slip`` x (digits in the column, plus one for a carry coming in) x 1.5 when
      the sum has two digits;
    - checking a column after writing it: ``check`` x difficulty / 2; a check notices a wrong sum with
      probability ``notice`` and writes "wait, ..." and the right sum, else it confirms what was written;
    - going on after the answer instead of stopping: ``ramble`` x columns / 4; the text then restarts the work
      until the length limit, never ending with end-of-sequence.
    A wrong sum is one off, or the sum without the carry coming in. Reward-neutral odds: restating the problem
    ``restate``, one line per column ``lines``, reading the digits out before the answer ``readout``;
    phrasings and connectives are drawn at odds of their own (``phrasing_odds``: fixed per phrase slot and
    column, drawn once from a flat Dirichlet seeded by ``phrasing_seed``). Uniform odds among 2 or 3 options
    would put every phrasing choice at 1/2 or 1/3 by construction, next to the paper's top-p cut of 0.7
    (2/3 + a little), where a tiny shift moves top-p JS by a fixed jump.
    """

    shortcut: float = 0.25
    quick: float = 0.5
    quick_error: float = 0.15
    slip: float = 0.01
    check: float = 0.2
    notice: float = 0.85
    ramble: float = 0.2
    restate: float = 0.5
    lines: float = 0.5
    readout: float = 0.3
    phrasing_seed: int = 0

    @staticmethod
    def _chance(p: float) -> float:
        return min(0.9, p)

    def _phrase(self, rng: random.Random, slot: str, options: list[str], column: int = 0) -> str:
        return rng.choices(options, phrasing_odds(self.phrasing_seed, slot, column, len(options)))[0]

    @staticmethod
    def _wrong(total: int, carry: int, rng: random.Random) -> int:
        return total - carry if carry and rng.random() < 0.5 else max(0, total + rng.choice([-1, 1]))

    def write(self, problem: Problem, rng: random.Random, max_chars: int = 2000) -> Written:
        sep = "\n" if rng.random() < self.lines else " "
        out = _Text(sep)
        columns = problem.columns()
        out.decide("strategy")
        if rng.random() < self._chance(self.shortcut * 3 / len(columns)):
            guess = int("".join(str(sum(c) % 10) for c in reversed(columns)))
            out.add(self._phrase(rng, "shortcut", ["The answer is", "So the answer is", "Quickly, the answer is"])
                    + f" {guess}.")
            return self._end(out, problem, rng, max_chars)
        out.choose()
        if rng.random() < self.restate:
            nums = [str(x) for x in problem.operands]
            out.add(self._phrase(rng, "restate", [f"We add {nums[0]} and {nums[1]}.",
                                                  f"Adding {' + '.join(nums)} column by column.",
                                                  f"Line up {', '.join(nums)}."]))
            out.end_line()
        digits, carry = [], 0
        for j, column in enumerate(columns):
            addends = column + ([carry] if carry else [])
            total = sum(addends)
            difficulty = 1 + (total >= 10) + (carry > 0)
            # what is left of the numbers, their last digits the column's: each step reads from the one before
            left = "+".join(str(x // 10**j) for x in problem.operands)
            out.choose()
            lead = self._phrase(rng, "lead", ["", "Then ", "Next, ", "Now "], j) if j else ""
            out.add(lead)
            out.choose()
            name = COLUMN_NAMES[j]
            out.add(self._phrase(rng, "column", [f"{name}: {left}", f"{name} column of {left}",
                                                 f"in the {name} of {left}"], j))
            out.decide("method")
            if rng.random() < self.quick:
                wrong = rng.random() < self._chance(self.quick_error * difficulty)
                written = self._wrong(total, carry, rng) if wrong else total
                out.add(self._phrase(rng, "quick", [" at a glance is ", " in my head is "], j))
                out.decide("sum")
                out.add(f"{written}, ")
            else:
                wrong = rng.random() < self._chance(self.slip * len(addends) * (1.5 if total >= 10 else 1.0))
                written = self._wrong(total, carry, rng) if wrong else total
                out.add(", " + self._sum(addends, written).split("=")[0] + "=")
                out.decide("sum")  # before the result: where a slip shows
                out.add(f"{written}, ")
            out.decide("check")
            if rng.random() < self._chance(self.check * difficulty / 2):
                if written != total and rng.random() < self.notice:
                    out.add(f"wait, {self._sum(addends, total)}, not {written}. ")
                    written = total
                else:
                    out.add(f"check: {self._sum(addends, written)}, ok. ")
            carry = written // 10
            digit = written % 10
            digits.append(digit)
            out.choose()
            if carry:
                out.add(self._phrase(rng, "carry", [f"write {digit} carry {carry}.", f"keep {digit} and carry {carry}.",
                                                    f"that is {digit} carry {carry}."], j))
            else:
                out.add(self._phrase(rng, "digit", [f"write {digit}.", f"keep {digit}.", f"digit {digit}."], j))
            out.end_line()
        if carry:
            digits.append(carry)
            out.choose()
            out.add(self._phrase(rng, "last carry", [f"The last carry {carry} goes in front.",
                                                     f"Carry {carry} leads."]))
            out.end_line()
        answer = int("".join(map(str, reversed(digits))))
        out.choose()
        if rng.random() < self.readout:
            out.add(self._phrase(rng, "readout", ["Reading the digits: ", "From the left: "]) + " ".join(str(answer))
                    + ".")
            out.end_line()
            out.choose()
        out.add(self._phrase(rng, "answer", ["So the answer is", "The answer is", "That means the answer is"])
                + f" {answer}.")
        return self._end(out, problem, rng, max_chars)

    @staticmethod
    def _sum(addends: list[int], total: int) -> str:
        # one notation for sums (phrasing varies everywhere else): the addition table is learnt in one context
        return "+".join(map(str, addends)) + f"={total}"

    def _end(self, out: _Text, problem: Problem, rng: random.Random, max_chars: int) -> Written:
        out.decide("stop")
        if rng.random() < self._chance(self.ramble * len(problem.columns()) / 4):
            while out.length < max_chars:  # starts over and never finishes: cut by the length limit
                out.end_line()
                out.choose()
                out.add(self._phrase(rng, "again", ["Let me add it again.", "Once more to be sure.", "Again:"]))
                out.end_line()
                for j, column in enumerate(problem.columns()):
                    out.add(f"{COLUMN_NAMES[j]}: {self._sum(column, sum(column))}.")
                    out.end_line()
            return Written(str(out)[:max_chars], False, out.decisions, [c for c in out.choices if c < max_chars])
        return Written(str(out), True, out.decisions, out.choices)


@functools.cache
def phrasing_odds(seed: int, slot: str, column: int, options: int) -> tuple[float, ...]:
    """The demonstrator's odds of each of ``options`` phrasings in ``slot`` at ``column``: a draw from a flat
    Dirichlet (normalised unit exponentials), fixed by the seed, the slot and the column, so the base can learn
    them as it learns every other odds of its teacher."""
    rng = random.Random(seeding.derive(seed, "phrasing", slot, column))
    draws = [rng.expovariate(1.0) for _ in range(options)]
    return tuple(x / sum(draws) for x in draws)


@dataclass(frozen=True)
class OtherWriter:
    """Another writer, whom the off-policy SFT control imitates: always right, in its own style and structure
    (digits listed without signs, "put"/"move" for write/carry, one line per column, a closing read-off)."""

    def write(self, problem: Problem, rng: random.Random) -> Written:
        out = _Text()
        out.decide("strategy")
        digits, carry = [], 0
        for j, column in enumerate(problem.columns()):
            listed = " ".join(map(str, column)) + (f" with {carry} moved" if carry else "")
            total = sum(column) + carry
            out.add(f"Units {j + 1}: {listed} -> {total}. ")
            out.decide("sum")
            carry, digit = total // 10, total % 10
            digits.append(digit)
            out.add(f"Put {digit}" + (f", move {carry}.\n" if carry else ".\n"))
        if carry:
            digits.append(carry)
            out.add(f"Put the moved {carry} first.\n")
        answer = int("".join(map(str, reversed(digits))))
        out.add(f"Result {answer}, so the answer is {answer}.")
        out.decide("stop")
        return Written(str(out), True, out.decisions)


def reliable_solution(problem: Problem) -> str:
    """A right solution in the demonstrator's style, no slips and no detours (for tests and examples)."""
    digits, carry, lines = [], 0, []
    for j, column in enumerate(problem.columns()):
        addends = column + ([carry] if carry else [])
        total = sum(addends)
        carry, digit = total // 10, total % 10
        digits.append(digit)
        left = "+".join(str(x // 10**j) for x in problem.operands)
        lines.append(f"{COLUMN_NAMES[j]}: {left}, {'+'.join(map(str, addends))}={total}, write {digit}"
                     + (f" carry {carry}." if carry else "."))
    if carry:
        digits.append(carry)
        lines.append(f"The last carry {carry} goes in front.")
    return " ".join(lines) + f" So the answer is {int(''.join(map(str, reversed(digits))))}."
