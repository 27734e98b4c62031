"""Profiles: named parameter sets (``papermill_runs/<profile>.yaml``, or any YAML file given by its path) for
the whole suite.

A profile has
- an ``organism`` section (overrides of ``OrganismConfig``) or a ``pairs`` section (real checkpoints and
  benchmarks; see ``pairs``): the models every notebook analyses;
- a ``shifts`` section (overrides of ``ShiftSetup``): the reference responses and scoring that
  notebooks 01, 02 and 04 analyse together, and the sampling settings notebook 03 shares;
- a ``notebooks`` section: what is truly per notebook, as papermill parameters.
Everything is checked against the dataclasses and the notebooks' tagged parameter cells before any work
starts. Reading a profile imports no model code.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..core import validate
from ..core.paths import PROFILE_DIR
from ..models.engine import ENGINES

SECTIONS = ("organism", "pairs", "shifts", "notebooks")
CROSS_METHODS = ("lockstep", "draft", "engine")  # analyses.cross_sampling.METHODS, named here without loading it


def setting(default, help: str):
    """A settings field with the help its command-line option shows (``suite.cli`` generates the options)."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class ShiftSetup:
    """A profile's ``shifts`` section: the reference responses, how they are scored, and the paper's thresholds;
    the command line's ``sample``, ``score`` and ``cross-sample`` take their options from these fields too."""

    seed: int = setting(0, "seed of the responses' random streams (response r draws from its own, from the seed and r)")
    n_problems: int = setting(200, "organism: held-out problems; a benchmark: its first n problems (0: all)")
    benchmark: str = setting("", "which of the profile's benchmarks (pairs: data); '': its first")
    samples_per_problem: int = setting(4, "responses per problem")
    temperature: float = setting(1.0, "sampling temperature (the paper's 1.0)")
    top_p: float = setting(1.0, "sampling nucleus (the paper's 0.7; the organism's policies are sampled untruncated)")
    max_new_tokens: int = setting(0, "response length limit (0 in a profile: the pair's own; the organism's is its "
                                     "training length)")
    js_top_p: float = setting(0.7, "p of the top-p truncated JS (the paper's 0.7); 1: full-vocabulary JS")
    high_js: float = setting(0.1, "a position is high-divergence above this JS (the paper's threshold)")
    prompts_per_unit: int = setting(64, "problems per sampling work unit (the unit of splitting across processes "
                                        "and of resuming; it changes no response)")
    sample_batch_size: int = setting(256, "sequences decoded together (it changes no response: each draws from its "
                                          "own streams)")
    responses_per_unit: int = setting(64, "responses per scoring work unit")
    score_batch_size: int = setting(16, "sequences per forward pass when scoring")
    engine: str = setting("suite", "who samples the responses: suite (its own decoding loop) or vllm (the inference "
                                   "engine, in its own environment: make env-vllm; the same distributions, other draws)")
    cross_method: str = setting("draft", "cross-sampling's decoder: draft (the primary drafts chunks that the other "
                                         "verifies), lockstep (a token at a time; the same tokens up to rounding) or "
                                         "engine (both models in vLLM, top-p JS from their log-probabilities)")
    cross_drafter: str = setting("suite", "who drafts the primary's chunks with cross_method draft: suite, or vllm (its "
                                          "tokens drawn with the engine's numerics; both models' distributions, the JS "
                                          "and every handover stay the suite's)")
    cross_batch_size: int = setting(0, "sequences cross-sampled together by the suite's models (0: sample_batch_size)")
    # where 0 means "all" or "the pair's own", unlike the command line's options of the same names
    RULES = {"max_new_tokens": validate.Rule(int, 0, meaning="0: the pair's own"),
             "n_problems": validate.Rule(int, 0, meaning="0: all")}

    def __post_init__(self):
        checks = {"n_problems": self.n_problems >= 0, "samples_per_problem": self.samples_per_problem >= 1,
                  "temperature": self.temperature >= 0, "top_p": 0 < self.top_p <= 1,
                  "max_new_tokens": self.max_new_tokens >= 0, "js_top_p": 0 < self.js_top_p <= 1,
                  "high_js": 0 < self.high_js < math.log(2), "prompts_per_unit": self.prompts_per_unit >= 1,
                  "sample_batch_size": self.sample_batch_size >= 1,
                  "responses_per_unit": self.responses_per_unit >= 1, "score_batch_size": self.score_batch_size >= 1,
                  "engine": self.engine in ENGINES, "cross_method": self.cross_method in CROSS_METHODS,
                  "cross_drafter": self.cross_drafter in ENGINES and (self.cross_drafter == "suite"
                                                                      or self.cross_method == "draft"),
                  "cross_batch_size": self.cross_batch_size >= 0}
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"impossible shift setting(s) {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)}: "
                             "counts are positive (n_problems and max_new_tokens may be 0), temperature >= 0, "
                             f"top-p in (0, 1], high_js in (0, ln 2), engine one of {ENGINES}, cross_method one of "
                             f"{CROSS_METHODS}, cross_drafter one of {ENGINES} (an engine drafts for cross_method "
                             "draft only)")


# Named starting points for a ``shifts`` section (``preset: NAME``) and for the command line (``--preset``): the
# organism's (ShiftSetup's defaults) and the paper's setting on real checkpoints (Meng et al. 2026: 32 samples a
# problem at temperature 1 and top-p 0.7, about 8k new tokens, JS on the top-p 0.7 nucleus), with work units and
# batches sized for a 32B pair on one GPU. A section's own fields override its preset's.
PRESETS = {
    "organism": {},
    "paper": {"n_problems": 0, "samples_per_problem": 32, "temperature": 1.0, "top_p": 0.7, "max_new_tokens": 8192,
              "js_top_p": 0.7, "prompts_per_unit": 1, "sample_batch_size": 32, "responses_per_unit": 8,
              "score_batch_size": 2},
}


