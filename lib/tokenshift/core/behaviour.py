"""Behaviour versions: the part of a cache key that stands for code.

Each piece of behaviour the cache keeps results of (the decoding loop, the metrics, a verifier, a trainer) has
a ``Version``: a name, a number bumped by hand when its behaviour changes, the versions of the code it runs
(``uses``) and the libraries whose major.minor version can change its numbers. Functions and classes that
make up that behaviour are marked with ``@VERSION.code``. A cache entry's key holds the version numbers of
everything its builder runs, so an edit that changes no behaviour (a docstring, a refactor) rebuilds
nothing, and a bumped version rebuilds exactly the entries that depend on it.

A guard test keeps the numbers honest: it hashes every marked definition, with docstrings and comments
stripped, against ``tests/code_versions.json``; a definition that changed while its version did not fails
with "bump X, or refresh the snapshot if the change is behaviour-neutral"
(``python -m tokenshift.core.behaviour --refresh``). A refresh is not taken on trust: where code changed
under an unbumped version, it first runs the smoke profile from scratch with the code at the last commit and
with the working tree, side by side (``neutral``), and refreshes only if both give the same cache entries,
figures and findings, byte for byte.
"""

from __future__ import annotations

import argparse
import ast
import filecmp
import hashlib
import inspect
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from .paths import REPO


@dataclass(eq=False)
class Version:
    name: str
    number: int
    uses: tuple["Version", ...] = ()
    libraries: tuple[str, ...] = ()  # distributions whose major.minor version enters the key
    definitions: list = field(default_factory=list, repr=False)

    def code(self, obj):
        """Decorator: ``obj`` is part of this behaviour (its source is guarded by the snapshot test)."""
        self.definitions.append(obj)
        return obj

    def closure(self) -> dict[str, int]:
        """This version and every version it uses, transitively: name -> number."""
        out = {self.name: self.number}
        for used in self.uses:
            out.update(used.closure())
        return dict(sorted(out.items()))

    def library_versions(self) -> dict[str, str]:
        """major.minor of the libraries this version and those it uses name."""
        names = {lib for v in self._all() for lib in v.libraries}
        return {name: major_minor(name) for name in sorted(names)}

    def _all(self):
        yield self
        for used in self.uses:
            yield from used._all()


def combine(*versions: Version) -> dict:
    """The code part of a cache key for a builder that runs all of ``versions``."""
    numbers, libraries = {}, {}
    for v in versions:
        numbers.update(v.closure())
        libraries.update(v.library_versions())
    return {"versions": dict(sorted(numbers.items())), "libraries": dict(sorted(libraries.items()))}


def major_minor(distribution: str) -> str:
    try:
        version = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "absent"
    return ".".join(version.split("+")[0].split(".")[:2])


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def source_hash(obj) -> str:
    """sha256 of a definition's syntax tree without docstrings (comments and layout never reach the tree)."""
    source = textwrap.dedent(inspect.getsource(inspect.unwrap(obj)))
    tree = _strip_docstrings(ast.parse(source))
    tree.body[0].name = ""  # the snapshot keys definitions by name already
    return hashlib.sha256(ast.dump(tree, annotate_fields=False).encode()).hexdigest()[:16]


def qualified_name(obj) -> str:
    obj = inspect.unwrap(obj)
    return f"{obj.__module__}.{obj.__qualname__}"


def library_versions_defined() -> dict[str, Version]:
    """Every ``Version`` the library's modules define, by name (importing each module)."""
    import importlib
    import pkgutil

    import tokenshift

    found: dict[str, Version] = {}
    for info in pkgutil.walk_packages(tokenshift.__path__, "tokenshift."):
        for value in vars(importlib.import_module(info.name)).values():
            if isinstance(value, Version):
                if found.get(value.name, value) is not value:
                    raise ValueError(f"two behaviour versions are named {value.name!r}")
                found[value.name] = value
    return dict(sorted(found.items()))


def snapshot() -> dict:
    """Every version with its number and the hashes of its definitions."""
    return {name: {"number": v.number, "code": {qualified_name(d): source_hash(d) for d in v.definitions}}
            for name, v in library_versions_defined().items()}


