"""The model pairs a profile analyses, and the problems it asks them: the organism (built on first use), or
real checkpoints with a math benchmark (the profile's ``pairs`` section). Notebooks 01-04 and the CLI take
everything from here, so the same analyses run on either.

A ``pairs`` section (see papermill_runs/paper.yaml)::

    pairs:
      base: Qwen/Qwen2.5-32B                       # local directory or hub id
      tuned: {dapo: BytedTsinghua-SIA/DAPO-Qwen-32B, simplerl: hkust-nlp/Qwen-2.5-32B-SimpleRL-Zoo}
      # or, for a model whose pair is asked its own way: dapo: {model: ID, prompt: ..., answer_format: answer_line,
      #                                                          grader: dapo, template_from: dapo}
      data: HuggingFaceH4/aime_2024                # .jsonl/.parquet file, or hub dataset id
      prompt: "{problem}\nPlease reason step by step, and put your final answer within \\boxed{}."
      system: "You are a helpful assistant."        # optional: the chat's system message (default: the template's)
      answer_format: boxed                         # or answer_line ("Answer: ..."), or either
      grader: math-verify                          # or dapo / qwen-math: DAPO's or Qwen2.5-Math's own grader
      frozen: false                                # true: refuse any hub model or dataset not pinned to a commit

``data`` may name several benchmarks (name -> source), and a source may be a mapping that pins a hub dataset:
``{dataset: ID, revision: COMMIT, files: "data/train-*", problem_field: question}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import organism
from ..core.cache import COMMIT
from ..models.loading import check_model_source, check_same_vocabulary, is_pinned, load_tokenizer, stop_ids
from ..organism import task
from ..organism.problems import OrganismProblems
from ..problems.data import load_problems
from ..problems.math_answers import FORMATS, GRADERS
from ..problems.problem_sets import PROMPT, MathProblems, ProblemSet, check_prompt
from . import profiles


@dataclass
class Pairs:
    base: str | Path
    tuned: dict[str, str | Path]  # every model compared with the base, by name
    rl_names: list[str]  # the RL models among them (checkpoints, cross-sampling)
    labels: dict[str, str]  # how figures name each model
    max_new_tokens: int  # response length limit
    make_problems: Callable[[int | None, int, str | None], ProblemSet]
    checkpoint_paths: dict[str, list[tuple[int, str | Path]]] = field(default_factory=dict)
    # tuned models whose pair is asked its own way (prompt, template, answer format, grader): name -> its maker
    own_problems: dict[str, Callable[[int | None, int, str | None], ProblemSet]] = field(default_factory=dict)

    def problems(self, n: int | None, seed: int, benchmark: str | None = None, model: str | None = None) -> ProblemSet:
        """``n`` problems (None: all the benchmark has); ``seed`` picks the organism's held-out problems;
        ``benchmark`` names one of the profile's benchmarks (default: its first); ``model``: as tuned model
        ``model``'s pair is asked (default: as the pairs section says for all)."""
        return self.own_problems.get(model, self.make_problems)(n, seed, benchmark or None)

    def checkpoints(self, name: str) -> list[tuple[int, str | Path]]:
        """(step, model) along RL run ``name``, step 0 being the base; empty when the profile names none."""
        found = self.checkpoint_paths.get(name, [])
        return [(0, self.base), *found] if found else []


def for_profile(profile: str, show_progress: bool = True) -> Pairs:
    section = profiles.load(profile).get("pairs")
    if section:
        return from_section(section, f"{profiles.name(profile)}.yaml")
    return for_organism(profiles.organism_config(profile), show_progress)


def for_organism(config: organism.OrganismConfig, show_progress: bool = True) -> Pairs:
    org = organism.build(config, show_progress=show_progress)
    tok = load_tokenizer(org.base)

    def make(n, seed, benchmark):
        if benchmark not in (None, "held_out"):
            raise ValueError(f"the organism has one benchmark, its held-out problems; got benchmark {benchmark!r}")
        return OrganismProblems(task.sample_problems(n, "held_out", seed), tok)

    return Pairs(base=org.base, tuned=org.tuned, rl_names=list(organism.RL_NAMES), labels=organism.LABELS,
                 max_new_tokens=config.max_new_tokens, make_problems=make,
                 checkpoint_paths={name: org.checkpoints(name)[1:] for name in org.tuned})


