"""Which positions of a response decide its reward: every token of the organism's responses labelled as a
reward-relevant decision (by kind: ``task.DECISIONS``), a reward-neutral choice (a phrasing, a connective,
restating, reading out, the line break) or deterministic (what the text so far fixes: digits copied, a sum's
notation, the words of a chosen phrase).

The demonstrator records its own decisions and choices (``task.Written``); a model's response is labelled by
``label_text``, which reads the text with the demonstrator's grammar and puts each decision and choice where the
demonstrator would have recorded it (tested against the demonstrator's records on its texts). Text the grammar
does not know (a model that wrote something its teacher never did) is labelled "unparsed" from there on, and
counted, never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..core.behaviour import Version
from . import task

BEHAVIOUR = Version(1)

DETERMINISTIC, CHOICE, UNPARSED = "deterministic", "choice", "unparsed"
LABELS = (*(f"decision:{k}" for k in task.DECISIONS), CHOICE, DETERMINISTIC, UNPARSED)

_NAME = "|".join(task.COLUMN_NAMES)
_SUM = r"\d+(?:\+\d+)*=\d+"
_SHORTCUT = re.compile(r"(?:The|So the|Quickly, the) answer is \d+\.")
_RESTATE = re.compile(r"We add \d+ and \d+\.|Adding \d+(?: \+ \d+)+ column by column\.|Line up \d+(?:, \d+)+\.")
_LEAD = re.compile(r"Then |Next, |Now ")
_COLUMN = re.compile(rf"(?:{_NAME}): [\d+]+|(?:{_NAME}) column of [\d+]+|in the (?:{_NAME}) of [\d+]+")
_QUICK = re.compile(r" (?:at a glance|in my head) is ")
_RESULT = re.compile(r"\d+, ")  # a column's sum as written, where a slip shows
_WRITTEN_SUM = re.compile(r", \d+(?:\+\d+)*=(?=\d+, )")
_CHECK = re.compile(rf"wait, {_SUM}, not \d+\. |check: {_SUM}, ok\. ")
_WRITE = re.compile(r"(?:write \d carry \d|keep \d and carry \d|that is \d carry \d|write \d|keep \d|digit \d)\.")
_SEP = re.compile(r"\n| ")
_LAST_CARRY = re.compile(r"The last carry \d goes in front\.|Carry \d leads\.")
_READOUT = re.compile(r"(?:Reading the digits: |From the left: )\d(?: \d)*\.")
_ANSWER = re.compile(r"(?:So the|The|That means the) answer is \d+\.")
AGAIN = ("Let me add it again.", "Once more to be sure.", "Again:")
_AGAIN = re.compile("|".join(map(re.escape, AGAIN)))
_AGAIN_LINE = re.compile(rf"(?:{_NAME}): {_SUM}\.")
_CUT_LINE = re.compile(rf"(?:{_NAME})(?::(?: [\d+=]*\.?)?)?")  # a restarted line cut by the length limit


@dataclass
class Labelled:
    """Where a text's decisions (character offset, kind) and reward-neutral choices (offsets) fall, as
    ``task.Written`` records them, and how far the grammar could read it (``parsed``: characters; ``complete``:
    all of it)."""

    decisions: list[tuple[int, str]] = field(default_factory=list)
    choices: list[int] = field(default_factory=list)
    parsed: int = 0
    complete: bool = False


class _Reader:
    def __init__(self, text: str):
        self.text, self.at, self.out, self.sep_shown = text, 0, Labelled(), False

    def take(self, pattern: re.Pattern) -> bool:
        found = pattern.match(self.text, self.at)
        if found:
            self.at = found.end()
        return bool(found)

    def decide(self, kind: str) -> None:
        self.out.decisions.append((self.at, kind))

    def choose(self) -> None:
        if not self.out.choices or self.out.choices[-1] != self.at:
            self.out.choices.append(self.at)

    def end_line(self) -> bool:
        if not self.sep_shown:
            self.choose()
            self.sep_shown = True
        return self.take(_SEP)

    def done(self) -> Labelled:
        self.out.parsed, self.out.complete = self.at, self.at >= len(self.text)
        return self.out


def label_text(text: str) -> Labelled:
    """The decisions and choices of a response in the organism's task, read with the demonstrator's grammar."""
    r = _Reader(text)
    r.decide("strategy")
    if r.take(_SHORTCUT):
        return _stop(r)
    r.choose()
    if r.take(_RESTATE) and not r.end_line():
        return r.done()
    column = 0
    while True:
        r.choose()
        if column and r.take(_LEAD):
            r.choose()
        if not r.take(_COLUMN):
            break
        r.decide("method")
        if not (r.take(_QUICK) or r.take(_WRITTEN_SUM)):
            return r.done()
        r.decide("sum")
        if not r.take(_RESULT):
            return r.done()
        r.decide("check")
        r.take(_CHECK)
        r.choose()
        if not r.take(_WRITE) or not r.end_line():
            return r.done()
        column += 1
    if not column:
        return r.done()
    if r.take(_LAST_CARRY):
        if not r.end_line():
            return r.done()
        r.choose()
    if r.take(_READOUT):
        if not r.end_line():
            return r.done()
        r.choose()
    if not r.take(_ANSWER):
        return r.done()
    return _stop(r)


def _stop(r: _Reader) -> Labelled:
    """After the answer: the stop decision, then, where the text goes on, its restarts (each a choice of words),
    up to where the length limit cut it (mid-line, even mid-word)."""
    r.decide("stop")
    while r.at < len(r.text):
        if not r.end_line():
            return _cut(r)
        if r.at == len(r.text):
            break
        r.choose()
        if not r.take(_AGAIN):
            return _cut(r)
        while r.end_line() and r.take(_AGAIN_LINE):  # the restart's lines, then the blank before the next
            pass
    return r.done()


def _cut(r: _Reader) -> Labelled:
    """The end of a restart cut by the length limit: read to the end if the rest begins what the grammar would
    write there."""
    tail = r.text[r.at :]
    if any(phrase.startswith(tail) for phrase in AGAIN) or any(name.startswith(tail) for name in task.COLUMN_NAMES) \
            or _CUT_LINE.fullmatch(tail):
        r.at = len(r.text)
    return r.done()


def token_labels(labelled: Labelled, starts: list[int], stopped: bool) -> list[str]:
    """One label per response position (each token, and the stop token where the response stopped), from where
    the text's decisions and choices fall: a decision or choice labels the first token starting at or after its
    offset (the token it decides; the stop token for an offset at the text's end); a decision wins over a choice
    at the same token; tokens past what the grammar could read are "unparsed"."""
    n = len(starts) + stopped
    position = lambda offset: next((i for i, s in enumerate(starts) if s >= offset), len(starts))  # noqa: E731
    labels = [DETERMINISTIC] * n
    for offset in labelled.choices:
        if position(offset) < n:
            labels[position(offset)] = CHOICE
    for offset, kind in labelled.decisions:
        if position(offset) < n:
            labels[position(offset)] = f"decision:{kind}"
    if not labelled.complete:
        labels = [UNPARSED if i >= position(labelled.parsed) and label == DETERMINISTIC else label
                  for i, label in enumerate(labels)]
    return labels
