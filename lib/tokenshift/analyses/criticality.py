"""Sparse but critical, tested against ground truth: are the positions where RL moved the distribution the ones
that decide the reward? (The paper's title claim; it infers criticality from cross-sampling, where the organism
can measure it.)

Two kinds of ground truth:

- **Labels.** Every position of a response is a reward-relevant decision (by kind), a reward-neutral choice or
  deterministic (``organism.labels``). Where the JS mass sits across them (``mass_by_label``), how cross-sampling's
  handovers split across them (``handovers_by_label``), and which decisions the paper's top-p metric cannot see
  (``metric_blind_spots``).
- **Counterfactual rollouts.** A position's criticality is c = P(correct | prefix, a token drawn from the RL
  model, then continue) - P(correct | prefix, a token drawn from the base, then continue) (after "Critical Tokens
  Matter", which rolls out continuations with a token kept and replaced, and "Forking Paths", which rolls out per
  alternative token). Each position is rolled out ``rollouts`` times per arm and per continuing model (the base,
  then the RL model: "the base cannot follow the RL model's wording" is not "the RL model's choice is better";
  c averages the two). The arms are coupled: rollout k draws both arms' tokens with one uniform number and
  continues both with one random stream, so where the tokens coincide the arms are one rollout and differ by 0.
  The signed c says whether the RL token helps; its size whether the position matters, noise-corrected by
  split halves (the product of two independent halves' estimates is unbiased for c^2).

Where the two distributions agree a position cannot be critical (|c| <= total variation <= sqrt(2 JS)), so a
correlation over all positions would hold by arithmetic. Positions are therefore sampled at random among those
where the models differ (full JS > ``min_js``), and the central statistic is a threshold-free rank correlation
between JS and the noise-corrected c^2 there; the threshold that makes a position "critical" is fixed here, in
advance (``CRITICAL``), and used for the AUROC and the shares only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch
from scipy.stats import spearmanr

from ..core import progress, seeding
from ..core.behaviour import Version
from ..core.cache import ArtifactCache, execution, model_fingerprint, spec
from ..models.loading import load_model, pad_id
from ..models.sampling import Decoding, decode, draw, left_pad, positions, uniforms
from ..organism import labels as labelling
from ..problems.problem_sets import ProblemSet
from . import claims
from .shift_stats import auroc

BEHAVIOUR = Version(1, libraries=("torch", "transformers"))
CRITICAL = 0.2  # fixed before any rollout: noise-corrected |c| of at least this makes a position "critical"
DECIDES = "decision"  # every label starting so is a reward-relevant decision


@dataclass(frozen=True)
class CriticalityConfig:
    positions: int = 120  # positions sampled at random among those where the models differ
    rollouts: int = 32  # per arm and continuing model (two halves of 16 for the noise correction)
    min_js: float = 1e-3  # "the models differ": full JS above this
    temperature: float = 1.0  # how both arms' tokens and the continuations are drawn (the study's sampling)
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = execution(256)

    def __post_init__(self):
        if self.positions < 1 or self.rollouts < 2 or self.rollouts % 2:
            raise ValueError(f"positions must be >= 1 and rollouts an even number >= 2 (two halves), got "
                             f"{self.positions} and {self.rollouts}")


def group(label: str) -> str:
    """"decision", "choice", "deterministic" or "unparsed" for a position label (decisions of every kind as one)."""
    return DECIDES if label.startswith(DECIDES) else label


def label_table(table: pl.DataFrame, problems: ProblemSet) -> pl.DataFrame:
    """A shift (or responses) table's positions with their labels (``organism.labels``): ``label`` (by decision
    kind) and ``group``. Reads each response's ids from its ``token_id`` column, in position order; a last token
    in the stop set is the stop position."""
    tok, stops = problems.tokenizer, set(problems.stop_ids)
    rows = []
    for (response,), part in table.sort("response", "position").group_by("response", maintain_order=True):
        ids = part["token_id"].to_list()
        stopped = bool(ids) and ids[-1] in stops
        rows.append((response, response_labels(ids[: len(ids) - stopped], stopped, tok)))
    labels = pl.DataFrame({"response": [r for r, ls in rows for _ in ls],
                           "position": [i for _, ls in rows for i in range(len(ls))],
                           "label": [x for _, ls in rows for x in ls]},
                          schema={"response": table.schema["response"], "position": table.schema["position"],
                                  "label": pl.String})
    return table.join(labels, on=["response", "position"], how="left").with_columns(
        pl.col("label").map_elements(group, return_dtype=pl.String).alias("group"))


def response_labels(ids: list[int], stopped: bool, tokenizer) -> list[str]:
    """One label per position of a response (its ids without the stop token; the stop position last)."""
    pieces = [tokenizer.decode([i]) for i in ids]
    text = "".join(pieces)
    if text != tokenizer.decode(ids):  # pieces that do not concatenate (merged bytes): measure by prefixes
        starts = [len(tokenizer.decode(ids[:i])) for i in range(len(ids))]
        text = tokenizer.decode(ids)
    else:
        starts = np.cumsum([0, *map(len, pieces)])[:-1].tolist()
    return labelling.token_labels(labelling.label_text(text), starts, stopped)


def mass_by_label(labelled: pl.DataFrame, js: str, seed: int = 0) -> pl.DataFrame:
    """Per label group: its share of the positions and of the ``js`` mass, with 95% intervals from resampling
    responses."""
    rows = []
    for name in sorted(labelled["group"].unique().to_list()):
        parts = claims.by_problem(labelled.with_columns((pl.col("group") == name).alias("in")), js, "in")
        share, ci = claims.bootstrap([parts], lambda x: float((x[:, 0] * x[:, 1]).sum() / max(x[:, 0].sum(), 1e-30)),
                                     seed=seed)
        positions = float(np.concatenate([p[:, 1] for p in parts]).mean())
        rows.append({"group": name, "positions": positions, "js_mass": share, "low": ci[0], "high": ci[1]})
    return pl.DataFrame(rows)


def metric_blind_spots(labelled: pl.DataFrame, high: float) -> pl.DataFrame:
    """Per label: the knife-edge share (of the positions where top-p JS > ``high``, those whose full JS < 0.01:
    the nucleus moved, the distribution hardly did) and the blind share (of the positions where full JS >
    ``high``, those whose top-p JS is 0: a real shift the top-p metric does not see), with their counts."""
    return (labelled.group_by("label").agg(
        (pl.col("js_top_p") > high).sum().alias("top_p_high"),
        ((pl.col("js_top_p") > high) & (pl.col("js") < 0.01)).sum().alias("knife_edge"),
        (pl.col("js") > high).sum().alias("full_high"),
        ((pl.col("js") > high) & (pl.col("js_top_p") == 0)).sum().alias("blind"))
        .with_columns((pl.col("knife_edge") / pl.col("top_p_high")).alias("knife_edge_share"),
                      (pl.col("blind") / pl.col("full_high")).alias("blind_share"))
        .sort("label"))


def conditional_sparsity(table: pl.DataFrame, js: str, uncertain: float = 0.3) -> float:
    """Of the positions where the base is uncertain (entropy above ``uncertain`` nats), the share whose ``js`` the
    RL model left near zero (< 0.01): sparsity where the base had room to move."""
    room = table.filter(pl.col("entropy_base") > uncertain)
    return float((room[js] < 0.01).mean()) if len(room) else float("nan")


def handovers_by_label(sweep: pl.DataFrame, problems: ProblemSet, eps: float) -> pl.DataFrame:
    """Where cross-sampling's divergence rule handed over at ``eps``: per label group, its share of the handovers
    and of all positions of those responses."""
    rows = sweep.filter((pl.col("eps") == eps) & (pl.col("rule") == "divergence"))
    counts: dict[str, list[int]] = {}
    for ids, stopped, handed in rows.select("response_ids", "stopped", "intervened").iter_rows():
        for label, flag in zip(response_labels(ids, stopped, problems.tokenizer), handed):
            counts.setdefault(group(label), [0, 0])
            counts[group(label)][0] += flag
            counts[group(label)][1] += 1
    total_handed, total = sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values())
    return pl.DataFrame([{"group": g, "handovers": h, "handover_share": h / max(total_handed, 1),
                          "position_share": n / total} for g, (h, n) in sorted(counts.items())])


def decision_share(frame: pl.DataFrame, problems: ProblemSet) -> float:
    """The share of the positions of ``frame``'s responses (rows with ``response_ids`` and ``stopped``) that are
    reward-relevant decisions: how dense the organism's decisions are, which sets cross-sampling's sparse bar."""
    labels = [group(label) for ids, stopped in frame.select("response_ids", "stopped").iter_rows()
              for label in response_labels(ids, stopped, problems.tokenizer)]
    return labels.count("decision") / max(len(labels), 1)


def sample_positions(table: pl.DataFrame, config: CriticalityConfig) -> pl.DataFrame:
    """``config.positions`` positions drawn at random (seeded) among those where full JS > ``min_js`` (fewer where
    there are fewer; none where the models never differ), never a response's last position (where the stop
    token or the length limit leaves nothing to follow), in (response, position) order."""
    stops = table.group_by("response").agg(pl.col("position").max().alias("last"))
    candidates = (table.join(stops, on="response").filter((pl.col("js") > config.min_js)
                                                          & (pl.col("position") < pl.col("last")))
                  .sort("response", "position"))
    rng = np.random.default_rng(seeding.derive(config.seed, "criticality", "positions"))
    chosen = np.sort(rng.choice(len(candidates), min(config.positions, len(candidates)), replace=False))
    return candidates[chosen.tolist()].drop("last")


def responses_so_far(table: pl.DataFrame, sampled: pl.DataFrame) -> list[list[int]]:
    """Each sampled position's response up to it (the ids before the position), read from ``table``."""
    ids = {r: part.sort("position")["token_id"].to_list()
           for (r,), part in table.filter(pl.col("response").is_in(sampled["response"].unique().implode()))
           .group_by("response")}
    return [ids[r][:t] for r, t in sampled.select("response", "position").rows()]


