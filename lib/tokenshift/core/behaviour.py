"""Behaviour versions: the part of a cache key that stands for code.

Every module whose code shapes a cached result declares its behaviour version, a number bumped by hand when its
behaviour changes, and the libraries whose major.minor version can change its numbers::

    BEHAVIOUR = Version(2, libraries=("torch", "transformers"))

What a module depends on is read from its imports, not declared: a cache entry's key holds the versions (and
libraries) of the modules that build it and of every library module they import, transitively, wherever in the
module the import sits (imports only for type checking, under ``if TYPE_CHECKING:``, aside). So a bump rebuilds
every entry whose builder can reach the bumped module, an edit that changes no behaviour (a docstring, a refactor
inside a module) rebuilds nothing, and a module that moves code between modules or imports a new one changes the
keys of everything above it: a dependency is never forgotten, at the price of now and then rebuilding more than
strictly needed. A builder module therefore imports only what its entry runs; reading another kind of entry goes
through an object it is handed (``ProblemSet.judged``), not an import.

Two guard tests keep the numbers honest. ``holes``: every module a versioned module imports is versioned too. The
snapshot (``tests/code_versions.json``): each versioned module's syntax tree, docstrings and comments stripped, is
hashed; a module that changed while its version did not fails with "bump X, or refresh the snapshot if the change
is behaviour-neutral" (``python -m tokenshift.core.behaviour --refresh``). A refresh is not taken on trust: where
code changed under an unbumped version, it first runs the smoke profile from scratch with the code at the last
commit and with the working tree, side by side (``neutral``), and refreshes only if both give the same cache
entries, figures and findings, byte for byte.
"""

from __future__ import annotations

import argparse
import ast
import filecmp
import functools
import hashlib
import importlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # the tokenshift package's folder
ROOT = PACKAGE.name


@dataclass(frozen=True)
class Version:
    """A module's behaviour version (its ``BEHAVIOUR``)."""

    number: int
    libraries: tuple[str, ...] = ()  # distributions whose major.minor version enters the key


BEHAVIOUR = Version(1)  # how keys are made: part of every key


def source_file(module: str) -> Path | None:
    """The source file of library module ``module`` (a dotted name), or None when there is no such module."""
    path = PACKAGE.joinpath(*module.split(".")[1:])
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


@functools.cache
def imports(module: str) -> frozenset[str]:
    """The library modules ``module``'s source imports, at the top or inside a function alike, except under
    ``if TYPE_CHECKING:``."""
    path = source_file(module)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()

    def visit(node):
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            # ``from package import name``: the submodule where name is one, else the package itself
            found.update(f"{base}.{alias.name}" if source_file(f"{base}.{alias.name}") else base
                         for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return frozenset(m for m in found if (m == ROOT or m.startswith(ROOT + ".")) and source_file(m) and m != module)


@functools.cache
def dependencies(*modules: str) -> tuple[str, ...]:
    """``modules`` and every library module they import, transitively, sorted."""
    seen, todo = set(), list(modules)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(imports(module))
    return tuple(sorted(seen))


def version_of(module: str) -> Version | None:
    return getattr(importlib.import_module(module), "BEHAVIOUR", None)


def short(module: str) -> str:
    return module.removeprefix(ROOT + ".")


def combine(*modules: str) -> dict:
    """The code part of a cache key for a builder that runs the code of ``modules`` (dotted names): the behaviour
    versions of them and of everything they import, and the major.minor versions of the libraries those name."""
    numbers, libraries = {}, set()
    for module in dependencies(*modules):
        version = version_of(module)
        if version is None:
            raise ValueError(f"{module} has no behaviour version, but a cached result runs its code: give it "
                             "`BEHAVIOUR = Version(1)` (core.behaviour)")
        numbers[short(module)] = version.number
        libraries.update(version.libraries)
    return {"versions": numbers, "libraries": {name: major_minor(name) for name in sorted(libraries)}}


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


def source_hash(source: str) -> str:
    """sha256 of source code's syntax tree without docstrings (comments and layout never reach the tree)."""
    tree = _strip_docstrings(ast.parse(source))
    return hashlib.sha256(ast.dump(tree, annotate_fields=False).encode()).hexdigest()[:16]


def library_modules() -> list[str]:
    """Every module of the library, by dotted name."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def versioned() -> dict[str, Version]:
    """Every library module that declares a behaviour version, by dotted name (importing each module)."""
    return {m: v for m in library_modules() if (v := version_of(m)) is not None}


def holes() -> list[str]:
    """Modules whose code a versioned module runs (imports) but that declare no version of their own."""
    found = versioned()
    return [f"{module} is imported by {', '.join(sorted(short(m) for m in found if module in imports(m)))} but has "
            "no behaviour version: give it one (`BEHAVIOUR = Version(1)`)"
            for module in sorted({d for m in found for d in dependencies(m)} - set(found))]


def snapshot() -> dict:
    """Every versioned module with its number and the hash of its code."""
    return {short(m): {"number": v.number, "code": source_hash(source_file(m).read_text())}
            for m, v in versioned().items()}


def differences(committed: dict, current: dict) -> list[str]:
    """What a reviewer must decide, one line per module whose code or number moved."""
    problems = []
    for name in sorted(set(committed) | set(current)):
        old, new = committed.get(name), current.get(name)
        if old is None or new is None:
            problems.append(f"module {name} is {'newly versioned' if old is None else 'gone or unversioned'}: "
                            "refresh the snapshot")
        elif old["number"] != new["number"]:
            problems.append(f"{name} was bumped to {new['number']}: refresh the snapshot")
        elif old["code"] != new["code"]:
            problems.append(f"{name} changed: bump its BEHAVIOUR (now {new['number']}), or refresh the snapshot if "
                            "the change is behaviour-neutral")
    return problems


SNAPSHOT = PACKAGE.parents[1] / "tests" / "code_versions.json"


def compare_runs(first: Path, second: Path, profile: str) -> list[str]:
    """What differs between two runs of ``profile`` (each a folder with ``cache/`` and ``figures/``): the cache
    entries they built, by identity, and every file of their figures folders, byte for byte. An identity is
    compared without its behaviour versions: code moved between modules, or a new import, changes which modules
    a key lists but not what the entry is (an unbumped change leaves every number as it was), while a config
    field or an input that came to enter the key still shows."""
    def entries(root: Path) -> dict[str, str]:
        found = {}
        for kind in (root / "cache").iterdir():
            for entry in kind.iterdir() if kind.is_dir() else ():
                if not entry.name.startswith("."):
                    identity = json.loads((entry / "manifest.json").read_text())["identity"]
                    identity.pop("versions", None)
                    found[json.dumps(identity, sort_keys=True)] = f"{kind.name}/{entry.name}"
        return found

    built = {"first": entries(first), "second": entries(second)}
    problems = [f"cache entry {name} only in the {which} run" for which, other in (("first", "second"),
                                                                                  ("second", "first"))
                for identity, name in sorted(built[which].items(), key=lambda item: item[1])
                if identity not in built[other]]
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
    from .paths import REPO  # here: paths has a behaviour version, so it imports this module

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
    sys.exit(main())
