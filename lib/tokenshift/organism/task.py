"""The organism's verifiable task: 4-digit addition written as a short chain of thought.

A problem is two 4-digit numbers; the prompt is ``"4821+3759="``. A good response adds column by column
from the right, carrying explicitly, then states the answer and stops::

    1+9=10 2+5+1=8 8+7=15 4+3+1=8 so 8580<eos>

``verify`` is the single source of truth for accuracy in the suite: reward 1 only when the whole response
has the expected format (zero or more column steps, then one ``so <answer>``), the model stopped right
there with end-of-sequence, and the answer is right. The steps themselves are not checked: a correct
answer without working counts, as a boxed answer does.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass

from ..core import seeding
from ..core.behaviour import Version

TASK = Version("task", 1)  # problems, splits, the verifier and the demonstrator

N_DIGITS = 4
LOW, HIGH = 10 ** (N_DIGITS - 1), 10**N_DIGITS - 1


@TASK.code
@dataclass(frozen=True)
class Problem:
    a: int
    b: int

    @property
    def prompt(self) -> str:
        return f"{self.a}+{self.b}="

    @property
    def answer(self) -> int:
        return self.a + self.b


@TASK.code
def _digest(problem: Problem) -> bytes:
    return hashlib.sha256(f"{problem.a}+{problem.b}".encode()).digest()


@TASK.code
def is_held_out(problem: Problem) -> bool:
    """A fixed 20% of all problems, chosen by hash, is never trained on (by SFT or RL)."""
    return _digest(problem)[0] % 5 == 0


SPLITS = ("train", "held_out", "validation", "test")  # validation and test are the two halves of held_out


@TASK.code
def split_of(problem: Problem) -> str:
    if not is_held_out(problem):
        return "train"
    return "validation" if _digest(problem)[1] % 2 == 0 else "test"


@TASK.code
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
        p = Problem(rng.randint(LOW, HIGH), rng.randint(LOW, HIGH))
        if p not in seen and (split_of(p) == split or (split == "held_out" and is_held_out(p))):
            seen.add(p)
            out.append(p)
    return out


@TASK.code
def extract_answer(response: str) -> int | None:
    """The answer of a response in the expected format (steps, then one ``so <answer>``); else None."""
    match = re.fullmatch(r"(?:\d\+\d(?:\+1)?=\d{1,2} )*so (\d{1,6})", response)
    return int(match.group(1)) if match else None


@TASK.code
def verify(problem: Problem, response: str, stopped: bool) -> bool:
    """True only for a correct answer in the expected format, properly terminated.

    ``response`` is the decoded text after the prompt without special tokens; ``stopped`` says whether
    the model emitted end-of-sequence (a response cut off by the length limit never counts).
    """
    if not stopped:
        return False
    answer = extract_answer(response)
    return answer is not None and answer == problem.answer


@TASK.code
def column_steps(problem: Problem, forget_carry_at: int | None = None) -> tuple[list[str], int]:
    """The written column additions and the answer they lead to.

    ``forget_carry_at`` makes the writer drop the carry into that column (counted from the right),
    a human slip; later columns follow from what was written, so the slip propagates to the answer.
    """
    da, db = str(problem.a)[::-1], str(problem.b)[::-1]
    steps, digits, carry = [], [], 0
    for i, (x, y) in enumerate(zip(da, db)):
        if i == forget_carry_at:
            carry = 0
        total = int(x) + int(y) + carry
        steps.append(f"{x}+{y}+1={total}" if carry else f"{x}+{y}={total}")
        digits.append(total % 10)
        carry = total // 10
    if carry:
        digits.append(carry)
    return steps, int("".join(str(d) for d in reversed(digits)))


@TASK.code
def reliable_solution(problem: Problem) -> str:
    """The step-by-step strategy, always right."""
    steps, answer = column_steps(problem)
    return " ".join(steps) + f" so {answer}"


@TASK.code
@dataclass(frozen=True)
class Demonstrator:
    """A noisy, human-like writer of solutions: the base model is SFT-trained to imitate it.

    Most of the time it works column by column; sometimes it takes a shortcut and writes an answer
    without working (adding the columns without carrying: right only when no column carries); in its
    working it sometimes forgets a carry; and sometimes it does not stop after the answer but repeats
    it until the length limit. Each behaviour the RL model needs is present, just not reliably chosen.
    """

    p_shortcut: float = 0.5  # answer without working, no carrying
    p_slip: float = 0.3  # per solution: forget one carry (only matters in a column that carries)
    p_ramble: float = 0.4  # repeat " so <answer>" instead of stopping

    def write(self, problem: Problem, rng: random.Random) -> tuple[str, bool]:
        """One demonstration: (text after the prompt, whether it ends with end-of-sequence)."""
        if rng.random() < self.p_shortcut:
            da, db = str(problem.a), str(problem.b)
            answer = int("".join(str((int(x) + int(y)) % 10) for x, y in zip(da, db)))
            text = f"so {answer}"
        else:
            slip = rng.randrange(1, N_DIGITS) if rng.random() < self.p_slip else None
            steps, answer = column_steps(problem, forget_carry_at=slip)
            text = " ".join(steps) + f" so {answer}"
        if rng.random() < self.p_ramble:
            return text + f" so {answer}" * 8, False
        return text, True