@torch.no_grad()
def rollouts(base, tuned, problems: ProblemSet, table: pl.DataFrame, sampled: pl.DataFrame,
             config: CriticalityConfig, max_new_tokens: int, show_progress: bool = True) -> pl.DataFrame:
    """For each sampled position (``spot``, in ``sampled``'s order) and rollout k: both arms' tokens and whether
    each arm's response came out correct when continued by the base and by the RL model. One row per (spot, k)."""
    spots = sampled.select("response", "problem", "position").rows()
    prefixes = [problems.prompts[p] + so_far for p, so_far in zip(sampled["problem"], responses_so_far(table, sampled))]
    vocab, pad, k = len(problems.tokenizer), pad_id(problems.tokenizer), config.rollouts
    u = uniforms(seeding.derive(config.seed, "criticality", "tokens"), range(len(spots)), k)
    tokens = {}
    for arm, model in (("tuned", tuned), ("base", base)):
        logits = next_token_logits(model, prefixes, pad, vocab, config.batch_size)
        tokens[arm] = torch.stack([draw(logits, config.temperature, config.top_p, u[:, j : j + 1])
                                   for j in range(k)], 1).flatten().tolist()
    frame = pl.DataFrame({"spot": [i // k for i in range(len(spots) * k)], "k": [i % k for i in range(len(spots) * k)],
                          "tuned_token": tokens["tuned"], "base_token": tokens["base"]})
    differ = [i for i, (a, b) in enumerate(zip(tokens["tuned"], tokens["base"])) if a != b]
    with progress.bar(total=4, desc="criticality rollouts", unit="arm", disable=not show_progress) as bar:
        for who, model in (("base", base), ("tuned", tuned)):
            seed = seeding.derive(config.seed, "criticality", "continue", who)
            run = lambda arm, rows: _continue(model, problems, spots, prefixes, tokens[arm], rows, seed,  # noqa: E731
                                              config, max_new_tokens, vocab, pad)
            tuned_ok = run("tuned", range(len(tokens["tuned"])))
            bar.update(1)
            base_ok = list(tuned_ok)  # where the arms drew one token they are one rollout
            for i, ok in zip(differ, run("base", differ)):
                base_ok[i] = ok
            bar.update(1)
            frame = frame.with_columns(pl.Series(f"tuned_correct_{who}", tuned_ok, pl.Boolean),
                                       pl.Series(f"base_correct_{who}", base_ok, pl.Boolean))
    return frame


def next_token_logits(model, prefixes: list[list[int]], pad: int, vocab: int, batch_size: int) -> torch.Tensor:
    """The model's fp32 next-token logits after each prefix ([prefixes, vocabulary]), teacher-forced."""
    out = []
    for start in range(0, len(prefixes), batch_size):
        ids, mask = left_pad(prefixes[start : start + batch_size], pad)
        logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                       position_ids=positions(mask).to(model.device)).logits
        out.append(logits[:, -1, :vocab].float().cpu())
    return torch.cat(out)


