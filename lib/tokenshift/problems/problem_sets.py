"""What a pair is asked: prompts (tokenised once, with one template for both models), the pair's stop
tokens, and a verifier. The organism's addition problems (``organism.problems``) and math benchmarks share
this interface, so every analysis runs on either unchanged."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ..core.behaviour import Version
from ..core.cache import ArtifactCache, spec
from . import math_answers

BEHAVIOUR = Version(1)  # how responses are decoded and handed to a verifier

# The paper's prompt asks for step-by-step reasoning and a boxed answer; its exact wording is not published.
INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
SLOT = "{problem}"
PROMPT = f"{SLOT}\n{INSTRUCTION}"  # the user turn: the problem, then the instruction


@dataclass(frozen=True)
class MathProblem:
    problem: str
    answer: str


def _sha256(obj) -> str:
    return hashlib.sha256(json.dumps(obj).encode()).hexdigest()


@dataclass
class ProblemSet:
    texts: list[str]  # each problem as a person reads it
    answers: list[str]
    prompts: list[list[int]]  # token ids given to both models
    stop_ids: tuple[int, ...]  # a response ends at the first of these
    tokenizer: object  # decodes responses for the verifier

    verifier = None  # the module whose code judges answers (set by each kind), for cache keys
    grading = "the task's verifier"  # how answers are judged, in words (``how_asked``)

    def __len__(self) -> int:
        return len(self.prompts)

    def verify(self, index: int, response: str, stopped: bool) -> bool:
        raise NotImplementedError

    def decode(self, ids: list[int]) -> str:
        # special tokens stay visible, so a stray <pad> or <bos> inside a response fails verification
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def rewards(self, samples, problem: list[int] | None = None) -> list[bool]:
        """Correctness of each sample (``sampling.Samples`` or ``cross_sampling.CrossSamples``); ``problem``
        gives each sample's index in this set when the samples answered a subset of its prompts."""
        problem = samples.prompt_index if problem is None else problem
        return [self.verify(i, self.answer_text(ids), stopped)
                for i, ids, stopped in zip(problem, samples.response_ids, samples.stopped)]

    def verdicts(self, table: pl.DataFrame) -> list[bool]:
        """Correctness of each row of a responses table (``problem``, ``response_ids`` with any stop token
        last, ``stopped``), in row order."""
        return [self.verify(problem, self.answer_text(ids), stopped)
                for problem, ids, stopped in table.select("problem", "response_ids", "stopped").iter_rows()]

    def judged(self, entry: Path, name: str, cache: ArtifactCache) -> pl.DataFrame:
        """The responses table ``name`` of cache ``entry`` with a ``correct`` column: each row judged by the
        verifier, cached apart from sampling under the table's digest, the reference answers and the verifier's
        code, so a new verifier (or a new math-verify) re-judges in seconds instead of re-sampling (GPU-hours at
        paper scale)."""
        table = pl.read_parquet(entry / name)
        key = spec("verdicts", (__name__, self.verifier), None,
                   {"responses": cache.digest(entry, name), "answers": self.answer_key()})

        def build(out: Path):
            pl.DataFrame({"correct": self.verdicts(table)}, schema={"correct": pl.Boolean}).write_parquet(
                out / "verdicts.parquet")

        verdicts = pl.read_parquet(cache.get_or_build(key, build) / "verdicts.parquet")
        return table.with_columns(verdicts["correct"])

    def answer_text(self, ids: list[int]) -> str:
        """What the verifier reads: the response up to its first stop token, decoded. A turn that ran on past
        its end (sampled elsewhere, or without the template's end-of-turn token) is never graded on what
        follows, whose marker decoding may hide."""
        return self.decode(ids[: first_stop(ids, self.stop_ids)])

    def prompt_key(self) -> dict:
        """What sampling reads, for cache keys: the prompts' token ids and the stop set."""
        return {"n": len(self), "prompts": _sha256(self.prompts), "stop_ids": list(self.stop_ids),
                "vocab_size": len(self.tokenizer)}

    def answer_key(self) -> dict:
        """What judging reads, for cache keys: the reference answers (the verifier's version is in its code)."""
        return {"kind": type(self).__name__, "answers": _sha256(self.answers)}

    def rendered_prompt(self, index: int = 0) -> str:
        """A prompt as the models read it, special tokens and chat template included: what a reader checks."""
        return self.tokenizer.decode(self.prompts[index], skip_special_tokens=False)

    def stop_tokens(self) -> dict[int, str]:
        """The stop set as id -> token."""
        return {i: self.tokenizer.convert_ids_to_tokens(i) for i in self.stop_ids}

    def asked(self) -> dict:
        """How the problems are asked and judged, as a run's meta.json records it."""
        return {"first_prompt": self.rendered_prompt(0), "stop_tokens": self.stop_tokens(), "grading": self.grading}

    def how_asked(self) -> str:
        """How the pair is asked and judged, for the top of a notebook: the first prompt exactly as the models
        read it, the stop set and the grading."""
        stops = ", ".join(f"{token} ({i})" for i, token in self.stop_tokens().items())
        return (f"{len(self)} problems. The first, as the models read it:\n{self.rendered_prompt(0)!r}\n"
                f"A response ends at the first of: {stops}. Judged by {self.grading}.")


