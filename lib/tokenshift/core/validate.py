"""The rules every number a user gives must meet, in one table that the command line, the profiles and the
notebook parameters all check against (``check``), and that docs/input-rules.md is generated from (``rules_page``;
a test keeps the page and the table the same). A rule names the fix with the problem: a NaN, an infinity where
none is meant, a count below one, a share outside its interval."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """A setting's type and interval; ``low_open``/``high_open`` exclude an end; ``inf``: infinity is allowed."""

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    inf: bool = False
    meaning: str = ""

    def describe(self) -> str:
        kind = "an integer" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            bounds = f" in {'(' if self.low_open else '['}{_show(self.low)}, {_show(self.high)}{')' if self.high_open else ']'}"
        elif self.low is not None:
            bounds = f" {'>' if self.low_open else '>='} {_show(self.low)}"
        else:
            bounds = ""
        return f"{kind}{bounds}{', or inf' if self.inf else ''}"

    def problem(self, value) -> str | None:
        """What is wrong with ``value`` (None: nothing)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                (self.kind is int and not isinstance(value, int)):
            return f"got {value!r} ({type(value).__name__})"
        if math.isnan(value):
            return "got NaN"
        if math.isinf(value) and not (self.inf and value > 0):
            return f"got {value}"
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return f"got {value}"
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return f"got {value}"
        return None


def _show(x: float) -> str:
    return "ln 2" if x == math.log(2) else f"{x:g}"


COUNT = Rule(int, 1, meaning="a count")
SHARE = Rule(float, 0, 1, low_open=True, meaning="a nucleus or share")
RULES = {
    "samples": COUNT, "samples_per_problem": COUNT, "n_problems": Rule(int, 0, meaning="0: all"),
    "max_new_tokens": COUNT, "limit": COUNT, "prompts_per_unit": COUNT, "responses_per_unit": COUNT,
    "batch_size": COUNT, "sample_batch_size": COUNT, "score_batch_size": COUNT, "max_responses": COUNT,
    "gpus_per_rank": COUNT, "cap": COUNT,
    "temperature": Rule(float, 0, meaning="0: greedy"),
    "top_p": SHARE, "js_top_p": SHARE,
    "eps": Rule(float, inf=True, meaning="the handover threshold: inf never hands over, below 0 always"),
    "eps_grid": Rule(float, inf=True, meaning="handover thresholds (notebook 03)"),
    "robustness_eps_grid": Rule(float, inf=True, meaning="handover thresholds (notebook 03)"),
    "high": Rule(float, 0, math.log(2), low_open=True, high_open=True, meaning="a JS threshold"),
    "high_js": Rule(float, 0, math.log(2), low_open=True, high_open=True, meaning="a JS threshold"),
    "engine_memory": Rule(float, 0, 1, low_open=True, high_open=True, meaning="a share of each device's memory"),
}


def check(name: str, value, where: str, rule: Rule | None = None) -> None:
    """Refuse ``value`` for setting ``name`` (``where`` says how the user gave it: "--top-p", "default.yaml
    shifts.top_p") unless it meets its rule; lists are checked element by element."""
    rule = rule or RULES[name]
    for item in value if isinstance(value, (list, tuple)) else [value]:
        wrong = rule.problem(item)
        if wrong:
            raise ValueError(f"{where} must be {rule.describe()}, {wrong}")


PAGE = """# What the suite accepts as input

Every rule here is checked before any model loads, and a broken one ends in one line that names the input,
what is wrong and the fix (exit status 2), never a traceback; an output is written under a temporary name and
renamed only when complete, so a failed run leaves the previous output untouched. This page is generated from
the validators (`python -m tokenshift.core.validate > docs/input-rules.md`); a test keeps the two the same.

## Problems files (`--data`, a profile's `pairs: data`)
- `.jsonl` (or `.json`): UTF-8 text, a byte-order mark allowed; one JSON object per line, lines ending in `\\n`,
  `\\r\\n` or a bare `\\r`; blank lines skipped; other line breaks (U+2028, U+0085) are text inside strings.
- `.parquet`: a table with one row per problem.
- Each problem has a non-empty `problem` and `answer` field (other names: `--problem-field`, `--answer-field`);
  other fields are ignored. A problem listed twice (up to white space) is refused.

## Responses files (`score --responses`, `view`, `summarise`)
- Parquet, as `tokenshift sample` or `cross-sample` writes it, with the columns and types:
{columns}
- Each response number appears once (per eps and rule in a cross-sample file); every token id is one of the
  pair's tokens, 0 to its tokenizer's length - 1 (an output layer's padding rows are no token).

## Profiles (`papermill_runs/<name>.yaml` or a path)
- UTF-8 YAML holding a mapping of the sections `organism` or `pairs`, `shifts` and `notebooks`; each section a
  mapping of its dataclass's fields (`ShiftSetup`, `OrganismConfig`, ...) to values of their types; each
  notebook's parameters a mapping of the names its `parameters` cell declares to values of their defaults' types.

## Settings (command-line options, profile fields and notebook parameters of these names)
{settings}"""


def rules_page() -> str:
    """docs/input-rules.md, generated from ``RULES`` and the responses schema."""
    from ..models.responses import COLUMNS, CROSS_COLUMNS
    from ..suite.profiles import ShiftSetup

    settings = "\n".join(["| setting | must be | note |", "|---|---|---|",
                          *(f"| `{name}` | {rule.describe()} | {rule.meaning} |" for name, rule in sorted(RULES.items()))])
    settings += "\n\nA profile's `shifts` section differs: " + "; ".join(
        f"`{name}` {rule.describe()} ({rule.meaning})" for name, rule in sorted(ShiftSetup.RULES.items())) + "."
    columns = "\n".join(f"  - `{name}`: {dtype}" for name, dtype in COLUMNS.items())
    columns += "\n  - a cross-sample file adds " + ", ".join(f"`{n}` ({t})" for n, t in CROSS_COLUMNS.items())
    return PAGE.format(columns=columns, settings=settings) + "\n"


if __name__ == "__main__":
    print(rules_page(), end="")
