"""The findings file: headline numbers of a profile, ``figures/<profile>/findings.json``.

A flat JSON object of named numbers (``organism.base.pass@1``); where the paper reports a comparable
number it stands beside it under the same name with ``.paper`` appended (and ``.paper_bound``, ">" or "<",
where the paper's number is a bound). A verdict on one of the paper's claims (``analyses.claims``) stands
beside the number it rests on: ``.verdict`` (agrees, disagrees, inconclusive, not testable), ``.claim`` and
``.rule``. Notebooks add their numbers
with ``record``; a full run of a profile starts the file afresh (``reset``), so a renamed or retired finding
does not live on, while a run of some notebooks merges into it. The README's headline table and docs/results.md are
generated from the ``default`` profile's file.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..analyses.claims import FULL_JS, PAPER, Claim, Verdict
from ..core.paths import REPO, figure_root
from . import profiles

PAPER_SUFFIX = ".paper"
BOUND_SUFFIX, VERDICT_SUFFIX, CLAIM_SUFFIX, RULE_SUFFIX = ".paper_bound", ".verdict", ".claim", ".rule"
TABLE_BEGIN, TABLE_END = "<!-- findings-table:begin -->", "<!-- findings-table:end -->"


def output_dir(profile: str) -> Path:
    path = figure_root() / profiles.name(profile)
    path.mkdir(parents=True, exist_ok=True)
    return path


def path(profile: str) -> Path:
    return output_dir(profile) / "findings.json"


def load(profile: str) -> dict:
    p = path(profile)
    return json.loads(p.read_text()) if p.is_file() else {}


def reset(profile: str) -> None:
    """Start the profile's findings afresh (a full run of its notebooks will record every finding again)."""
    path(profile).unlink(missing_ok=True)


def record(profile: str, values: dict[str, float], paper: dict[str, float | Claim] | None = None,
           verdicts: Sequence[Verdict] = ()) -> dict:
    """Merge ``values`` and ``verdicts`` into the profile's findings file. A verdict records its statistic (with
    its interval) as a finding, and beside it the status, the claim and the rule it was judged by. The paper's
    number (and bound direction) goes beside each finding named like a claim of ``claims.PAPER`` and beside
    each verdict's statistic whose claim has a number; ``paper`` adds or overrides them by name."""
    values, text, given = dict(values), {}, paper or {}
    paper = {name: PAPER[name] for name in values if name in PAPER and PAPER[name].value is not None}
    for v in verdicts:
        values[v.statistic] = v.value
        if v.low is not None:
            values[v.statistic + ".ci95_low"], values[v.statistic + ".ci95_high"] = v.low, v.high
        text.update({v.statistic + VERDICT_SUFFIX: v.status, v.statistic + CLAIM_SUFFIX: PAPER[v.claim].text,
                     v.statistic + RULE_SUFFIX: v.rule})
        if PAPER[v.claim].value is not None:
            paper[v.statistic] = PAPER[v.claim]
    paper.update(given)
    stray = set(paper) - set(values)
    if stray:
        raise ValueError(f"paper numbers given for names with no value of ours: {sorted(stray)}")
    merged = load(profile)
    for name, value in values.items():
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"finding {name!r} must be a finite number, got {value!r}")
        merged[name] = float(value)
    for name, number in paper.items():
        claim = number if isinstance(number, Claim) else Claim("", "", float(number))
        merged[name + PAPER_SUFFIX] = float(claim.value)
        if claim.bound:
            merged[name + BOUND_SUFFIX] = claim.bound
    merged.update(text)
    _write_atomic(path(profile), json.dumps(dict(sorted(merged.items())), indent=1) + "\n")
    return merged


def _write_atomic(target: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, target)


CI_SUFFIXES = (".ci95_low", ".ci95_high")
ANNOTATIONS = (PAPER_SUFFIX, *CI_SUFFIXES, BOUND_SUFFIX, VERDICT_SUFFIX, CLAIM_SUFFIX, RULE_SUFFIX)


def markdown_table(findings: dict) -> str:
    """One row per finding; a finding's 95% interval (``<name>.ci95_low/high``) goes in its row, the paper's
    number with its bound direction beside it, and the verdict judged on it (with the claim) in the last column."""
    rows = ["| finding | this suite (organism) | paper | verdict |", "|---|---:|---:|---|"]
    for name, value in findings.items():
        if name.endswith(ANNOTATIONS):
            continue
        ours = f"{value:.3g}"
        low, high = (findings.get(name + s) for s in CI_SUFFIXES)
        if low is not None and high is not None:
            ours += f" [{low:.3g}, {high:.3g}]"
        paper = findings.get(name + PAPER_SUFFIX)
        paper = "" if paper is None else f"{findings.get(name + BOUND_SUFFIX, '')}{paper:.3g}"
        verdict = findings.get(name + VERDICT_SUFFIX)
        verdict = "" if verdict is None else f"{verdict}: {findings[name + CLAIM_SUFFIX]}"
        rows.append(f"| `{name}` | {ours} | {paper} | {verdict} |")
    return "\n".join(rows)


