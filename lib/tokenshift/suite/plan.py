"""What a profile of real checkpoints will run and what it will cost, before any model loads: every run the
notebooks ask ``prepare`` for (sampling, scoring, cross-sampling), its responses, work units and new tokens, and
GPU-hours per GPU kind from a cost model written down here and in docs/plan.md.

The cost model. Each model sits on GPUs of its own, and vLLM fills the rest of their memory (90%) with KV cache,
paged, so a sequence holds what it has written: the rows decoded together are that memory over (prompt + mean
length) x KV bytes per token, at most a run's responses.
Decoding is bound by memory bandwidth: a step reads the weights once and each row's keys and values (on average
the prompt and half the response), at ``BANDWIDTH_USE`` of the GPU's bandwidth, unless its rows' arithmetic takes
longer (2 x parameters FLOPs per row, at ``COMPUTE_USE`` of the peak); each model takes the fewest GPUs (1, 2, 4
or 8) that decode ``MIN_ROWS`` rows at once. Scoring (teacher-forced
forwards) is bound by compute: 2 x parameters FLOPs per token per model, at ``COMPUTE_USE`` of the GPU's dense
bf16 peak. Cross-sampling in the engine decodes each response twice (the primary drafts it, the intervention
decodes it as forced tokens), so it costs two models' decoding; the suite's own backends are priced the same.
The hardware figures are the vendors' datasheets; the two use shares are assumptions, stated with every
estimate. ``upper``: every response at the length cap; ``expected``: at a stated mean length."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from transformers import AutoConfig

from ..models.loading import kv_bytes_per_token, weight_bytes
from . import pairs, profiles, runner

# memory (bytes), HBM bandwidth (bytes/s), dense bf16 peak (FLOP/s): NVIDIA's H200, H100 SXM and A100 SXM datasheets
GPUS = {"H200": (141e9, 4.8e12, 989e12), "H100": (80e9, 3.35e12, 989e12), "A100-80GB": (80e9, 2.039e12, 312e12)}
BANDWIDTH_USE = 0.6  # assumed share of the bandwidth decoding reaches
COMPUTE_USE = 0.4  # assumed share of the peak a teacher-forced forward reaches
MEMORY_USE = 0.9  # vLLM's gpu_memory_utilization
MIN_ROWS = 32  # a model takes more GPUs only until it decodes this many rows at once
PROMPT_TOKENS = 200  # an AIME problem in a chat template (the paper profile's prompts: 120-300 tokens)
# Qwen2.5's shapes (the models' config.json): parameters, layers, KV heads, head dimension; by size in the id
QWEN25 = {"0.5B": (0.49e9, 24, 2, 64), "1.5B": (1.54e9, 28, 2, 128), "3B": (3.09e9, 36, 2, 128),
          "7B": (7.62e9, 28, 4, 128), "14B": (14.7e9, 48, 8, 128), "32B": (32.8e9, 64, 8, 128),
          "72B": (72.7e9, 80, 8, 128)}


@dataclass(frozen=True)
class Shape:
    params: float
    kv_per_token: int  # bytes, bf16

    @property
    def weights(self) -> float:
        return 2 * self.params


def shape(source: str) -> Shape:
    """A model's shape: from its config.json where it is a local directory, else from Qwen2.5's shapes by the
    size its id names (``7B``); refuses an id it cannot size."""
    path = Path(str(source)).expanduser()
    if (path / "config.json").is_file():
        config = AutoConfig.from_pretrained(path)  # the configuration only: no weights are read
        return Shape(weight_bytes(path, config, 2) / 2, kv_bytes_per_token(config, 2))
    found = re.search(r"(\d+(?:\.\d+)?B)\b", str(source).split("@")[0], re.IGNORECASE)
    if not found or found.group(1).upper() not in QWEN25:
        raise ValueError(f"cannot size {source!r} without loading it: name a local directory (its config.json and "
                         f"weight files are read), or a hub id with one of the sizes {list(QWEN25)} in it")
    params, layers, kv_heads, head_dim = QWEN25[found.group(1).upper()]
    return Shape(params, 2 * layers * kv_heads * head_dim * 2)


@dataclass(frozen=True)
class Run:
    job: str  # "sample", "score" or "cross-sample"
    what: str
    models: tuple[str, ...]  # the model that samples, or (base, tuned), or (primary, intervention)
    responses: int
    units: int  # work units: the calls of sample / cross_sample the run makes
    max_new_tokens: int


def runs(profile: str) -> list[Run]:
    """The runs ``prepare`` makes for ``profile``'s notebooks, in its order: reference responses and their scores
    per tuned model, checkpoint scores, and notebook 03's sweeps (per RL model and direction, each eps with its
    random control where the rule hands over, the capped rules, the robustness sweep; bisection's added
    thresholds, which depend on the results, at their most)."""
    section = profiles.load(profile).get("pairs")
    if not section:
        raise ValueError(f"plan prices real checkpoints; profile {profiles.name(profile)!r} is the organism, "
                         "whose costs are measured in docs/organism.md")
    notebooks = {n: runner.parameters(n, p) for n, p in profiles.notebook_parameters(profile).items()}
    return pair_runs(section, profiles.shift_setup(profile), notebooks, profiles.name(profile))


def pair_runs(section: dict, setup: profiles.ShiftSetup, notebooks: dict[str, dict], where: str) -> list[Run]:
    """``runs`` for a pairs section, its shift setup and the notebooks (name -> parameters) to run."""
    tuned = {name: v["model"] if isinstance(v, dict) else v for name, v in section["tuned"].items()}
    base, new = section["base"], setup.max_new_tokens or section.get("max_new_tokens", 8192)

    def count(benchmark: str) -> int:
        sources = pairs.benchmarks(section)
        source = sources.get(benchmark or setup.benchmark or next(iter(sources)))
        held = source.get("problems") if isinstance(source, dict) else None
        n = setup.n_problems or held
        if not n:
            raise ValueError(f"{where}: say how many problems benchmark {benchmark!r} has "
                             "(data: {NAME: {dataset: ID, problems: N}}) or set shifts.n_problems")
        return min(n, held) if held else n

    problems = count("")
    per = lambda n: n * setup.samples_per_problem  # noqa: E731
    units = lambda n, size: math.ceil(n / size)  # noqa: E731
    out = []
    for name, model in tuned.items():
        out.append(Run("sample", f"{name}: reference responses", (model,), per(problems),
                       units(problems, setup.prompts_per_unit), new))
        out.append(Run("score", f"{name} vs base: scores", (base, model), per(problems),
                       units(per(problems), setup.responses_per_unit), new))
    if "01_sparsity" in notebooks:
        for name, steps in (section.get("checkpoints") or {}).items():
            out += [Run("score", f"{name} step {step} vs base", (base, path), per(problems),
                        units(per(problems), setup.responses_per_unit), new) for step, path in steps.items()]
    cross = notebooks.get("03_cross_sampling")
    if cross:
        n = count(cross["benchmark"])
        grid = [float(e) for e in cross["eps_grid"]]
        for name, model in tuned.items():
            for direction, pair in (("forward", (base, model)), ("reverse", (model, base))):
                def sweep(label, grid, rules_at):
                    for eps in grid:
                        for rule in rules_at(eps):
                            out.append(Run("cross-sample", f"{name} {direction} {label}eps {eps}: {rule}", pair,
                                           per(n), units(n, setup.prompts_per_unit), new))
                sweep("", grid, lambda e: ["divergence"] + ["random"] * (e != math.inf))
                sweep("bisection ", [f"+{i + 1}" for i in range(cross["bisection_steps"])],
                      lambda e: ["divergence", "random"])
                sweep("", ["chosen"], lambda e: [f"divergence, first {m}" for m in cross["caps"]])
                if cross["controls"]:  # the entropy control needs full distributions, which engines do not give
                    sweep("verdict's ", ["chosen"], lambda e: ["divergence", "random, divergent"]
                          + ["entropy"] * (setup.cross_method != "engine"))
                    sweep("verdict's ", ["chosen"], lambda e: ["divergence", "random, divergent, matched"])
                if cross["robustness_top_p"] < 1:
                    sweep(f"top-p {cross['robustness_top_p']} ", [float(e) for e in cross["robustness_eps_grid"]],
                          lambda e: ["divergence"] + ["random"] * (e != math.inf))
    return out


def decode_hours(model: Shape, gpu: str, responses: int, length: float, prompt: int = PROMPT_TOKENS) -> dict:
    """One model's decoding of ``responses`` responses of ``length`` tokens on the fewest GPUs (1, 2, 4 or 8,
    tensor parallel) that decode ``MIN_ROWS`` rows at once (or all the responses): those GPU-hours, the GPUs and
    the rows."""
    memory, bandwidth, peak = GPUS[gpu]
    options = []
    for gpus in (1, 2, 4, 8):
        room = gpus * memory * MEMORY_USE - model.weights
        rows = min(responses, int(room / ((prompt + length) * model.kv_per_token)))
        if rows < 1:
            continue  # the weights and one whole context do not fit
        reads = (model.weights + rows * (prompt + length / 2) * model.kv_per_token) / (gpus * bandwidth * BANDWIDTH_USE)
        step = max(reads, rows * 2 * model.params / (gpus * peak * COMPUTE_USE))  # large batches: compute-bound
        options.append({"hours": gpus * (responses * length / rows) * step / 3600, "gpus": gpus, "rows": rows})
        if rows >= min(MIN_ROWS, responses):
            break
    if not options:
        raise ValueError(f"a model of {model.params / 1e9:.0f}B parameters with a {prompt + int(length)}-token context "
                         f"does not fit on 8 {gpu}s")
    return options[-1]


def forward_hours(model: Shape, gpu: str, tokens: float) -> float:
    return 2 * model.params * tokens / (GPUS[gpu][2] * COMPUTE_USE) / 3600


def run_hours(run: Run, gpu: str, length: float) -> float:
    shapes = [shape(m) for m in run.models]
    if run.job == "score":
        return sum(forward_hours(s, gpu, run.responses * (PROMPT_TOKENS + length)) for s in shapes)
    return sum(decode_hours(s, gpu, run.responses, length)["hours"] for s in shapes)


def estimate(profile: str, mean_tokens: int | None = None) -> dict:
    """Every run with its tokens and GPU-hours per GPU kind, upper (every response at the cap) and expected (at
    ``mean_tokens``; default: the paper's ~3,600, or the cap if lower), with totals and the layout assumed."""
    return priced(runs(profile), mean_tokens)


def priced(planned: list[Run], mean_tokens: int | None = None) -> dict:
    """``estimate`` of a list of runs."""
    cap = max(r.max_new_tokens for r in planned)
    mean = min(mean_tokens or 3600, cap)
    rows = []
    for r in planned:
        rows.append({"job": r.job, "what": r.what, "responses": r.responses, "units": r.units,
                     "new_tokens_upper": r.responses * r.max_new_tokens * (r.job != "score"),
                     "new_tokens_expected": int(r.responses * mean) * (r.job != "score"),
                     **{f"{g}_hours_upper": run_hours(r, g, r.max_new_tokens) for g in GPUS},
                     **{f"{g}_hours_expected": run_hours(r, g, mean) for g in GPUS}})
    model = shape(planned[0].models[0])
    layout = {g: decode_hours(model, g, planned[0].responses, mean) for g in GPUS}
    return {"runs": rows, "cap": cap, "mean": mean, "layout": layout,
            "total": {f"{g}_hours_{k}": sum(r[f"{g}_hours_{k}"] for r in rows) for g in GPUS
                      for k in ("upper", "expected")}}


def registry_report(path, mean_tokens: int | None = None) -> list[str]:
    """What the atlas costs per pair of a registry (its shift analyses at the registry's budget), as lines."""
    from .atlas import REGISTRY_ONLY, load_registry

    setup, entries = load_registry(path)
    lines = [f"the atlas on {path}: per pair, sampling and scoring at {setup.max_new_tokens:,} new tokens at most "
             f"(expected at a mean of {min(mean_tokens or 3600, setup.max_new_tokens):,}); GPU-hours at most / "
             "expected"]
    for name, entry in entries.items():
        section = {k: v for k, v in entry.items() if k not in REGISTRY_ONLY}
        e = priced(pair_runs(section, setup, {}, name), mean_tokens)
        lines.append(f"  {name:<32} " + "  ".join(f"{g} {e['total'][f'{g}_hours_upper']:6.2f} / "
                                                  f"{e['total'][f'{g}_hours_expected']:5.2f}" for g in GPUS))
    return lines


def report(profile: str, mean_tokens: int | None = None) -> list[str]:
    """``estimate`` as lines for a terminal."""
    e = estimate(profile, mean_tokens)
    lines = [f"{len(e['runs'])} runs for profile {profiles.name(profile)!r} (up to {e['cap']:,} new tokens; expected "
             f"at a mean of {e['mean']:,}); GPU-hours on H200 (upper / expected):"]
    for r in e["runs"]:
        lines.append(f"  {r['job']:<12} {r['what']:<52} {r['responses']:>6} responses {r['units']:>4} units "
                     f"{r['new_tokens_upper']:>12,} tokens  {r['H200_hours_upper']:7.2f} / {r['H200_hours_expected']:6.2f}")
    tokens = sum(r["new_tokens_expected"] for r in e["runs"])
    lines.append(f"new tokens: {sum(r['new_tokens_upper'] for r in e['runs']):,} at most, {tokens:,} expected")
    for g, layout in e["layout"].items():
        lines.append(f"{g}: {e['total'][f'{g}_hours_upper']:.1f} GPU-hours at most, "
                     f"{e['total'][f'{g}_hours_expected']:.1f} expected; each model on {layout['gpus']} GPU(s), "
                     f"decoding {layout['rows']} rows at a time")
    lines.append(f"assumed: decoding at {BANDWIDTH_USE:.0%} of the memory bandwidth, scoring at {COMPUTE_USE:.0%} of "
                 f"the bf16 peak, {PROMPT_TOKENS} prompt tokens, bf16 weights and KV cache (docs/plan.md)")
    return lines
