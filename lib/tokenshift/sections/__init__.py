"""The paper's findings as the notebooks tell them: one module per notebook's claim family (``organism``,
``sparsity``, ``position``, ``cross``, ``topk``, ``weighting``, ``criticality``), each holding its tables,
verdicts and figures in the order its notebook shows them, over the analyses of ``tokenshift.analyses``. A
notebook is its parameters, a call per step and its prose; ``start`` and ``finish`` are every notebook's first
and last steps.
"""

from __future__ import annotations

from collections.abc import Sequence


def start(profile: str, with_study: bool = True):
    """Every notebook's first step: the suite's figure style, the versions a result depends on, and (unless
    not ``with_study``) the profile's study: its models, problems and shift setup."""
    import tokenshift
    from ..suite import plotting, study

    plotting.setup()
    print(tokenshift.versions())
    return study.for_profile(profile) if with_study else None


def finish(profile: str, values: dict, verdicts: Sequence = (), figures: Sequence[str] = ()) -> None:
    """Every notebook's last step: its findings and verdicts merged into the profile's findings file, then a
    check that everything it promised was written."""
    from ..suite import findings

    findings.record(profile, values, verdicts=verdicts)
    findings.check_written(profile, list(values) + [v.statistic for v in verdicts], list(figures))
