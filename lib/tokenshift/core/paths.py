"""Where the suite keeps things: everything is found from the repository root, whatever the working directory.
Tests (and anyone who wants a run kept apart) point the outputs elsewhere with environment variables."""

import contextlib
import os
from pathlib import Path

from .behaviour import Version

BEHAVIOUR = Version(1)

REPO = Path(__file__).resolve().parents[3]
PROFILE_DIR = REPO / "papermill_runs"
NOTEBOOK_DIR = REPO / "notebooks"


def looks_like_path(source) -> bool:
    """A source written as a path (./x, /x, ~/x) is never read as a hub id."""
    return str(source).startswith((".", "/", "~"))


def cache_root() -> Path:
    """The artifact cache: ``$TOKENSHIFT_CACHE`` if set, else ``.cache/`` in the repository."""
    return Path(os.environ.get("TOKENSHIFT_CACHE", REPO / ".cache"))


def figure_root() -> Path:
    """Figures and findings, per profile: ``$TOKENSHIFT_FIGURES`` if set, else ``figures/``."""
    return Path(os.environ.get("TOKENSHIFT_FIGURES", REPO / "figures"))


def run_root() -> Path:
    """Executed notebooks, per profile: ``$TOKENSHIFT_RUNS`` if set, else ``papermill_runs/``."""
    return Path(os.environ.get("TOKENSHIFT_RUNS", PROFILE_DIR))


@contextlib.contextmanager
def atomic(path: Path, owner: bool = True):
    """A temporary name beside ``path`` to write to: it becomes ``path`` when the block ends well, and is removed
    when it fails, so ``path`` is complete or as it was before (an earlier run's output stays untouched). Under a
    launcher every rank gets the name, and only the ``owner`` (rank 0, the one that writes it) renames or
    removes it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    if not owner:
        yield tmp
        return
    try:
        yield tmp
        if tmp.exists():
            tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