ASKED = ("prompt", "system", "template_from", "answer_format", "grader")  # what a tuned model's entry may set
PAIR_FIELDS = {"base": str, "tuned": dict, "labels": dict, "checkpoints": dict, "data": (str, dict),
               "problem_field": str, "answer_field": str, "template_from": str, "prompt": str, "system": str,
               "answer_format": str, "grader": str, "max_new_tokens": int, "frozen": bool}
SOURCE_FIELDS = {"dataset": str, "files": str, "revision": str, "problem_field": str, "answer_field": str,
                 "problems": int}


def from_section(section: dict, where: str = "pairs") -> Pairs:
    """Real checkpoints as a profile's ``pairs`` section names them; the models and local data files are
    checked (paths exist, vocabularies agree, fields present) before any weights are read."""
    if not isinstance(section, dict):
        raise ValueError(f"{where}: pairs must be a mapping, got {section!r}")
    for name, value in section.items():
        if name not in PAIR_FIELDS:
            raise ValueError(f"{where}: pairs has no field {name!r}; valid ones are {sorted(PAIR_FIELDS)}")
        if not isinstance(value, PAIR_FIELDS[name]):
            raise ValueError(f"{where}: pairs.{name} has the wrong type: {value!r}")
    missing = [f for f in ("base", "tuned", "data") if f not in section]
    if missing:
        raise ValueError(f"{where}: pairs needs {missing}")
    tuned, asked = {}, {}
    for name, value in section["tuned"].items():
        if isinstance(value, dict):  # {model: ID, and how its pair is asked: ASKED}
            wrong = sorted(set(value) - {"model", *ASKED}) or [k for k, v in value.items() if not isinstance(v, str)]
            if wrong or "model" not in value:
                raise ValueError(f"{where}: tuned.{name} is a model id, or a mapping with `model` and any of "
                                 f"{list(ASKED)} (strings); check {wrong or ['model']}")
            tuned[str(name)], asked[str(name)] = value["model"], {k: v for k, v in value.items() if k != "model"}
        else:
            tuned[str(name)] = str(value)
    checkpoints = {name: sorted((int(step), str(path)) for step, path in steps.items())
                   for name, steps in (section.get("checkpoints") or {}).items()}
    data = benchmarks(section)
    shared = {"template_from": section.get("template_from", "base"), "prompt": section.get("prompt", PROMPT),
              "system": section.get("system", ""),
              "answer_format": section.get("answer_format", "boxed"), "grader": section.get("grader", "math-verify")}
    fields = {"problem_field": section.get("problem_field", "problem"),
              "answer_field": section.get("answer_field", "answer"), "frozen": section.get("frozen", False)}

    def maker(own: dict, at: str):
        return math_problems(section["base"], tuned, data, where=at, **fields, **{**shared, **own})

    return Pairs(base=section["base"], tuned=tuned, rl_names=list(tuned),
                 labels={"base": section["base"], **tuned, **(section.get("labels") or {})},
                 max_new_tokens=section.get("max_new_tokens", 8192), make_problems=maker({}, where),
                 checkpoint_paths=checkpoints,
                 own_problems={name: maker(own, f"{where}: tuned.{name}") for name, own in asked.items()})


def benchmarks(section: dict) -> dict:
    """A pairs section's benchmarks, name -> source: ``data`` itself, or ``{"default": data}`` for one benchmark."""
    data = section["data"]
    return {"default": data} if not isinstance(data, dict) or "dataset" in data else data


