"""Cross-sampling, the paper's causal test (Meng et al. 2026, the cross-sampling experiments and their table of
intervention budgets on AIME 2024/2025): decode with a primary policy
and hand each token over to an intervention policy only where the two disagree.

Both models read the same (mixed) response, each with its own KV cache (``models.draft_verify``, the suite's two-
model decoder; or both in inference engines, ``models.engine_cross``). At every step both score the current prefix;
when the JS divergence between their next-token distributions exceeds ``eps`` the token is sampled from the
intervention policy, otherwise from the primary. Forward (primary = base, intervention = RL) asks whether the few
high-divergence decisions suffice for RL's gain; reverse (primary = RL, intervention = base) whether they are
necessary.

The random-position control (the reviewers' request) intervenes instead at randomly chosen steps, each response with
its own target fraction (the fraction a divergence-based run realised on the same prompt and sample slot). Its coin
flips come from each response's stream of coins, apart from its draws, so the sampler's draws are the same as plain
sampling's. Two more controls spend the divergence rule's budget elsewhere: "random, divergent" flips its coins
only at steps where the models disagree (JS > ``DIVERGENT``), as many handovers per response (in expectation) as
the divergence rule changed tokens there, so it cannot waste its budget where the models agree; fewer of its
handovers change the token than the divergence rule's do, so "random, divergent xS" scales its odds by S, which a
second pass sets from the first's changed tokens (``suite.study``) to match the divergence rule's; "entropy, primary"
and "entropy, intervention" hand over a response's highest-entropy steps of that model (the base's, whichever
side it is on), as many as the divergence rule handed over. The capped rule ("divergence, first m") hands over
only a response's first m steps with JS > eps: how many handovers are necessary.

A handed-over step need not change the text: the intervention's draw (with the same uniform number) can be
the token the primary would have drawn. Each response records both: its intervened steps and, of those, the
changed ones.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import torch

from ..core import parallel, seeding
from ..core.behaviour import Version
from ..core.cache import ArtifactCache, added, execution, model_fingerprint, spec
from ..models import engine, responses
from ..models.draft_verify import draft_verify
from ..models.engine_cross import engine_cross_sample
from ..models.loading import DEFAULT_PLACEMENT, Placement, check_same_vocabulary, runtime
from ..models.sampling import Decoding, Samples, response_numbers, uniforms

if TYPE_CHECKING:  # a problem set is handed in; judging its rows is keyed by its own code (``ProblemSet.judged``)
    from ..problems.problem_sets import ProblemSet

BEHAVIOUR = Version(1)
SUITE_METHODS = ("lockstep", "draft")  # with the suite's own models: chunks of one token, or adaptive chunks
METHODS = (*SUITE_METHODS, "engine")  # "engine": both models in inference engines (test_engine_cross.py)


@dataclass
class CrossSamples(Samples):
    @property
    def intervened(self) -> list[list[bool]]:
        """Per response token (and the stop step): taken from the intervention policy?"""
        return self.chosen

    def intervened_fraction(self) -> list[float]:
        """Per response, the share of its decoding steps (end-of-sequence included) taken by the intervention."""
        return [sum(flags) / len(flags) if flags else 0.0 for flags in self.chosen]

    def intervened_count(self) -> list[int]:
        return [sum(flags) for flags in self.chosen]

    def changed_count(self) -> list[int]:
        """Per response, the intervened steps whose token differs from the primary's draw there."""
        return [sum(flags) for flags in self.changed]


def capped(m: int) -> str:
    """The name of the divergence rule that hands over at most a response's first ``m`` steps with JS > eps."""
    return f"divergence, first {m}"


# the controls: each spends the budget the divergence rule realised on the same response (so each needs it run too)
CONTROLS = ("random", "random, divergent", "entropy, primary", "entropy, intervention")
DIVERGENT = 1e-3  # "the models disagree" for the restricted random control: JS above this (the sweep's JS)


def divergent_scale(rule: str) -> float | None:
    """S of "random, divergent xS" (its odds scaled by S > 0), 1 for "random, divergent", None for other rules."""
    if rule == "random, divergent":
        return 1.0
    found = re.fullmatch(r"random, divergent x(\d+(?:\.\d+)?)", rule)
    return float(found.group(1)) if found and float(found.group(1)) > 0 else None


