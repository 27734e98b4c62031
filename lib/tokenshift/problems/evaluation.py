"""Accuracy of a model on a problem set, as the paper reports it: avg@k and pass@k with intervals.

avg@k is the mean correctness of k samples per problem (the paper's avg@32); its 95% interval treats
problems as the unit (samples of one problem are not independent). pass@k uses the unbiased estimator of
Chen et al. 2021 ("Evaluating Large Language Models Trained on Code"), from n >= k samples per problem.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.behaviour import Version
from ..models.sampling import Decoding, decode
from .problem_sets import ProblemSet

BEHAVIOUR = Version(1)


@dataclass
class Accuracy:
    correct: np.ndarray  # [problems, samples] of bool

    @property
    def avg(self) -> float:
        return float(self.correct.mean())

    @property
    def ci95(self) -> tuple[float, float]:
        per_problem = self.correct.mean(axis=1)
        half = 1.96 * per_problem.std(ddof=1) / math.sqrt(len(per_problem)) if len(per_problem) > 1 else 0.0
        return self.avg - half, self.avg + half

    def pass_at(self, k: int) -> float:
        n = self.correct.shape[1]
        if k > n:
            raise ValueError(f"pass@{k} needs at least {k} samples per problem, have {n}")
        c = self.correct.sum(axis=1)
        # 1 - C(n-c, k) / C(n, k), the probability that k of the n samples include a correct one
        return float(np.mean([1.0 if n - ci < k else 1.0 - math.comb(n - ci, k) / math.comb(n, k) for ci in c]))

    def summary(self) -> str:
        lo, hi = self.ci95
        k = self.correct.shape[1]
        return f"avg@{k} = {self.avg:.3f} [{lo:.3f}, {hi:.3f}] over {self.correct.shape[0]} problems"


def evaluate(model, problems: ProblemSet, k: int, decoding: Decoding) -> Accuracy:
    """Sample ``k`` responses per problem as ``decoding`` says (``Decoding.for_problems``) and verify each."""
    samples = decode(model, problems.prompts, decoding, n=k)
    return Accuracy(np.array(problems.rewards(samples)).reshape(len(problems), k))