def data_source(spec, problem_field: str, answer_field: str, where: str) -> dict:
    """A benchmark's source as ``data.load_problems`` takes it: a file or hub id, or a mapping that pins a hub
    dataset (``SOURCE_FIELDS``, with ``problems``: how many it must hold); the pair's field names unless the
    mapping gives its own."""
    if isinstance(spec, str):
        return {"source": spec, "problem_field": problem_field, "answer_field": answer_field}
    if not isinstance(spec, dict) or "dataset" not in spec:
        raise ValueError(f"{where}: a benchmark is a file, a hub dataset id, or a mapping with 'dataset' (and "
                         f"optionally {sorted(set(SOURCE_FIELDS) - {'dataset'})}), got {spec!r}")
    for name, value in spec.items():
        wanted = SOURCE_FIELDS.get(name)
        if wanted is None or not isinstance(value, wanted) or isinstance(value, bool):
            raise ValueError(f"{where}: data field {name}={value!r} is not one of {sorted(SOURCE_FIELDS)} (strings; "
                             "problems: the count the benchmark must hold)")
    if spec.get("problems", 1) < 1:
        raise ValueError(f"{where}: problems={spec['problems']} must be at least 1 (the count the benchmark holds)")
    return {"source": spec["dataset"], "problem_field": spec.get("problem_field", problem_field),
            "answer_field": spec.get("answer_field", answer_field), "files": spec.get("files", ""),
            "revision": spec.get("revision", ""), "count": spec.get("problems")}


def check_frozen(models: dict[str, str], sources: dict[str, dict], where: str) -> None:
    """A frozen run reads nothing the hub could serve differently tomorrow: refuse each hub model not pinned as
    ID@COMMIT and each hub dataset without a commit ``revision``, naming them all."""
    loose = [f"model {name}: {source}" for name, source in models.items() if not is_pinned(source)]
    loose += [f"data {name}: {s['source']}" for name, s in sources.items()
              if not Path(s["source"]).expanduser().exists() and not COMMIT.match(s.get("revision", ""))]
    if loose:
        raise ValueError(f"{where}: frozen, but {len(loose)} source(s) are not pinned to a commit "
                         f"({'; '.join(loose)}): pin each model as ID@COMMIT and each hub dataset with revision: "
                         "COMMIT (40 hex digits), pass local copies, or drop frozen")


def math_problems(base: str, tuned: dict[str, str], data: dict, template_from: str = "base",
                  problem_field: str = "problem", answer_field: str = "answer", prompt: str = PROMPT,
                  answer_format: str = "boxed", grader: str = "math-verify", frozen: bool = False,
                  system: str = "", where: str = "pairs") -> Callable[[int | None, int, str | None], MathProblems]:
    """A maker of the pair's benchmark problems (``data``: benchmark name -> source (see ``data_source``), the
    first being the default) with one prompt (``prompt``'s ``{problem}`` slot filled, through the
    ``template_from`` model's chat template: "base" or a tuned model's name, after ``system`` as its system
    message when given), one stop set (every EOS the models name), one answer format and one grader for all the
    models; ``frozen``: every source pinned (``check_frozen``). Refuses missing models, differing
    vocabularies, bad prompts and formats, and malformed local data files at once."""
    check_prompt(prompt)
    if answer_format not in FORMATS:
        raise ValueError(f"{where}: unknown answer_format {answer_format!r}; choose one of {FORMATS}")
    if grader not in GRADERS:
        raise ValueError(f"{where}: unknown grader {grader!r}; choose one of {GRADERS}")
    sources = {name: data_source(spec, problem_field, answer_field, f"{where}: data.{name}")
               for name, spec in data.items()}
    models = {"base": base, **tuned}
    if frozen:
        check_frozen(models, sources, where)
    for source in models.values():
        check_model_source(source)  # every path at once, before any download
    tokenizers = {name: load_tokenizer(source) for name, source in models.items()}
    for name, tok in tokenizers.items():
        try:
            check_same_vocabulary(tokenizers["base"], tok)
        except ValueError as e:
            raise ValueError(f"{base} vs {models[name]}: {e}") from None
    if template_from not in models:
        raise ValueError(f"template_from {template_from!r} names no model of the pair; choose one of {list(models)}")
    template, stops = tokenizers[template_from], stop_ids(tokenizers.values(), models.values())
    load = lambda s: load_problems(**s)
    loaded = {name: load(s) for name, s in sources.items() if Path(s["source"]).expanduser().exists()}

    def make(n, seed, benchmark):
        name = benchmark or next(iter(sources))
        if name not in sources:
            raise ValueError(f"no benchmark {name!r}; the profile names {list(sources)}")
        if name not in loaded:
            loaded[name] = load(sources[name])  # a hub dataset: fetched on first use
        return MathProblems(loaded[name][:n], template, stops, prompt, answer_format, grader, system)

    return make