def is_control(rule: str) -> bool:
    return rule in CONTROLS or divergent_scale(rule) is not None


def cap_of(rule: str) -> int | None:
    """m of a capped rule's name, None for the other rules; refuses names that are no rule."""
    if rule == "divergence" or is_control(rule):
        return None
    found = re.fullmatch(r"divergence, first (\d+)", rule)
    if not found or int(found.group(1)) < 1:
        raise ValueError(f"unknown cross-sampling rule {rule!r}: use 'divergence', one of the controls "
                         f"{', '.join(map(repr, CONTROLS))}, or '{capped(4)}' (at most 4 handovers per response; "
                         "any m >= 1)")
    return int(found.group(1))


# The rules, as the decoders read them (``models.draft_verify``'s docstring): ``fires(js [B, k], responses [B],
# steps [B, k], entropy [2, B, k] or None)`` on a chunk, without effect, and ``handed(responses)`` for the
# handovers a round keeps.
class DivergenceRule:
    """Hand a step over where JS(primary || intervention) > eps (eps = inf: never; eps < 0: always); with ``cap``,
    only each of the ``responses`` responses' first ``cap`` such steps."""

    def __init__(self, eps: float, cap: int | None = None, responses: int = 0):
        self.eps, self.cap = eps, cap
        self.used = torch.zeros(responses, dtype=torch.long)

    def fires(self, js, responses, steps, entropy=None):
        fire = js > self.eps
        return fire & (self.used[responses] < self.cap)[:, None] if self.cap is not None else fire

    def handed(self, responses) -> None:
        self.used[responses] += 1


class RandomRule:
    """Hand step t of response r over where its coin for t falls under ``fractions[r]`` (with ``among``, only at
    steps whose JS exceeds it): each response's coins come from its own stream, derived from the run's ``seed``
    and the response's number in the run (``numbers``), apart from its draws."""

    def __init__(self, fractions: Sequence[float], seed: int, numbers: Sequence[int], steps: int,
                 among: float | None = None):
        self.fractions = torch.tensor(list(fractions), dtype=torch.float)
        self.coins = uniforms(seeding.derive(seed, "random-control"), numbers, steps)
        self.among = among

    def fires(self, js, responses, steps, entropy=None):
        coins = self.coins[responses[:, None], steps.clamp(max=self.coins.shape[1] - 1)]
        fire = coins < self.fractions[responses][:, None]
        return fire if self.among is None else fire & (js > self.among)

    def handed(self, responses) -> None:
        pass


class EntropyRule:
    """Hand step t of response r over where one model's entropy there (``side`` 0: the primary's, 1: the
    intervention's) exceeds ``thresholds[r]``."""

    def __init__(self, thresholds: Sequence[float], side: int):
        self.thresholds, self.side = torch.tensor(list(thresholds), dtype=torch.float), side

    def fires(self, js, responses, steps, entropy=None):
        if entropy is None:
            raise ValueError("the entropy control needs both models' full distributions: cross-sample with method "
                             "'draft' or 'lockstep', not 'engine'")
        return entropy[self.side] > self.thresholds[responses][:, None]

    def handed(self, responses) -> None:
        pass


def top_entropy_thresholds(entropies: Sequence[Sequence[float]], counts: Sequence[int]) -> list[float]:
    """Per response, the entropy above which its ``counts[r]`` highest-entropy steps lie (inf for none, -inf for
    all its steps): the entropy control's thresholds at the divergence rule's realised budget."""
    out = []
    for values, count in zip(entropies, counts, strict=True):
        ranked = sorted(values, reverse=True)
        out.append(math.inf if count == 0 else ranked[count] if count < len(ranked) else -math.inf)
    return out