def _continue(model, problems, spots, prefixes, tokens, rows, seed, config, max_new_tokens, vocab,
              pad) -> list[bool]:
    """For rollout rows ``rows`` (row i: spot i // K, rollout i % K): correct after ``tokens[i]`` and a continuation
    by ``model`` drawn from random stream i (so both arms of a rollout share it), within the length limit?"""
    k, stops = config.rollouts, set(problems.stop_ids)
    verdict, todo = {}, []
    for i in rows:
        _, p, t = spots[i // k]
        if tokens[i] in stops or t + 1 >= max_new_tokens:  # nothing follows
            response = prefixes[i // k][len(problems.prompts[p]) :] + [tokens[i]]
            verdict[i] = problems.verify(p, problems.answer_text(response), tokens[i] in stops)
        else:
            todo.append(i)
    if todo:
        budget = max(max_new_tokens - spots[i // k][2] - 1 for i in todo)
        decoding = Decoding(budget, stops, pad, vocab, config.temperature, config.top_p, seed)
        samples = decode(model, [prefixes[i // k] + [tokens[i]] for i in todo], decoding,
                         batch_size=config.batch_size, responses=todo)
        for i, more, stopped in zip(todo, samples.response_ids, samples.stopped):
            _, p, t = spots[i // k]
            room = max_new_tokens - t - 1  # steps left after the token: the response keeps to the length limit
            response = prefixes[i // k][len(problems.prompts[p]) :] + [tokens[i]] + more[:room]
            verdict[i] = problems.verify(p, problems.answer_text(response), stopped and len(more) < room)
    return [verdict[i] for i in rows]


def measured(base_dir, tuned_dir, problems: ProblemSet, table: pl.DataFrame, config: CriticalityConfig,
             max_new_tokens: int, cache: ArtifactCache | None = None, show_progress: bool = True) -> pl.DataFrame:
    """Each sampled position of ``table`` (``tuned_dir``'s responses scored against ``base_dir``) with its measured
    criticality (``summarise``); the rollouts are cached, keyed by the models, the positions' prefixes and
    ``config``."""
    cache = cache or ArtifactCache()
    sampled = sample_positions(table, config)
    if not len(sampled):
        return summarise(sampled, pl.DataFrame(schema={"spot": pl.Int64, "k": pl.Int64, "tuned_token": pl.Int64,
                                                       "base_token": pl.Int64, **{f"{arm}_correct_{who}": pl.Boolean
                                                       for arm in ("tuned", "base") for who in ("base", "tuned")}}))
    entry = spec("criticality", __name__, config, {
        "base": model_fingerprint(base_dir), "tuned": model_fingerprint(tuned_dir),
        "prefixes": [[problems.prompts[p], so_far] for p, so_far in zip(sampled["problem"],
                                                                         responses_so_far(table, sampled))],
        "max_new_tokens": max_new_tokens,
        "stop_ids": list(problems.stop_ids)})

    def build(out):
        base, _ = load_model(base_dir)
        tuned, _ = load_model(tuned_dir)
        rollouts(base, tuned, problems, table, sampled, config, max_new_tokens, show_progress).write_parquet(
            out / "rollouts.parquet")

    frame = pl.read_parquet(cache.get_or_build(entry, build) / "rollouts.parquet")
    return summarise(sampled, frame)


def summarise(sampled: pl.DataFrame, frame: pl.DataFrame) -> pl.DataFrame:
    """Per sampled position: ``c`` (the RL token's gain in P(correct), averaged over both continuing models),
    ``c_base_continues`` and ``c_tuned_continues``, the two halves' estimates, ``size2`` (their product, unbiased
    for c^2), ``size`` (its signed square root) and ``critical`` (size >= ``CRITICAL``), and ``tokens_differ``
    (the share of rollouts whose arms drew different tokens)."""
    gain = lambda who: pl.col(f"tuned_correct_{who}").cast(pl.Float64) - pl.col(f"base_correct_{who}").cast(  # noqa: E731
        pl.Float64)
    per = frame.with_columns(gain("base").alias("g_base"), gain("tuned").alias("g_tuned"),
                             ((gain("base") + gain("tuned")) / 2).alias("g"))
    stats = per.group_by("spot").agg(
        pl.col("g").mean().alias("c"), pl.col("g_base").mean().alias("c_base_continues"),
        pl.col("g_tuned").mean().alias("c_tuned_continues"),
        pl.col("g").filter(pl.col("k") % 2 == 0).mean().alias("c_half_a"),
        pl.col("g").filter(pl.col("k") % 2 == 1).mean().alias("c_half_b"),
        (pl.col("tuned_token") != pl.col("base_token")).mean().alias("tokens_differ")).sort("spot")
    stats = stats.with_columns((pl.col("c_half_a") * pl.col("c_half_b")).alias("size2")).with_columns(
        (pl.col("size2").sign() * pl.col("size2").abs().sqrt()).alias("size"))
    return pl.concat([sampled, stats.drop("spot")], how="horizontal").with_columns(
        (pl.col("size") >= CRITICAL).alias("critical"))


def rank_statistics(positions: pl.DataFrame, js: str = "js", seed: int = 0) -> dict[str, tuple[float, tuple]]:
    """Spearman's rho of ``js`` against the noise-corrected size c^2, the AUROC of ``js`` for "critical", the mean
    signed c and the share critical, each with a 95% interval from resampling problems."""
    parts = claims.by_problem(positions.with_columns(pl.col("critical").cast(pl.Float64)), js, "size2", "critical",
                               "c")
    rho = lambda x: float(spearmanr(x[:, 0], x[:, 1]).statistic) if len(x) > 2 else float("nan")  # noqa: E731
    return {"spearman_js_size": claims.bootstrap([parts], rho, seed=seed),
            "auroc_js_critical": claims.bootstrap([parts], lambda x: auroc(x[:, 0], x[:, 2] > 0.5), seed=seed),
            "mean_c": claims.bootstrap([parts], lambda x: float(x[:, 3].mean()), seed=seed),
            "share_critical": claims.bootstrap([parts], lambda x: float(x[:, 2].mean()), seed=seed)}


# The verdict's threshold, fixed in advance: a rank correlation below 0.1 leaves JS explaining about 1% of the
# ranks of consequence, which is not "the divergent tokens are the critical ones".
MIN_RHO = 0.1


def verdict(name: str, rho: tuple[float, tuple[float, float]], positions: int) -> claims.Verdict:
    """The paper's central claim for RL model ``name``, on the rank correlation among ``positions`` positions where
    the models differ: agrees if its interval lies above ``MIN_RHO``, disagrees if below; not testable where no
    correlation can be computed (too few positions, or no spread in them)."""
    value, interval = rho
    if math.isnan(value) or any(map(math.isnan, interval)):
        return claims.not_testable("critical.divergent_are_critical", f"criticality.{name}.positions_rolled_out",
                                   positions, "too few positions where the models differ, or no spread in their "
                                   "measured consequence, to rank")
    return claims.against("critical.divergent_are_critical", f"criticality.{name}.spearman_js_size", value, MIN_RHO,
                          ">", interval, rule=f"agrees if Spearman's rho of full JS against the noise-corrected c^2, "
                          f"among positions where the models differ, has its interval above {MIN_RHO}")
