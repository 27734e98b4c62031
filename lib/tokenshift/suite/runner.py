"""Run the suite's notebooks with papermill for one profile.

    python -m tokenshift.suite.runner --profile default            # every notebook the profile lists
    python -m tokenshift.suite.runner --profile smoke --only 00    # notebooks whose name starts with 00
    python -m tokenshift.suite.runner --profile path/to/mine.yaml  # a profile file of your own

Everything is validated first (the profile exists, its organism overrides or model pairs and data are
valid, its shift setup is possible, its notebook parameters match the notebooks' tagged ``parameters`` cells,
the Jupyter kernel is installed), so a typo fails in a second, not after training.
While a notebook runs, its progress (training steps, work units, with an ETA) streams to the terminal; the
executed notebook keeps only its story and results. Executed notebooks land in ``papermill_runs/<profile>/``,
figures and findings in ``figures/<profile>/``. A run of every notebook writes the profile's findings file
afresh; ``--only`` merges into it.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import papermill
from jupyter_client.manager import AsyncKernelManager

from ..core import progress, validate
from ..core.paths import NOTEBOOK_DIR, run_root
from ..models import engine
from . import findings, pairs, profiles, report

KERNEL = "tokenshift"


class LocalKernelManager(AsyncKernelManager):
    """Talks to the notebook's kernel over local sockets rather than TCP: nothing listens on the network, and
    the kernel has no cause to warn about plain-text TCP on every start."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.transport = "ipc"


def check_kernel() -> None:
    """Refuse to start when the notebooks' Jupyter kernel is not installed, saying how to install it."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        raise ValueError(f"the Jupyter kernel {KERNEL!r} is not installed: run `make env`, or "
                         f"`python -m ipykernel install --sys-prefix --name {KERNEL}` in this environment") from None


def plan(profile: str, only: list[str] | None = None) -> list[tuple[str, dict]]:
    """(notebook name, parameters) to run, in order; raises ValueError naming any bad name or parameter."""
    section = profiles.load(profile).get("pairs")
    where = f"{profiles.name(profile)}.yaml"
    if section:  # real checkpoints: the models and data must be reachable before the first notebook starts
        pairs.from_section(section, where)
    else:
        profiles.organism_config(profile)  # validates the organism section
    setup = profiles.shift_setup(profile)  # validates the shifts section
    if setup.engine == "vllm" or setup.cross_method == "engine":
        engine.require_vllm()  # the notebooks sample or cross-sample in this environment
    runs = []
    for name, params in profiles.notebook_parameters(profile).items():
        if only and not any(name.startswith(o) for o in only):
            continue
        path = NOTEBOOK_DIR / f"{name}.ipynb"
        if not path.is_file():
            raise ValueError(f"{where} names notebook {name!r}, but {path} does not exist")
        declared = papermill.inspect_notebook(str(path))
        params = {"profile": str(profile), **(params or {})}
        unknown = sorted(set(params) - set(declared))
        if unknown:
            raise ValueError(f"{where}: notebook {name} has no parameter(s) {unknown}; "
                             f"its parameters cell declares {sorted(declared)}")
        for key, value in params.items():
            check_parameter(f"{where}: notebook {name} parameter {key}", key, value, declared[key]["default"])
        runs.append((name, params))
    if not runs:
        raise ValueError(f"profile {profile!r} selects no notebook (--only {only})")
    return runs


def parameters(name: str, overrides: dict) -> dict:
    """Notebook ``name``'s parameters as it will run: its parameters cell's defaults, then ``overrides``."""
    declared = papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb"))
    return {**{key: _literal(p["default"]) for key, p in declared.items()}, **overrides}


def check_parameter(where: str, key: str, value, default_source: str) -> None:
    """Refuse a notebook parameter whose type is not its default's (a string where a number belongs), or whose
    value breaks the settings' rules (``validate.RULES``)."""
    default = _literal(default_source)
    if not _same_kind(value, default):
        raise ValueError(f"{where} must be like its default {default_source} ({type(default).__name__}), got "
                         f"{value!r} ({type(value).__name__})")
    if key in validate.RULES:
        validate.check(key, value, where)