def control(rule: str, by_divergence: CrossSamples, seed: int, numbers: Sequence[int], steps: int):
    """Control ``rule`` (``is_control``) at the budget the divergence rule realised on each response of
    ``by_divergence`` (the same prompts and response numbers): its share of steps (random), its changed tokens
    spent only where the models disagree (random, divergent, its odds scaled by S), or its handovers at one model's highest-entropy
    steps (entropy)."""
    if rule == "random":
        return RandomRule(by_divergence.intervened_fraction(), seed, numbers, steps)
    scale = divergent_scale(rule)
    if scale is not None:
        eligible = [sum(j > DIVERGENT for j in js) for js in by_divergence.js]
        return RandomRule([min(1.0, scale * c / e) if e else 0.0
                           for c, e in zip(by_divergence.changed_count(), eligible, strict=True)],
                          seed, numbers, steps, among=DIVERGENT)
    if rule not in CONTROLS:
        raise ValueError(f"{rule!r} is no control: use one of {CONTROLS}")
    side = ("entropy, primary", "entropy, intervention").index(rule)
    entropies = by_divergence.first_entropy if side == 0 else by_divergence.second_entropy
    return EntropyRule(top_entropy_thresholds(entropies, by_divergence.intervened_count()), side)


def cross_sample(primary, intervention, prompts: list[list[int]], decoding: Decoding, *, eps: float = math.inf,
                 random_fraction: list[float] | None = None, cap: int | None = None, method: str = "draft",
                 n: int = 1, batch_size: int = 256, drafter=None, responses: Sequence[int] | None = None,
                 rule=None) -> CrossSamples:
    """Sample ``n`` responses per prompt as ``decoding`` says, switching to ``intervention`` where JS > ``eps``
    (its ``js_top_p`` < 1: JS on top-p truncated distributions, as the divergence library measures it).

    ``random_fraction`` (one value per response, in prompt-major order) replaces the divergence rule by the
    random-position control; ``cap`` limits the divergence rule to each response's first ``cap`` handovers.
    ``method``: "draft" (draft and verify, ``models.draft_verify``: the lockstep's tokens up to rounding,
    at about one model's cost on a GPU when handovers are sparse), "lockstep" (the same decoder, one token at a
    time) or "engine" (both models are inference engines, ``models.engine.VllmEngine``: ``models.engine_cross``,
    top-p JS only). ``drafter``: an inference engine that drafts the primary's chunks for draft and verify.
    ``responses``: each response's number in the run, which names its random streams (default 0, 1, ...).
    ``rule``: one of this module's rules (e.g. ``control``'s), in place of the one eps, ``random_fraction`` and
    ``cap`` make.
    """
    n_responses = len(prompts) * n
    if random_fraction is not None and len(random_fraction) != n_responses:
        raise ValueError(f"random_fraction needs one value per response ({n_responses}), got {len(random_fraction)}")
    if cap is not None and (random_fraction is not None or isinstance(cap, bool) or not isinstance(cap, int)
                            or cap < 1):
        raise ValueError(f"cap must be an integer >= 1 and applies to the divergence rule only, got {cap!r}")
    if method not in METHODS:
        raise ValueError(f"unknown cross-sampling method {method!r}: choose one of {METHODS}")
    if drafter is not None and method != "draft":
        raise ValueError("an engine drafts for draft and verify only; the lockstep decodes with the models "
                         "themselves: use method 'draft', or no engine")
    numbers = response_numbers(responses, n_responses)
    if rule is None:
        rule = DivergenceRule(eps, cap, n_responses) if random_fraction is None else \
            RandomRule(random_fraction, decoding.seed, numbers, decoding.max_new_tokens)
    if method == "engine":
        return CrossSamples(**vars(engine_cross_sample(primary, intervention, prompts, rule, decoding, n=n,
                                                       responses=numbers)))
    return CrossSamples(**vars(draft_verify(primary, intervention, prompts, rule, decoding, n=n, drafter=drafter,
                                            batch_size=batch_size, max_chunk=1 if method == "lockstep" else 32,
                                            responses=numbers)))


def cross_sample_by_names(primary, intervention, prompts: list[list[int]], **kw) -> CrossSamples:
    """``cross_sample`` with its decoding given by transformers' ``generate`` names (``max_new_tokens``,
    ``eos_token_id``, ``pad_token_id``, ...; ``Decoding.split``), as ``sampling.sample`` takes them: for scripts,
    and for checks against references that take those names."""
    decoding, rest = Decoding.split(kw)
    return cross_sample(primary, intervention, prompts, decoding, **rest)