def differences(committed: dict, current: dict) -> list[str]:
    """What a reviewer must decide, one line per version whose code or number moved."""
    problems = []
    for name in sorted(set(committed) | set(current)):
        old, new = committed.get(name), current.get(name)
        if old is None or new is None:
            problems.append(f"version {name!r} is {'new' if old is None else 'gone'}: refresh the snapshot")
            continue
        # code is compared by content: a definition moved or renamed with the same body is not a change
        old_hashes, new_hashes = sorted(old["code"].values()), sorted(new["code"].values())
        changed = sorted({k for k, h in new["code"].items() if h not in old_hashes}
                         | {k for k, h in old["code"].items() if h not in new_hashes})
        if changed and old["number"] == new["number"]:
            problems.append(f"{', '.join(changed)} changed: bump {name} (now {new['number']}), or refresh the "
                            "snapshot if the change is behaviour-neutral")
        elif old["number"] != new["number"]:
            problems.append(f"{name} was bumped to {new['number']}: refresh the snapshot")
    return problems


SNAPSHOT = REPO / "tests" / "code_versions.json"


def compare_runs(first: Path, second: Path, profile: str) -> list[str]:
    """What differs between two runs of ``profile`` (each a folder with ``cache/`` and ``figures/``): the cache
    entries they built (kind and key) and every file of their figures folders, byte for byte."""
    def entries(root: Path) -> set[str]:
        return {f"{kind.name}/{entry.name}" for kind in (root / "cache").iterdir() if kind.is_dir()
                for entry in kind.iterdir() if not entry.name.startswith(".")}

    problems = [f"cache entry {e} only in the {which} run" for which, a, b in (("first", first, second),
                                                                              ("second", second, first))
                for e in sorted(entries(a) - entries(b))]
    out = [first / "figures" / profile, second / "figures" / profile]
    names = sorted({p.name for folder in out for p in folder.iterdir()})
    for name in names:
        a, b = (folder / name for folder in out)
        if not (a.is_file() and b.is_file()):
            problems.append(f"{name} was written by one run only")
        elif not filecmp.cmp(a, b, shallow=False):
            problems.append(f"{name} differs")
    return problems


def neutral(against: str = "HEAD", profile: str = "smoke") -> list[str]:
    """Run ``profile`` from scratch with the code at git ref ``against`` (a temporary worktree) and with the
    working tree, side by side, each with a cache and outputs of its own, and list what differs
    (``compare_runs``); empty when the change between them is behaviour-neutral on that profile."""
    with tempfile.TemporaryDirectory(prefix="tokenshift-neutral-") as tmp:
        tmp = Path(tmp)
        base = tmp / "code"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(base), against],
                       check=True)
        try:
            runs = {}
            for name, root in (("before", base), ("after", REPO)):
                out = tmp / name
                env = {**os.environ, "PYTHONPATH": str(root / "lib"), "TOKENSHIFT_CACHE": str(out / "cache"),
                       "TOKENSHIFT_FIGURES": str(out / "figures"), "TOKENSHIFT_RUNS": str(out / "runs")}
                runs[name] = subprocess.Popen([sys.executable, "-m", "tokenshift.suite.runner", "--profile", profile],
                                              cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                              text=True)
            failed = [f"the {name} run failed: {run.communicate()[1][-2000:]}" for name, run in runs.items()
                      if run.wait() != 0]
            return failed or compare_runs(tmp / "before", tmp / "after", profile)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)], check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check or refresh the snapshot of behaviour versions.")
    parser.add_argument("--refresh", action="store_true",
                        help=f"rewrite {SNAPSHOT} from the code as it is; where code changed under an unbumped version, "
                             "only once the smoke profile run from scratch gives the same results before and after")
    parser.add_argument("--against", default="HEAD", help="the git ref whose code the check runs as 'before' "
                                                          "(default: %(default)s)")
    args = parser.parse_args(argv)
    current = snapshot()
    problems = differences(json.loads(SNAPSHOT.read_text()), current)
    if args.refresh:
        if any("changed: bump" in p for p in problems):
            print(f"checking that the change is behaviour-neutral: the smoke profile from scratch at {args.against} "
                  "and now, side by side (minutes)", flush=True)
            moved = neutral(args.against)
            if moved:
                print("not refreshed: the smoke profile's results moved, so bump the versions instead:\n"
                      + "\n".join(moved))
                return 1
            print(f"behaviour-neutral: the same cache entries, figures and findings at {args.against} and now")
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
        print(f"wrote {SNAPSHOT}")
        return 0
    print("\n".join(problems) or "every behaviour version matches its snapshot")
    return 1 if problems else 0


if __name__ == "__main__":
    from tokenshift.core import behaviour  # the package's own module: its Version is the class the library uses

    sys.exit(behaviour.main())
