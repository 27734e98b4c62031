"""The organism's problems as a problem set, so every analysis asks them as it asks a math benchmark."""

from __future__ import annotations

from ..core.behaviour import Version
from ..problems.problem_sets import ProblemSet
from . import task

BEHAVIOUR = Version(1)


def prompt_ids(problem: task.Problem, tokenizer) -> list[int]:
    """How a problem is put to the organism: beginning-of-sequence, then the prompt's tokens."""
    return [tokenizer.bos_token_id, *tokenizer(problem.prompt)["input_ids"]]


class OrganismProblems(ProblemSet):
    """The organism's addition problems, judged by the task's strict verifier (format and stop required)."""

    verifier = task.__name__

    def __init__(self, problems: list[task.Problem], tokenizer):
        self.problems = problems
        super().__init__(texts=[p.prompt for p in problems], answers=[str(p.answer) for p in problems],
                         prompts=[prompt_ids(p, tokenizer) for p in problems],
                         stop_ids=(tokenizer.eos_token_id,), tokenizer=tokenizer)

    def verify(self, index: int, response: str, stopped: bool) -> bool:
        return task.verify(self.problems[index], response, stopped)
