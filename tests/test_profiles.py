import json

import papermill
import pytest
import yaml

from tokenshift import profiles, runner
from tokenshift.paths import NOTEBOOK_DIR, PROFILE_DIR, REPO


@pytest.mark.parametrize("profile", ["smoke", "default"])
def test_profiles_name_real_notebooks_and_parameters(profile):
    runs = runner.plan(profile)
    assert [name for name, _ in runs] == sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb"))
    for name, params in runs:
        declared = papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb"))
        assert set(params) <= set(declared) and "profile" in declared and "seed" in declared


def test_every_notebook_has_a_tagged_parameters_cell_without_outputs():
    for path in NOTEBOOK_DIR.glob("*.ipynb"):
        nb = json.loads(path.read_text())
        tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(not c["outputs"] and c["execution_count"] is None for c in code), f"{path.name} has outputs"
        assert nb["metadata"]["kernelspec"]["name"] == runner.KERNEL


def test_unknown_profile_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"unknown profile 'smok'.*'smoke'"):
        profiles.load("smok")


def write_profile(name, text):
    path = PROFILE_DIR / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ("organism: {sed: 1}", r"organism: unknown parameter 'sed'; valid ones are .*'seed'"),
    ("organism: {dapo: {clip_hihg: 0.3}}", r"organism.dapo: unknown parameter 'clip_hihg'"),
    ("organism: {base: {steps: many}}", r"organism.base.steps: expected int, got 'many'"),
    ("organism: {base: {steps: true}}", r"organism.base.steps: expected int, got True"),
    ("notebooks: {00_model_organism: {n_eval: 5}}", r"has no parameter\(s\) \['n_eval'\]"),
    ("notebooks: {99_missing: {}}", r"names notebook '99_missing'"),
    ("organisms: {}", r"unknown section\(s\) \['organisms'\]"),
])
def test_bad_profiles_fail_before_any_work(text, message):
    path = write_profile("test-bad", text)
    try:
        with pytest.raises(ValueError, match=message):
            runner.plan("test-bad")
        assert runner.main(["--profile", "test-bad"]) == 2
    finally:
        path.unlink()


def test_integers_are_accepted_for_float_fields():
    path = write_profile("test-floats", "organism: {dapo: {lr: 1}}\nnotebooks: {00_model_organism: {}}")
    try:
        assert profiles.organism_config("test-floats").dapo.lr == 1.0
    finally:
        path.unlink()


def test_environment_yml_wraps_the_same_pins():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d for d in env["dependencies"] if isinstance(d, dict))["pip"]
    assert "-r requirements.lock" in pip_section and "-e ." in pip_section
    assert "python=3.11" in env["dependencies"]


def test_lock_pins_every_dependency_and_the_cpu_torch():
    lock = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            lock[name.lower().replace("_", "-")] = version
    assert lock["torch"] == "2.13.0"
    project = (REPO / "pyproject.toml").read_text()
    import tomllib
    deps = tomllib.loads(project)["project"]
    names = deps["dependencies"] + deps["optional-dependencies"]["dev"]
    for spec in names:
        name = spec.split("=")[0].split(">")[0].split("<")[0].strip().lower()
        assert name in lock, f"{name} is a dependency but not in requirements.lock"


def test_ci_runs_the_readme_test_command():
    assert "make test" in (REPO / ".ci" / "run").read_text()
    assert "make test" in (REPO / "README.md").read_text()
