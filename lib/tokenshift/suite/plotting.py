"""One plotting style for every notebook, and one way to save a figure (fixed dpi, no volatile metadata)."""

from __future__ import annotations

import matplotlib
import seaborn as sns

from .findings import output_dir

DPI = 120
# one colour per model of a pair, the same in every figure
COLORS = {"base": "#4d4d4d", "simplerl": "#1f77b4", "dapo": "#d62728", "sft_offpolicy": "#2ca02c",
          "sft_rejection": "#e6ab02"}


_EXTRA = ("#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def color(name: str) -> str:
    """A model's colour: the fixed one for the suite's names, else one picked stably from the name."""
    return COLORS.get(name) or _EXTRA[sum(name.encode()) % len(_EXTRA)]


def setup() -> None:
    """Call once at the top of a notebook."""
    sns.set_theme(context="notebook", style="whitegrid", font_scale=1.0)
    matplotlib.rcParams.update({"figure.dpi": DPI, "savefig.dpi": DPI, "figure.autolayout": False,
                                "axes.titleweight": "bold", "svg.hashsalt": "tokenshift"})


def save(fig, profile: str, name: str) -> str:
    """Write ``figures/<profile>/<name>.png`` and return its file name."""
    file = f"{name}.png"
    fig.savefig(output_dir(profile) / file, bbox_inches="tight", metadata={"Software": None})
    return file
