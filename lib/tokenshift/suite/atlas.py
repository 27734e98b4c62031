"""The atlas: the paper's shift analyses (sparsity, position, top-k overlap, entropy as a locator) over many
base/RLVR pairs, one after another, each prompted, stopped and graded as its registry entry says (its RL
model's authors' own way, where known), into one comparison table and figure.

A registry (``registry/pairs.yaml``) holds the atlas's own ``shifts`` section (one budget for every pair,
stated) and ``pairs``: name -> a profile's ``pairs`` section (see ``suite.pairs``), plus ``checked``: what of
its ids, template and answer format was checked against the models' public cards or code. Each finished pair
is written at once under the output folder, so an interrupted atlas resumes without redoing it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from ..analyses import shift_stats
from ..core.paths import atomic
from . import pairs as pairs_mod
from . import plotting, profiles
from .study import Study

REGISTRY_ONLY = ("checked",)  # registry fields that are not a pairs section's


def load_registry(path: Path) -> tuple[profiles.ShiftSetup, dict[str, dict]]:
    """The registry's shift setup and its pairs (name -> pairs section, with ``checked``), refused whole if
    it is malformed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"registry {path} does not exist: pass a YAML file like registry/pairs.yaml")
    registry = profiles.read_yaml(path)
    if not isinstance(registry, dict) or not isinstance(registry.get("pairs"), dict) or not registry["pairs"]:
        raise ValueError(f"registry {path} needs a `pairs` mapping of names to pairs sections")
    setup = profiles.shifts_section(registry.get("shifts") or {}, where=f"{path}: shifts")
    return setup, registry["pairs"]


def pair_rows(name: str, made: pairs_mod.Pairs, entry: dict, setup: profiles.ShiftSetup,
              show_progress: bool = True) -> pl.DataFrame:
    """One row per tuned model of pair ``name`` (``made`` from its registry ``entry``): its settings (template,
    budget, grader) beside its numbers."""
    problems = made.problems(setup.n_problems or None, setup.seed, setup.benchmark or None)
    study = Study(name, setup, made, problems, show_progress)
    rows = []
    for model, table in study.tables().items():
        responses = table.group_by("response").agg(pl.col("correct").first())
        means = shift_stats.position_profile(table, bins=10)["mean_js"].to_numpy()
        start, middle, end = shift_stats.edges_vs_middle(means)
        high = (table["js_top_p"] > setup.high_js).to_numpy()
        moves = shift_stats.reallocation_summary(table, high=setup.high_js)
        rows.append({
            "pair": name, "model": model, "base": str(made.base), "tuned": str(made.tuned[model]),
            "first_prompt": problems.rendered_prompt(0), "max_new_tokens": study.max_new_tokens,
            "grading": getattr(problems, "grading", ""), "checked": str(entry.get("checked", "unchecked")),
            "responses": len(responses), "accuracy": float(responses["correct"].mean()), "positions": len(table),
            "frac_js_lt_0.01": float((table["js_top_p"] < 0.01).mean()),
            "frac_full_js_lt_0.01": float((table["js"] < 0.01).mean()),
            f"frac_js_gt_{setup.high_js:g}": float(high.mean()), "mean_js": float(table["js_top_p"].mean()),
            "js_first_tenth": start, "js_middle": middle, "js_last_tenth": end,
            "high_js_overlap_top3": moves.get("overlap_top3"),
            "high_js_tuned_top1_in_base_top3": moves.get("tuned_top1_in_base_top3"),
            "base_entropy_auroc": shift_stats.auroc(table["entropy_base"].to_numpy(), high)})
    return pl.DataFrame(rows)


def budgeted(setup: profiles.ShiftSetup, made: pairs_mod.Pairs) -> profiles.ShiftSetup:
    """The registry's setup for one pair: its stated budget, or the pair's own where that is shorter (a model
    whose context cannot hold the stated budget, such as Qwen2.5-Math's 4,096 positions)."""
    if not setup.max_new_tokens or made.max_new_tokens >= setup.max_new_tokens:
        return setup
    return dataclasses.replace(setup, max_new_tokens=made.max_new_tokens)


def run(registry: Path, names: list[str] | None, out_dir: Path, show_progress: bool = True) -> pl.DataFrame:
    """The atlas of the registry's pairs (or of ``names``), one after another: each pair's rows written to
    ``out_dir/pairs/<name>.parquet`` when it finishes (a pair already there is read, not redone), then the
    comparison table (``atlas.parquet``) and figure (``atlas.png``)."""
    setup, entries = load_registry(registry)
    unknown = sorted(set(names or []) - set(entries))
    if unknown:
        raise ValueError(f"registry {registry} has no pair(s) {unknown}; it names {sorted(entries)}")
    chosen = names or list(entries)
    # every entry checked (paths, vocabularies, fields) before the first pair runs
    made = {name: pairs_mod.from_section({k: v for k, v in entries[name].items() if k not in REGISTRY_ONLY},
                                         f"{registry}: pairs.{name}") for name in chosen}
    done = Path(out_dir) / "pairs"
    done.mkdir(parents=True, exist_ok=True)
    frames = []
    for i, name in enumerate(chosen):
        file = done / f"{name}.parquet"
        if not file.is_file():
            if show_progress:
                print(f"[atlas] pair {i + 1}/{len(chosen)}: {name}", flush=True)
            rows = pair_rows(name, made[name], entries[name], budgeted(setup, made[name]), show_progress)
            with atomic(file) as tmp:
                rows.write_parquet(tmp)
        frames.append(pl.read_parquet(file))
    table = pl.concat(frames, how="diagonal")
    with atomic(Path(out_dir) / "atlas.parquet") as tmp:
        table.write_parquet(tmp)
    figure(table, Path(out_dir) / "atlas.png", setup)
    return table


def figure(table: pl.DataFrame, path: Path, setup: profiles.ShiftSetup) -> None:
    """Each pair's sparsity (share of positions with JS < 0.01, top-p and full) beside where its shift sits
    (mean JS in the first tenth, the middle and the last tenth of the responses)."""
    plotting.setup()
    labels = [f"{p}: {m}" for p, m in zip(table["pair"], table["model"])]
    y = np.arange(len(labels))
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 1.2 + 0.5 * len(labels)), sharey=True)
    left.barh(y - 0.2, table["frac_js_lt_0.01"], 0.4, label=f"top-p ({setup.js_top_p:g}) JS")
    left.barh(y + 0.2, table["frac_full_js_lt_0.01"], 0.4, label="full JS")
    left.set(yticks=y, yticklabels=labels, xlim=(0, 1), xlabel="share of positions with JS < 0.01",
             title="Sparsity: how much of each response is unchanged")
    left.legend(fontsize=8, loc="lower left")
    for offset, column, label in ((-0.25, "js_first_tenth", "first tenth"), (0, "js_middle", "middle half"),
                                  (0.25, "js_last_tenth", "last tenth")):
        right.barh(y + offset, table[column], 0.25, label=label)
    right.set(xlabel="mean top-p JS", title="Position: where in the response the shift sits")
    right.legend(fontsize=8)
    fig.suptitle(f"Atlas of base/RL pairs ({setup.samples_per_problem} samples per problem, up to "
                 f"{setup.max_new_tokens or 'each pair’s own'} new tokens)")
    fig.tight_layout()
    with atomic(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
