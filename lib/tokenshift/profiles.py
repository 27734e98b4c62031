"""Profiles: named parameter sets (``papermill_runs/<profile>.yaml``) for the whole suite.

A profile has an ``organism`` section (overrides of ``OrganismConfig``, shared by every notebook so they
all analyse the same models) or a ``pairs`` section (real checkpoints and a benchmark; see ``pairs``), and a
``notebooks`` section (papermill parameters per notebook). Everything is
checked against the dataclasses and the notebooks' tagged parameter cells before any work starts.
"""

from __future__ import annotations

import dataclasses
import typing

import yaml

from .organism import OrganismConfig
from .paths import PROFILE_DIR


def available() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load(profile: str) -> dict:
    path = PROFILE_DIR / f"{profile}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown profile {profile!r}: choose one of {available()} (files in {PROFILE_DIR})")
    data = yaml.safe_load(path.read_text()) or {}
    unknown = set(data) - {"organism", "pairs", "notebooks"}
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {sorted(unknown)}; a profile has 'organism' (or 'pairs', "
                         "real checkpoints) and 'notebooks'")
    if "organism" in data and "pairs" in data:
        raise ValueError(f"{path}: give either 'organism' (the suite's own pair) or 'pairs' (real checkpoints)")
    return data


def organism_config(profile: str) -> OrganismConfig:
    """The profile's organism: ``OrganismConfig`` with the profile's overrides applied."""
    return with_overrides(OrganismConfig(), load(profile).get("organism") or {}, where=f"{profile}.yaml: organism")


def notebook_parameters(profile: str) -> dict[str, dict]:
    return load(profile).get("notebooks") or {}


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
        changes[name] = value
    return dataclasses.replace(config, **changes)
