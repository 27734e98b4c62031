"""The model pairs a profile analyses, and the problems it asks them: the organism (built on first use), or
real checkpoints with a math benchmark (the profile's ``pairs`` section). Notebooks 01-04 and the CLI take
everything from here, so the same analyses run on either.

A ``pairs`` section (see papermill_runs/paper.yaml)::

    pairs:
      base: Qwen/Qwen2.5-32B                       # local directory or hub id
      tuned: {dapo: BytedTsinghua-SIA/DAPO-Qwen-32B, simplerl: hkust-nlp/Qwen-2.5-32B-SimpleRL-Zoo}
      data: HuggingFaceH4/aime_2024                # .jsonl/.parquet file, or hub dataset id
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from transformers import AutoTokenizer

from . import organism, profiles, task
from .data import load_problems
from .loading import check_model_source, stop_ids
from .plotting import LABELS
from .problem_sets import INSTRUCTION, MathProblems, OrganismProblems, ProblemSet
from .scoring import check_same_vocabulary


@dataclass
class Pairs:
    base: str | Path
    tuned: dict[str, str | Path]  # every model compared with the base, by name
    rl_names: list[str]  # the RL models among them (checkpoints, cross-sampling)
    labels: dict[str, str]  # how figures name each model
    max_new_tokens: int  # response length limit
    make_problems: Callable[[int | None, int], ProblemSet]
    checkpoint_paths: dict[str, list[tuple[int, str | Path]]] = field(default_factory=dict)

    def problems(self, n: int | None, seed: int) -> ProblemSet:
        """``n`` problems (None: all the benchmark has); ``seed`` picks the organism's held-out problems."""
        return self.make_problems(n, seed)

    def checkpoints(self, name: str) -> list[tuple[int, str | Path]]:
        """(step, model) along RL run ``name``, step 0 being the base; empty when the profile names none."""
        found = self.checkpoint_paths.get(name, [])
        return [(0, self.base), *found] if found else []


def for_profile(profile: str, progress: bool = True) -> Pairs:
    section = profiles.load(profile).get("pairs")
    return from_section(section, profile) if section else for_organism(profiles.organism_config(profile), progress)


def for_organism(config: organism.OrganismConfig, progress: bool = True) -> Pairs:
    org = organism.build(config, progress=progress)
    tok = AutoTokenizer.from_pretrained(org.base)
    return Pairs(base=org.base, tuned=org.tuned, rl_names=list(organism.RL_NAMES), labels=LABELS,
                 max_new_tokens=config.max_new_tokens,
                 make_problems=lambda n, seed: OrganismProblems(task.sample_problems(n, "held_out", seed), tok),
                 checkpoint_paths={name: org.checkpoints(name)[1:] for name in organism.RL_NAMES})


PAIR_FIELDS = {"base": str, "tuned": dict, "labels": dict, "checkpoints": dict, "data": str, "problem_field": str,
               "answer_field": str, "template_from": str, "instruction": str, "max_new_tokens": int}


def from_section(section: dict, where: str = "pairs") -> Pairs:
    """Real checkpoints as a profile's ``pairs`` section names them; every model and the data are checked
    (paths exist, vocabularies agree) before any weights are read."""
    if not isinstance(section, dict):
        raise ValueError(f"{where}: pairs must be a mapping, got {section!r}")
    for name, value in section.items():
        if name not in PAIR_FIELDS:
            raise ValueError(f"{where}: pairs has no field {name!r}; valid ones are {sorted(PAIR_FIELDS)}")
        if not isinstance(value, PAIR_FIELDS[name]):
            raise ValueError(f"{where}: pairs.{name} must be a {PAIR_FIELDS[name].__name__}, got {value!r}")
    missing = [f for f in ("base", "tuned", "data") if f not in section]
    if missing:
        raise ValueError(f"{where}: pairs needs {missing}")
    tuned = {str(k): str(v) for k, v in section["tuned"].items()}
    checkpoints = {name: sorted((int(step), str(path)) for step, path in steps.items())
                   for name, steps in (section.get("checkpoints") or {}).items()}
    problems = math_problems(section["base"], list(tuned.values()), section["data"],
                             template_from=section.get("template_from", "base"), tuned_names=list(tuned),
                             problem_field=section.get("problem_field", "problem"),
                             answer_field=section.get("answer_field", "answer"),
                             instruction=section.get("instruction", INSTRUCTION))
    return Pairs(base=section["base"], tuned=tuned, rl_names=list(tuned),
                 labels={**LABELS, "base": section["base"], **tuned, **(section.get("labels") or {})},
                 max_new_tokens=section.get("max_new_tokens", 8192), make_problems=problems,
                 checkpoint_paths=checkpoints)


def math_problems(base: str, tuned: list[str], data: str, template_from: str = "base", tuned_names=None,
                  problem_field: str = "problem", answer_field: str = "answer",
                  instruction: str = INSTRUCTION) -> Callable[[int | None, int], MathProblems]:
    """A maker of the pair's benchmark problems: one prompt template (the ``template_from`` model's tokenizer,
    "base" or a tuned model's name) and one stop set (every EOS the models name) for all of the models.
    Refuses missing models, differing vocabularies and malformed data at once."""
    sources = [base, *tuned]
    for source in sources:
        check_model_source(source)
    tokenizers = [AutoTokenizer.from_pretrained(s) for s in sources]
    for source, tok in zip(tuned, tokenizers[1:]):
        try:
            check_same_vocabulary(tokenizers[0], tok)
        except ValueError as e:
            raise ValueError(f"{base} vs {source}: {e}") from None
    names = ["base", *(tuned_names or tuned)]
    if template_from not in names:
        raise ValueError(f"template_from {template_from!r} names no model of the pair; choose one of {names}")
    template = tokenizers[names.index(template_from)]
    stops = stop_ids(tokenizers, sources)
    everything = load_problems(data, problem_field, answer_field)  # checked now, not after loading models
    return lambda n, seed: MathProblems(everything[:n], template, stops, instruction)
