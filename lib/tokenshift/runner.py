"""Run the suite's notebooks with papermill for one profile.

    python -m tokenshift.runner --profile default            # every notebook the profile lists
    python -m tokenshift.runner --profile smoke --only 00    # notebooks whose name starts with 00

Everything is validated first (the profile exists, its organism overrides or model pairs and data are
valid, its notebook parameters match the notebooks' tagged ``parameters`` cells), so a typo fails in a
second, not after training.
Executed notebooks land in ``papermill_runs/<profile>/``; figures and findings in ``figures/<profile>/``.
"""

from __future__ import annotations

import argparse
import sys
import time

import papermill

from . import findings, pairs, profiles
from .paths import NOTEBOOK_DIR, PROFILE_DIR

KERNEL = "tokenshift"


def plan(profile: str, only: list[str] | None = None) -> list[tuple[str, dict]]:
    """(notebook name, parameters) to run, in order; raises ValueError naming any bad name or parameter."""
    section = profiles.load(profile).get("pairs")
    if section:  # real checkpoints: the models and data must be reachable before the first notebook starts
        pairs.from_section(section, f"{profile}.yaml")
    else:
        profiles.organism_config(profile)  # validates the organism section
    runs = []
    for name, params in profiles.notebook_parameters(profile).items():
        if only and not any(name.startswith(o) for o in only):
            continue
        path = NOTEBOOK_DIR / f"{name}.ipynb"
        if not path.is_file():
            raise ValueError(f"{profile}.yaml names notebook {name!r}, but {path} does not exist")
        declared = papermill.inspect_notebook(str(path))
        params = {"profile": profile, **(params or {})}
        unknown = sorted(set(params) - set(declared))
        if unknown:
            raise ValueError(f"{profile}.yaml: notebook {name} has no parameter(s) {unknown}; "
                             f"its parameters cell declares {sorted(declared)}")
        runs.append((name, params))
    if not runs:
        raise ValueError(f"profile {profile!r} selects no notebook (--only {only})")
    return runs


def run(profile: str, runs: list[tuple[str, dict]]) -> None:
    out_dir = PROFILE_DIR / profile
    out_dir.mkdir(exist_ok=True)
    for name, params in runs:
        start = time.time()
        print(f"[{profile}] {name} ...", flush=True)
        papermill.execute_notebook(
            str(NOTEBOOK_DIR / f"{name}.ipynb"), str(out_dir / f"{name}.ipynb"),
            parameters=params, kernel_name=KERNEL, cwd=str(NOTEBOOK_DIR), progress_bar=False,
        )
        print(f"[{profile}] {name} done in {time.time() - start:.0f} s", flush=True)
    if profile == "default":
        findings.update_readme(profile)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", required=True, help=f"one of {profiles.available()}")
    parser.add_argument("--only", nargs="*", help="run only notebooks whose names start with these prefixes")
    args = parser.parse_args(argv)
    try:
        runs = plan(args.profile, args.only)
    except (ValueError, FileNotFoundError, ConnectionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    run(args.profile, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