def _literal(source: str):
    """A parameters cell's default as a value (None where it is not a literal)."""
    try:
        return ast.literal_eval(source.replace('float("inf")', "1e999").replace("float('inf')", "1e999"))
    except (ValueError, SyntaxError):
        return None


def _same_kind(value, default) -> bool:
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (float, int)) if isinstance(default, float) else isinstance(value, int)
    if isinstance(default, (list, tuple)):
        return isinstance(value, list) and (not default or all(_same_kind(v, default[0]) for v in value))
    return isinstance(value, type(default))


def run(profile: str, runs: list[tuple[str, dict]], full: bool = True) -> None:
    """Execute ``runs`` in order; ``full``: they are the profile's whole set, so its findings start afresh."""
    label = profiles.name(profile)
    out_dir = run_root() / label
    out_dir.mkdir(parents=True, exist_ok=True)
    before = findings.load(profile)  # what the last regeneration found, for the diff of what moves
    if full:
        findings.reset(profile)
    for name, params in runs:
        start = time.time()
        print(f"[{label}] {name} ...", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            stream = Path(tmp) / "progress.log"
            previous = os.environ.get(progress.ENV)
            os.environ[progress.ENV] = str(stream)  # the notebook's kernel inherits it
            try:
                with progress.Relay(stream, prefix=f"[{label}] {name} |"):
                    papermill.execute_notebook(
                        str(NOTEBOOK_DIR / f"{name}.ipynb"), str(out_dir / f"{name}.ipynb"),
                        parameters=params, kernel_name=KERNEL, cwd=str(NOTEBOOK_DIR), progress_bar=False,
                        kernel_manager_class=LocalKernelManager,
                    )
            finally:
                if previous is None:
                    os.environ.pop(progress.ENV, None)
                else:
                    os.environ[progress.ENV] = previous
        print(f"[{label}] {name} done in {time.time() - start:.0f} s", flush=True)
    write_metadata(profile, out_dir / "meta.json")
    report.write(profile, out_dir, out_dir / "report")
    findings.write_diff(before, findings.load(profile), findings.output_dir(profile) / "findings-diff.md")
    if label == "default":
        findings.update_documents(profile)


def write_metadata(profile: str, path: Path) -> None:
    """For a profile of real checkpoints, beside its executed notebooks: the versions it ran with, where each model
    and benchmark came from (a hub id at the commit it resolved to, a local file with its digest), and how each
    pair was asked (its first prompt as the models read it, the stop set, the grading), as a CLI run's meta.json
    records them."""
    import tokenshift

    from ..models.loading import provenance
    from ..problems.data import provenance as data_provenance

    section = profiles.load(profile).get("pairs")
    if not section:
        return
    made, setup = pairs.from_section(section, f"{profiles.name(profile)}.yaml"), profiles.shift_setup(profile)
    sources = {name: pairs.data_source(spec, "problem", "answer", name)
               for name, spec in pairs.benchmarks(section).items()}
    asked = {name: made.problems(setup.n_problems or None, setup.seed, setup.benchmark or None, name)
             for name in made.tuned}
    meta = {"profile": profiles.name(profile), "versions": tokenshift.versions(),
            "models": {name: provenance(source) for name, source in {"base": made.base, **made.tuned}.items()},
            "data": {name: data_provenance(s["source"], s.get("files", ""), s.get("revision", ""))
                     for name, s in sources.items()},
            "pairs": {name: p.asked() for name, p in asked.items()}}
    path.write_text(json.dumps(meta, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", required=True, help=f"one of {profiles.available()}, or a .yaml file")
    parser.add_argument("--only", nargs="*", help="run only notebooks whose names start with these prefixes")
    args = parser.parse_args(argv)
    try:
        runs = plan(args.profile, args.only)
        check_kernel()
    except (ValueError, FileNotFoundError, ConnectionError, engine.EngineUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        from .cli import os_problem

        print(f"error: {os_problem(e)}", file=sys.stderr)
        return 2
    run(args.profile, runs, full=not args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