def first_stop(ids: list[int], stop_ids) -> int:
    """The position of the first stop token in ``ids``; their length if there is none."""
    stops = set(stop_ids)
    return next((k for k, token in enumerate(ids) if token in stops), len(ids))


def check_prompt(template: str) -> str:
    """A prompt template holds the problem's slot exactly once (other braces, as in \\boxed{}, are text)."""
    if not isinstance(template, str) or template.count(SLOT) != 1:
        raise ValueError(f"a prompt template needs the slot {SLOT} exactly once, got {template!r}; e.g. "
                         f"{PROMPT!r}")
    return template


def math_prompt(tokenizer, problem: str, template: str = PROMPT, system: str = "") -> list[int]:
    """The problem put into ``template`` (its ``{problem}`` slot), through the tokenizer's chat template when it
    has one (after ``system`` as the system message, when given; else the template's own default), else as
    plain text."""
    content = check_prompt(template).replace(SLOT, problem)
    if system and not tokenizer.chat_template:
        raise ValueError(f"a system message ({system!r}) needs a chat template, and this tokenizer has none: "
                         "drop `system`, or take the template from a model that has one (template_from)")
    if tokenizer.chat_template:
        turns = [{"role": "system", "content": system}] if system else []
        ids = tokenizer.apply_chat_template([*turns, {"role": "user", "content": content}],
                                            add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
        return list(ids)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return bos + tokenizer(f"{content}\n", add_special_tokens=False)["input_ids"]


class MathProblems(ProblemSet):
    """Math benchmark problems judged on the final answer, found as ``answer_format`` says
    (``math_answers.FORMATS``: the last \\boxed{}, the last "Answer:" line, or either), by ``grader``
    (``math_answers.GRADERS``: math-verify, DAPO's own reward or Qwen2.5-Math's evaluation).

    A response cut off by the length limit is judged on what it wrote, as math benchmarks usually are; it can
    only be right if it gave an answer before the cut."""

    verifier = math_answers.__name__

    def __init__(self, problems: list[MathProblem], tokenizer, stop_ids: tuple[int, ...], template: str = PROMPT,
                 answer_format: str = "boxed", grader: str = "math-verify", system: str = ""):
        if answer_format not in math_answers.FORMATS:
            raise ValueError(f"unknown answer format {answer_format!r}: choose one of {math_answers.FORMATS}")
        if grader not in math_answers.GRADERS:
            raise ValueError(f"unknown grader {grader!r}: choose one of {math_answers.GRADERS}")
        super().__init__(texts=[p.problem for p in problems], answers=[p.answer for p in problems],
                         prompts=[math_prompt(tokenizer, p.problem, template, system) for p in problems],
                         stop_ids=tuple(stop_ids),
                         tokenizer=tokenizer)
        self.answer_format, self.grader = answer_format, grader
        where = {"boxed": "the last \\boxed{}", "answer_line": "the last answer line",
                 "either": "the last \\boxed{} or answer line, whichever comes last"}[answer_format]
        own = {"dapo": "DAPO's own reward (an answer line, else a box, in the last 300 characters; exact match)",
               "qwen-math": "Qwen2.5-Math's evaluation (a box, else 'the answer is', else the last number; numbers "
                            "within 1e-4 or as percentages, else SymPy)"}
        self.grading = own.get(grader, f"math-verify on {where}")

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def verify(self, index: int, response: str, stopped: bool) -> bool:
        return math_answers.is_correct(self.answers[index], response, self.answer_format, self.grader)

    def answer_key(self) -> dict:
        return {**super().answer_key(), "answer_format": self.answer_format, "grader": self.grader}