RESULTS = REPO / "docs" / "results.md"
RESULTS_INTRO = """Generated from `figures/default/findings.json` by `make reproduce` (never edited by hand). A name ending
in `.paper` in that file is the paper's number for the finding of the same name (">0.83": the paper's number
is a bound; "~0.3": an "about"). The organism's accuracies are on its addition task; the paper's are AIME 2024
avg@32 (Qwen2.5-32B, DAPO-Qwen-32B, SimpleRL-Zoo-32B), shown for orientation, not as a target. Token counts
per response are not comparable across scales (~170-token responses here, ~3,600 in the paper).

The verdict column judges one of the paper's claims (`analyses/claims.py` holds them, with their numbers and
sources) on the statistic in that row, with a 95% interval from resampling problems (a problem's responses
together): **agrees** when the whole interval lies on the claim's side of its threshold, **disagrees**
when it lies on the other side, **inconclusive** when it straddles it, **not testable** when the statistic
cannot speak to the claim here; the findings file holds the rule each was judged by (`.rule`). Every verdict
function has a unit test that feeds it data that should disagree. Notebook 05's verdicts rest on a paired
sign-flip permutation test over seeds instead (p < 0.05 with the arm ahead)."""


def headline_table(findings: dict) -> str:
    """One row per judged claim: the claim, the statistic it was judged on (with its 95% interval), the paper's
    number and the verdict; a claim judged on both JS measures has two rows, each saying which."""
    rows = ["| the paper's claim | this suite (organism) | paper | verdict |", "|---|---:|---:|---|"]
    for name, value in findings.items():
        verdict = findings.get(name + VERDICT_SUFFIX)
        if name.endswith(ANNOTATIONS) or verdict is None:
            continue
        low, high = (findings.get(name + s) for s in CI_SUFFIXES)
        ours = f"{value:.3g}" + (f" [{low:.3g}, {high:.3g}]" if low is not None and high is not None else "")
        paper = findings.get(name + PAPER_SUFFIX)
        paper = "" if paper is None else f"{findings.get(name + BOUND_SUFFIX, '')}{paper:.3g}"
        metric = " [full JS, primary here]" if name.endswith(FULL_JS) else \
            " [top-p JS, the paper's metric]" if name + FULL_JS + VERDICT_SUFFIX in findings else ""
        rows.append(f"| {findings[name + CLAIM_SUFFIX]}{metric} (`{name}`) | {ours} | {paper} | **{verdict}** |")
    return "\n".join(rows)


def update_documents(profile: str = "default", readme: Path = REPO / "README.md", results: Path = RESULTS) -> None:
    """From the profile's findings file: the README's headline table (between its findings-table markers) and
    the full table with how to read it (``results``)."""
    text = readme.read_text()
    if TABLE_BEGIN not in text or TABLE_END not in text:
        raise ValueError(f"{readme} has no {TABLE_BEGIN} ... {TABLE_END} markers to put the table between")
    found = load(profile)
    pattern = re.compile(re.escape(TABLE_BEGIN) + ".*?" + re.escape(TABLE_END), re.S)
    readme.write_text(pattern.sub(lambda _: f"{TABLE_BEGIN}\n{headline_table(found)}\n{TABLE_END}", text))
    results.write_text(f"# Results: paper vs this suite\n\n{RESULTS_INTRO}\n\n{markdown_table(found)}\n")


def write_diff(previous: dict, current: dict, path: Path) -> None:
    """What a regeneration moved: each finding whose value changed, appeared or went, with both values."""
    names = sorted(set(previous) | set(current))
    moved = [n for n in names if previous.get(n) != current.get(n)]
    lines = ["# What moved in the last regeneration of the findings", ""]
    if not moved:
        lines.append("Nothing: every finding came out as before.")
    else:
        lines += [f"{len(moved)} of {len(names)} findings moved.", "", "| finding | before | after |", "|---|---|---|"]
        lines += [f"| `{n}` | {previous.get(n, '')} | {current.get(n, '')} |" for n in moved]
    path.write_text("\n".join(lines) + "\n")


def check_written(profile: str, names: list[str], files: list[str] = ()) -> None:
    """End-of-notebook check: papermill reports success even when a notebook wrote nothing."""
    found = load(profile)
    missing = [n for n in names if n not in found] + [f for f in files if not (output_dir(profile) / f).is_file()]
    if missing:
        raise RuntimeError(f"this notebook promised but did not write: {missing} (in {output_dir(profile)})")
    print(f"all {len(names)} findings and {len(files)} files written to {output_dir(profile)}")