@dataclass(frozen=True)
class SweepConfig:
    """A cross-sampling sweep over eps on a problem set."""

    eps_grid: tuple[float, ...] = (math.inf, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001, 1e-4, 0.0)  # inf: never intervene
    # at every eps: "divergence", the controls of ``CONTROLS`` (each at the divergence rule's realised budget, so
    # they need "divergence" too), and any capped divergence rules ("divergence, first m")
    rules: tuple[str, ...] = ("divergence", "random")
    samples_per_problem: int = 4
    temperature: float = 1.0
    top_p: float = 1.0
    js_top_p: float = 1.0  # 1: full-vocabulary JS decides; < 1: top-p truncated JS
    max_new_tokens: int = 48
    seed: int = 0
    prompts_per_unit: int = execution(64)  # work unit: how the work is cut, not what it computes
    batch_size: int = execution(256)  # sequences decoded together (each response draws from its own streams)
    # "draft": draft and verify; "lockstep": the same decoder a token at a time (the same tokens up to rounding);
    # "engine": both models in inference engines (top-p JS only; other draws than the suite's)
    method: str = "draft"
    # who drafts the primary's chunks with method "draft": "suite" (the primary itself) or "vllm" (an inference
    # engine, its tokens drawn with its own numerics; both models' distributions and every handover stay the suite's)
    drafter: str = added("suite")

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown cross-sampling method {self.method!r}: choose one of {METHODS}")
        if self.drafter not in engine.ENGINES:
            raise ValueError(f"unknown drafter {self.drafter!r}: choose one of {engine.ENGINES}")
        if self.drafter != "suite" and self.method != "draft":
            raise ValueError(f"an engine drafts for method 'draft' only, not {self.method!r}: the lockstep decodes "
                             "with the models themselves, and method 'engine' has both models in engines")
        for rule in self.rules:
            cap_of(rule)
        if not self.rules or len(set(self.rules)) != len(self.rules):
            raise ValueError(f"rules must name each rule once, got {self.rules}")
        if any(map(is_control, self.rules)) and "divergence" not in self.rules:
            raise ValueError("the controls take the divergence rule's realised budget: add 'divergence' to rules")
        if self.method == "engine" and {"entropy, primary", "entropy, intervention"} & set(self.rules):
            raise ValueError("the entropy control needs both models' full distributions, which the engines do not "
                             "give: use method 'draft' or 'lockstep' for it")


def run_sweep(primary, intervention, problems: ProblemSet, config: SweepConfig, out_file: Path, parts: Path,
              show_progress: bool = True, drafter=None) -> None:
    """For every eps, each of ``config.rules``: the divergence rule, the random-position control with each
    response's realised fraction as its target, capped divergence rules. One row per (eps, rule, response) into
    ``out_file``, in the responses schema plus ``responses.CROSS_COLUMNS``; correctness is judged separately.
    ``drafter``: an inference engine that drafts the primary's chunks (``cross_sample``)."""
    decoding = Decoding.for_problems(problems, config.max_new_tokens, temperature=config.temperature,
                                     top_p=config.top_p, seed=config.seed, js_top_p=config.js_top_p)
    common = dict(n=config.samples_per_problem, method=config.method, drafter=drafter, batch_size=config.batch_size)

    def work(unit: int, index: list[int]) -> pl.DataFrame:
        prompts = [problems.prompts[i] for i in index]
        numbers = parallel.responses_of(index, config.samples_per_problem)
        frames = []
        for eps in config.eps_grid:
            runs = {}
            for rule in sorted(config.rules, key=is_control):  # the controls read the divergence run
                if is_control(rule):
                    # a control at the realised budget; where nothing was handed over it would draw exactly the
                    # divergence rule's tokens (it never fires, the sampler's stream is the same), so those are
                    # reused
                    by_divergence = runs["divergence"]
                    runs[rule] = by_divergence if not any(by_divergence.intervened_count()) else cross_sample(
                        primary, intervention, prompts, decoding, responses=numbers,
                        rule=control(rule, by_divergence, config.seed, numbers, config.max_new_tokens), **common)
                else:
                    runs[rule] = cross_sample(primary, intervention, prompts, decoding, eps=eps, cap=cap_of(rule),
                                              responses=numbers, **common)
            for rule, out in runs.items():
                rows = responses.frame(problems.prompts, index, out, config.samples_per_problem)
                frames.append(rows.with_columns(
                    pl.Series("eps", [eps] * len(rows), pl.Float64), pl.lit(rule).alias("rule"),
                    pl.Series("intervened", out.intervened, pl.List(pl.Boolean)),
                    pl.Series("fraction", out.intervened_fraction(), pl.Float64),
                    pl.Series("count", out.intervened_count(), pl.Int64),
                    pl.Series("changed", out.changed, pl.List(pl.Boolean)),
                    pl.Series("changed_count", out.changed_count(), pl.Int64)))
        return pl.concat(frames).select(*responses.CROSS_COLUMNS, *responses.COLUMNS)

    # rows by eps as the grid lists them, then rule as the config lists them, then response, however the units fell
    rank = {"eps": config.eps_grid, "rule": config.rules}
    order = lambda frame: frame.sort([pl.col(c).replace_strict(v, range(len(v)), return_dtype=pl.Int64)  # noqa: E731
                                      for c, v in rank.items()] + [pl.col("response")], maintain_order=True)
    parallel.run_units(len(problems), config.prompts_per_unit, work, out_file, parts, desc="cross-sampling",
                       show_progress=show_progress, order=order)


