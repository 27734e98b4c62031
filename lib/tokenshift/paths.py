"""Where the suite keeps things: everything is found from the repository root, whatever the working directory."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROFILE_DIR = REPO / "papermill_runs"
NOTEBOOK_DIR = REPO / "notebooks"
FIGURE_DIR = REPO / "figures"


def cache_root() -> Path:
    """The artifact cache: ``$TOKENSHIFT_CACHE`` if set, else ``.cache/`` in the repository."""
    return Path(os.environ.get("TOKENSHIFT_CACHE", REPO / ".cache"))
