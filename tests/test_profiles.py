import json

import papermill
import pytest
import yaml
from tokenshift.core.paths import NOTEBOOK_DIR, REPO
from tokenshift.suite import profiles, runner


@pytest.mark.parametrize("profile", ["smoke", "default"])
def test_profiles_name_real_notebooks_and_parameters(profile):
    runs = runner.plan(profile)
    assert [name for name, _ in runs] == sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb"))
    for name, params in runs:
        declared = papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb"))
        assert set(params) <= set(declared) and "profile" in declared


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


@pytest.fixture
def write_profile(tmp_path):
    def write(name, text):
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        return str(path)
    return write


@pytest.mark.parametrize("text, message", [
    ("organism: {sed: 1}", r"organism: unknown parameter 'sed'; valid ones are .*'seed'"),
    ("organism: {dapo: {clip_hihg: 0.3}}", r"organism.dapo: unknown parameter 'clip_hihg'"),
    ("organism: {base: {steps: many}}", r"organism.base.steps: expected int, got 'many'"),
    ("organism: {base: {steps: true}}", r"organism.base.steps: expected int, got True"),
    ("notebooks: {00_model_organism: {n_eval: 5}}", r"has no parameter\(s\) \['n_eval'\]"),
    ("notebooks: {99_missing: {}}", r"names notebook '99_missing'"),
    ("organisms: {}", r"unknown section\(s\) \['organisms'\]"),
    ("shifts: {samples: 4}",
     r"test-bad.yaml: shifts: unknown parameter 'samples'; valid ones are .*'samples_per_problem'"),
    ("shifts: {top_p: 1.5}", r"shifts\.top_p must be a number in \(0, 1\], got 1\.5"),
    ("shifts: {samples_per_problem: 0}", r"shifts\.samples_per_problem must be an integer >= 1, got 0"),
    ("shifts: {engine: sglang}", r"impossible shift setting\(s\) engine='sglang'.*engine one of \('suite', 'vllm'\)"),
    ("notebooks: {01_sparsity: {samples_per_problem: 4}}", r"has no parameter\(s\) \['samples_per_problem'\]"),
])
def test_bad_profiles_fail_before_any_work(text, message, write_profile):
    path = write_profile("test-bad", text)
    with pytest.raises(ValueError, match=message):
        runner.plan(path)
    assert runner.main(["--profile", path]) == 2


def test_integers_are_accepted_for_float_fields(write_profile):
    path = write_profile("test-floats", "organism: {dapo: {lr: 1}}\nnotebooks: {00_model_organism: {}}")
    assert profiles.organism_config(path).dapo.lr == 1.0
    assert profiles.name(path) == "test-floats"


def test_the_shift_setup_is_shared_by_the_profiles_notebooks():
    for profile in ("smoke", "default"):
        params = profiles.notebook_parameters(profile)
        assert not {"n_problems", "samples_per_problem", "js_top_p"} & {k for p in params.values() for k in (p or {})}
    assert profiles.shift_setup("default").n_problems == 200


def test_reading_a_profile_imports_no_model_code():
    import subprocess
    import sys

    code = "import sys; from tokenshift.suite import profiles; profiles.load('default'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_missing_kernel_is_named_with_the_fix(monkeypatch):
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    def missing(self, name):
        raise NoSuchKernel(name)

    monkeypatch.setattr(KernelSpecManager, "get_kernel_spec", missing)
    with pytest.raises(ValueError, match=r"kernel 'tokenshift' is not installed: run `make env`"):
        runner.check_kernel()


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


def test_a_full_run_rewrites_the_findings_and_a_partial_run_merges(monkeypatch, capsys):
    from pathlib import Path

    from tokenshift.suite import findings

    def fake_notebook(input_path, output_path, parameters, **kwargs):  # each notebook records one finding
        findings.record(parameters["profile"], {f"from.{Path(input_path).stem}": 1.0})

    monkeypatch.setattr(papermill, "execute_notebook", fake_notebook)
    findings.record("smoke", {"retired.name": 5.0})
    assert runner.main(["--profile", "smoke"]) == 0
    found = findings.load("smoke")
    assert "retired.name" not in found and len(found) == len(runner.plan("smoke"))
    findings.record("smoke", {"recorded.elsewhere": 1.0})
    assert runner.main(["--profile", "smoke", "--only", "01"]) == 0
    assert "recorded.elsewhere" in findings.load("smoke")
    assert "[smoke] 01_sparsity done" in capsys.readouterr().out


def test_notebooks_are_thin_and_the_package_exports_what_a_user_needs():
    """Notebooks tell the story over ``tokenshift.sections``: their code together stays under 450 non-blank,
    non-comment lines; the top-level package names the calls a user needs without loading model code."""
    import subprocess
    import sys

    import tokenshift
    from tokenshift.analyses import shifts

    lines = [line for path in NOTEBOOK_DIR.glob("*.ipynb") for cell in json.loads(path.read_text())["cells"]
             if cell["cell_type"] == "code" for line in "".join(cell["source"]).splitlines()
             if line.strip() and not line.strip().startswith("#")]
    assert 0 < len(lines) < 450
    assert tokenshift.shift_table is shifts.shift_table
    assert all(callable(getattr(tokenshift, name)) for name in tokenshift.EXPORTS)
    with pytest.raises(AttributeError, match="no attribute 'shifttable'"):
        tokenshift.shifttable
    loaded = subprocess.run([sys.executable, "-c", "import sys, tokenshift; print('torch' in sys.modules)"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "False"