def preset(name: str, where: str = "preset") -> ShiftSetup:
    """The ``ShiftSetup`` of preset ``name``."""
    if name not in PRESETS:
        raise ValueError(f"{where}: unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return with_overrides(ShiftSetup(), PRESETS[name], where=f"preset {name}")


def available() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def locate(profile: str) -> Path:
    """The profile's file: ``papermill_runs/<profile>.yaml``, or ``profile`` itself when it is a YAML path."""
    if str(profile).endswith((".yaml", ".yml")):
        path = Path(profile).expanduser()
        if not path.is_file():
            raise ValueError(f"profile file {path} does not exist")
        return path
    path = PROFILE_DIR / f"{profile}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown profile {profile!r}: choose one of {available()} (files in {PROFILE_DIR}), "
                         "or give the path of a .yaml file")
    return path


def name(profile: str) -> str:
    """The profile's name, which names its output folders: the file's stem."""
    return Path(profile).stem if str(profile).endswith((".yaml", ".yml")) else str(profile)


def read_yaml(path: Path):
    """A YAML file's content (empty: {}), or an error naming the line that does not parse."""
    try:
        return yaml.safe_load(path.read_bytes().decode("utf-8-sig")) or {}
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"{path} is not valid YAML ({getattr(e, 'problem', None) or e}{at}); fix the file, e.g. "
                         "indent each section's settings under it as `name: value`") from None


def load(profile: str) -> dict:
    """The profile's sections; with ``extends: OTHER``, OTHER's sections where it gives none of its own."""
    path = locate(profile)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a profile is a mapping of sections {list(SECTIONS)}")
    parent = data.pop("extends", None)
    if parent is not None:
        if not isinstance(parent, str) or name(parent) == name(str(path)):
            raise ValueError(f"{path}: extends names another profile, got {parent!r}")
        data = {**load(parent), **data}
    unknown = set(data) - set(SECTIONS)
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {sorted(unknown)}; a profile has 'organism' (or 'pairs', "
                         "real checkpoints), 'shifts' and 'notebooks', and may say which profile it 'extends'")
    if "organism" in data and "pairs" in data:
        raise ValueError(f"{path}: give either 'organism' (the suite's own pair) or 'pairs' (real checkpoints)")
    return data


def organism_config(profile: str):
    """The profile's organism: ``OrganismConfig`` with the profile's overrides applied."""
    from ..organism import OrganismConfig

    return with_overrides(OrganismConfig(), load(profile).get("organism") or {},
                          where=f"{name(profile)}.yaml: organism")


def shift_setup(profile: str) -> ShiftSetup:
    """The profile's ``shifts`` section as a ``ShiftSetup``."""
    return shifts_section(load(profile).get("shifts") or {}, where=f"{name(profile)}.yaml: shifts")


def shifts_section(section, where: str) -> ShiftSetup:
    """A ``shifts`` section (of a profile or the atlas's registry) as a ``ShiftSetup``: its preset, if it names
    one, with its own fields over it."""
    if not isinstance(section, dict) or "preset" not in section:
        return with_overrides(ShiftSetup(), section, where=where)
    rest = {k: v for k, v in section.items() if k != "preset"}
    return with_overrides(preset(section["preset"], f"{where}.preset"), rest, where=where)


def notebook_parameters(profile: str) -> dict[str, dict]:
    """The ``notebooks`` section: each notebook's name and its parameters (a mapping, maybe empty)."""
    section = load(profile).get("notebooks") or {}
    where = f"{name(profile)}.yaml: notebooks"
    if not isinstance(section, dict):
        raise ValueError(f"{where}: expected a mapping of notebook names to their parameters, got {section!r}")
    for notebook, params in section.items():
        if params is not None and not isinstance(params, dict):
            raise ValueError(f"{where}.{notebook}: expected a mapping of parameter names to values (or {{}}), got "
                             f"{params!r}")
    return {notebook: params or {} for notebook, params in section.items()}


def with_overrides(config, overrides: dict, where: str):
    """A copy of dataclass ``config`` with ``overrides`` (nested dicts for nested dataclasses) applied.

    Unknown names and values of the wrong type are refused with the valid choices, before any work starts.
    """
    if not isinstance(overrides, dict):
        raise ValueError(f"{where}: expected a mapping of field names to values, got {overrides!r}")
    fields = {f.name: f for f in dataclasses.fields(config)}
    hints = typing.get_type_hints(type(config))
    changes = {}
    for name, value in overrides.items():
        if name not in fields:
            raise ValueError(f"{where}: unknown parameter {name!r}; valid ones are {sorted(fields)}")
        current = getattr(config, name)
        if dataclasses.is_dataclass(current):
            changes[name] = with_overrides(current, value, f"{where}.{name}")
            continue
        expected = hints[name]
        ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise ValueError(f"{where}.{name}: expected {expected.__name__}, got {value!r}")
        rule = getattr(type(config), "RULES", {}).get(name) or validate.RULES.get(name)
        if rule is not None:
            validate.check(name, value, f"{where}.{name}", rule)
        changes[name] = value
    try:
        return dataclasses.replace(config, **changes)
    except ValueError as e:  # a dataclass's own check of its values
        raise ValueError(f"{where}: {e}") from None