# A cached sweep on a CPU runs on one thread: a BLAS reduction's order follows the thread count (and so, now and
# then, a draw that sits on a rounding boundary), and its rows should not depend on the machine's cores or on how
# many sweeps run at once (``suite.study`` runs them in worker processes, one per core).
SWEEP_THREADS = 1


def engine_pair(primary_dir, intervention_dir, problems: ProblemSet, max_new_tokens: int,
                placement: Placement = DEFAULT_PLACEMENT) -> tuple:
    """The two models of a cross-sampling run as inference engines, each with its context sized for these
    problems; on a GPU each takes the placement's share (default 0.45) of every GPU it uses, so both fit beside
    each other."""
    share = 0.45 if runtime()["device"] != "cpu" else None
    return tuple(placement.engine(source, problems.prompts, max_new_tokens, share)
                 for source in (primary_dir, intervention_dir))


def sweep(primary_dir, intervention_dir, problems: ProblemSet, config: SweepConfig, cache: ArtifactCache | None = None,
          placement: Placement = DEFAULT_PLACEMENT, show_progress: bool = True) -> pl.DataFrame:
    """``run_sweep`` on two model directories (or hub ids), cached as Parquet, with each row judged (``correct``).
    Under a launcher every rank takes its share of the work units."""
    cache = cache or ArtifactCache()
    numerics = placement.runtime()
    threads = SWEEP_THREADS if numerics["device"] == "cpu" else None
    inputs = {"primary": model_fingerprint(primary_dir), "intervention": model_fingerprint(intervention_dir),
              "problems": problems.prompt_key(),
              "runtime": numerics if threads is None else {**numerics, "threads": threads}}
    if config.drafter != "suite":  # the engine's draws are its version's
        inputs["drafter"] = f"{config.drafter} {engine.require_vllm().__version__}"
    if config.method == "engine":  # so are both engines' numerics
        inputs["engine"] = f"vllm {engine.require_vllm().__version__}"
    entry = spec("cross_sampling", __name__, config, inputs)

    def build(out: Path):
        drafter = None
        if config.method == "engine":
            primary, intervention = engine_pair(primary_dir, intervention_dir, problems, config.max_new_tokens,
                                                placement)
        else:
            if config.drafter == "vllm":  # first, so that it takes its share of each GPU before the pair loads
                drafter = placement.engine(primary_dir, problems.prompts, config.max_new_tokens,
                                           0.3 if numerics["device"] != "cpu" else None)
            # the suite's caches hold each row's prompt and twice its new tokens (draft and verify's dropped slots)
            placement.check_fits([primary_dir, intervention_dir], rows=config.batch_size,
                                 context=max(map(len, problems.prompts)) + 2 * config.max_new_tokens)
            primary, tok = placement.load(primary_dir)
            intervention, other_tok = placement.load(intervention_dir)
            check_same_vocabulary(tok, other_tok)
        with parallel.threads(threads):
            run_sweep(primary, intervention, problems, config, out / "sweep.parquet", cache.parts(entry),
                      show_progress, drafter=drafter)

    path = cache.get_or_build(entry, build, collective=True)
    return problems.judged(path, "sweep.parquet", cache)
