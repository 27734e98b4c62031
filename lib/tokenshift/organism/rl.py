"""A compact GRPO-family RLVR trainer: the organism's "SimpleRL-like" and "DAPO-like" runs.

One step: sample G responses to each of P training problems from the current policy, score them with the
task's verifier, normalise rewards within each group (GRPO's advantage), then take ``updates_per_batch``
mini-batch steps on the clipped policy-gradient loss, optionally with a k3 KL penalty to the frozen
reference (the base). References: Shao et al. 2024 (GRPO, DeepSeekMath) for group-normalised advantages
and the k3 penalty; Yu et al. 2025 (DAPO) for clip-higher, token-mean aggregation and dropping groups whose
rewards are all equal (DAPO re-samples to refill the batch; we simply train on the groups that remain).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core import progress, seeding
from ..core.behaviour import Version
from ..core.cache import ArtifactCache, added
from ..models.batching import Batch, make_batch, token_logprobs
from ..models.loading import save
from ..models.sampling import Decoding, decode
from ..problems import evaluation
from . import storage, task
from .problems import OrganismProblems

BEHAVIOUR = Version(1)


@dataclass(frozen=True)
class RLConfig:
    """One RL run's settings. The same knobs in TRL's ``GRPOConfig`` (for readers who know it): ``clip_low`` /
    ``clip_high`` = ``epsilon`` / ``epsilon_high``, ``kl_coef`` = ``beta``, ``updates_per_batch`` =
    ``num_iterations``, ``loss_agg`` = ``loss_type`` ("seq-mean-token-mean" is TRL's "grpo", "token-mean" its
    "dapo"), ``samples_per_prompt`` = ``num_generations``, ``max_new_tokens`` = ``max_completion_length``."""

    steps: int = 100  # rollout batches
    prompts_per_step: int = 16  # P: training problems per batch
    samples_per_prompt: int = 8  # G: responses per problem, the group advantages are normalised over
    lr: float = 3e-4  # AdamW, constant
    updates_per_batch: int = 1  # mini-batch updates per rollout batch; >1 reuses rollouts (ratio != 1)
    clip_low: float = 0.2  # the ratio pi/pi_old is clipped to [1 - clip_low, 1 + clip_high]
    clip_high: float = 0.2  # DAPO's "clip-higher" raises this to 0.28
    kl_coef: float = 0.0  # weight of the k3 estimate of KL(pi || pi_ref) per token; 0 = no KL term
    loss_agg: str = "seq-mean-token-mean"  # GRPO: mean over each response, then over responses; or "token-mean"
    skip_uniform_groups: bool = False  # drop groups whose rewards are all equal (they carry no advantage)
    # divergence-weighted advantage (the paper's diagnostic): A_t -> w_t A_t, w_t = 1 + s (sigmoid(alpha KL_t) - 1/2),
    # w_t detached; KL_t is the k3 estimate on the sampled token of KL(pi_old || pi) ("old", the paper's) or
    # KL(pi_ref || pi) ("reference", the frozen base). KL_t to pi_old is 0 on a batch's first update, so the
    # weights act only when updates_per_batch > 1.
    weight_scale: float = 0.0  # s; 0 leaves every advantage as it is
    weight_alpha: float = 0.0  # alpha > 0 boosts high-divergence tokens, alpha < 0 low-divergence ones
    weight_divergence: str = "old"  # "old" or "reference"
    # not in the paper's formula, for a controlled test: divide each mini-batch's weights by their mean over its
    # response tokens (so a boost is not just a larger step), and the control that permutes them across those
    # tokens (the same weights, at random tokens)
    weight_normalise: bool = added(False)
    weight_shuffle: bool = added(False)
    max_new_tokens: int = 320  # response length limit; a response cut here earns reward 0
    temperature: float = 1.0
    # the policy is saved at steps 1, 2, 4, 8, ... (the high-divergence set forms early) and every
    # checkpoint_every steps; the evolution analysis reads them
    checkpoint_every: int = 25
    eval_every: int = 20  # log held-out pass@1 every this many steps
    eval_problems: int = 64  # held-out problems in that log (a slice, for the curve only)
    eval_samples: int = 4
    seed: int = 0

    @property
    def rollouts(self) -> int:
        """Responses sampled per step."""
        return self.prompts_per_step * self.samples_per_prompt

    def checkpoint_steps(self) -> list[int]:
        """The steps whose policy is saved: powers of two, multiples of ``checkpoint_every``, the last."""
        powers = {2**k for k in range(self.steps.bit_length()) if 2**k <= self.steps}
        regular = set(range(self.checkpoint_every, self.steps + 1, self.checkpoint_every))
        return sorted(powers | regular | {self.steps})

    def __post_init__(self):
        if self.loss_agg not in ("seq-mean-token-mean", "token-mean"):
            raise ValueError(f"loss_agg must be 'seq-mean-token-mean' or 'token-mean', got {self.loss_agg!r}")
        if self.weight_divergence not in ("old", "reference"):
            raise ValueError(f"weight_divergence must be 'old' or 'reference', got {self.weight_divergence!r}")


SIMPLERL_LIKE = RLConfig(kl_coef=0.05)
DAPO_LIKE = RLConfig(clip_high=0.28, loss_agg="token-mean", skip_uniform_groups=True)


def group_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """(r - mean) / (std + 1e-6) within each group; ``rewards`` is [P, G]. A uniform group gets zeros."""
    mean = rewards.mean(dim=1, keepdim=True)
    std = rewards.std(dim=1, keepdim=True, unbiased=False)
    return (rewards - mean) / (std + 1e-6)


def k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimate of KL(pi || ref) from the sampled token: r - 1 - log r with r = ref/pi; >= 0."""
    log_ratio = ref_logp - logp
    return log_ratio.exp() - 1 - log_ratio


def token_kl(logp, anchor_logp) -> torch.Tensor:
    """KL_t of the weighting: k3 of KL(anchor || pi) on the sampled token, no gradient (k3(a, b) estimates
    KL(a-sampled || b) with ratio b/a: here pi/anchor)."""
    return k3(anchor_logp, logp.detach()).detach()


def advantage_weights(logp, anchor_logp, scale: float, alpha: float) -> torch.Tensor:
    """w_t = 1 + s (sigmoid(alpha KL_t) - 1/2), KL_t = ``token_kl``; no gradient."""
    return 1 + scale * (torch.sigmoid(alpha * token_kl(logp, anchor_logp)) - 0.5)


def arranged_weights(w: torch.Tensor, mask: torch.Tensor, normalise: bool, shuffle: torch.Generator | None):
    """The mini-batch's weights ``w`` over its response tokens (``mask``), permuted across them with ``shuffle``
    (the control) and divided by their mean there if ``normalise``."""
    w, on = w.clone(), mask.bool()
    if shuffle is not None:
        values = w[on]
        w[on] = values[torch.randperm(len(values), generator=shuffle)]
    if normalise and on.any():
        w = w / w[on].mean()
    return w


def clipped_surrogate(logp, old_logp, advantages, clip_low, clip_high):
    """Per-token PPO loss -min(r A, clip(r) A) and where clipping was active; advantages broadcast per token."""
    ratio = (logp - old_logp).exp()
    unclipped = ratio * advantages
    clipped = ratio.clamp(1 - clip_low, 1 + clip_high) * advantages
    return -torch.minimum(unclipped, clipped), (clipped < unclipped)


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """token-mean: every token counts once across the batch (DAPO); seq-mean-token-mean: every response does."""
    if mode == "token-mean":
        return (per_token * mask).sum() / mask.sum().clamp(min=1)
    per_seq = (per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    return per_seq.mean()


def train_rl(base, tokenizer, config: RLConfig, out_dir: Path | None = None, show_progress: bool = True,
             desc: str = "RL"):
    """RL-train a copy of ``base``; returns (policy, per-step log). Checkpoints go to ``out_dir/checkpoints``."""
    policy, reference = copy.deepcopy(base).train(), base.eval()
    opt = torch.optim.AdamW(policy.parameters(), lr=config.lr, weight_decay=0.0)
    eval_set = OrganismProblems(task.sample_problems(config.eval_problems, "held_out",
                                                     seed=seeding.derive(config.seed, "eval-problems")), tokenizer)
    log, saved, start = [], set(config.checkpoint_steps()), time.perf_counter()
    for step in progress.bar(range(1, config.steps + 1), desc=desc, unit="step", disable=not show_progress):
        stats = rl_step(policy, reference, opt, tokenizer, config, step)
        if step % config.eval_every == 0 or step == config.steps:
            acc = evaluation.evaluate(policy.eval(), eval_set, config.eval_samples, Decoding.for_problems(
                eval_set, config.max_new_tokens, seed=seeding.derive(config.seed, "eval")))
            stats["heldout_pass@1"] = acc.avg
        if out_dir is not None and step in saved:
            save(policy, tokenizer, Path(out_dir) / "checkpoints" / f"step_{step:04d}")
        stats["seconds"] = time.perf_counter() - start  # wall time so far (the cost of a cold build)
        log.append(stats)
    return policy.eval(), log


def rl_step(policy, reference, opt, tokenizer, config: RLConfig, step: int) -> dict:
    P, G = config.prompts_per_step, config.samples_per_prompt
    problems = OrganismProblems(task.sample_problems(P, "train", seed=seeding.derive(config.seed, "rl-problems", step)),
                                tokenizer)
    # every output row drawable (no vocabulary slice), as the policy's gradient sees it
    decoding = Decoding(config.max_new_tokens, problems.stop_ids, tokenizer.pad_token_id,
                        temperature=config.temperature, seed=seeding.derive(config.seed, "rollout", step))
    rollouts = decode(policy.eval(), problems.prompts, decoding, n=G)
    rewards = torch.tensor(problems.rewards(rollouts), dtype=torch.float).view(P, G)
    advantages = group_advantages(rewards).flatten()
    batch = make_batch([problems.prompts[i] for i in rollouts.prompt_index], rollouts.with_stop_tokens(),
                       tokenizer.pad_token_id,
                       max_len=policy.config.max_position_embeddings)
    keep = torch.ones(P * G, dtype=torch.bool)
    if config.skip_uniform_groups:
        keep = (rewards.max(dim=1).values != rewards.min(dim=1).values).repeat_interleave(G)
    rows = keep.nonzero().squeeze(-1)
    order = torch.Generator().manual_seed(seeding.derive(config.seed, "minibatches", step))
    chunks = rows[torch.randperm(len(rows), generator=order)].chunk(config.updates_per_batch) if len(rows) else ()
    with torch.no_grad():
        ref_logp = token_logprobs(reference, batch)
        # pi_old is the policy before this batch's first update, so that update's own forward pass gives its
        # rows' old log-probs; only the other rows need a pass now
        old_logp = torch.zeros_like(ref_logp)
        rest = torch.ones(P * G, dtype=torch.bool)
        if chunks:
            rest[chunks[0]] = False
        if rest.any():
            old_logp[rest] = token_logprobs(policy.eval(), _rows(batch, rest.nonzero().squeeze(-1)))
    stats = {"step": step, "reward": rewards.mean().item(),
             "response_length": batch.response_mask.sum(-1).mean().item(),
             "groups_kept": keep.view(P, G)[:, 0].float().mean().item(), "clip_frac": 0.0,
             "weight_mean": 1.0, "weight_max": 1.0, "weighted_share": 0.0, "weighted_updates": 0}
    policy.train()
    clip_fracs, weights, later_kl, later_ids = [], [], [], []
    for i, chunk in enumerate(chunks):
        sub = _rows(batch, chunk)
        logp = token_logprobs(policy, sub)
        if i == 0:
            old_logp[chunk] = logp.detach()
        anchor = old_logp[chunk] if config.weight_divergence == "old" else ref_logp[chunk]
        shuffle = torch.Generator().manual_seed(seeding.derive(config.seed, "weight-shuffle", step, i)) \
            if config.weight_shuffle else None
        w = arranged_weights(advantage_weights(logp, anchor, config.weight_scale, config.weight_alpha),
                             sub.response_mask, config.weight_normalise, shuffle)
        if i > 0:  # what the weights read, logged in every arm (KL_t to pi_old is 0 on the first update)
            on = sub.response_mask.bool()
            later_kl.append(token_kl(logp, anchor)[on])
            later_ids.append(sub.ids[:, 1:][on])
        per_token, clipped = clipped_surrogate(logp, old_logp[chunk], w * advantages[chunk, None],
                                               config.clip_low, config.clip_high)
        if config.kl_coef:
            per_token = per_token + config.kl_coef * k3(logp, ref_logp[chunk])
        loss = aggregate(per_token, sub.response_mask, config.loss_agg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        clip_fracs.append(aggregate(clipped.float(), sub.response_mask, "token-mean").item())
        weights.append(w[sub.response_mask.bool()])
    stats["kl_to_base"] = aggregate(k3(old_logp, ref_logp), batch.response_mask, "token-mean").item()
    if not chunks:
        return stats
    stats["clip_frac"] = sum(clip_fracs) / len(clip_fracs)
    w = torch.cat(weights)
    nontrivial = [(x - 1).abs().gt(1e-6).any().item() for x in weights]
    stats.update(weight_mean=w.mean().item(), weight_max=w.max().item(),
                 weighted_share=(w - 1).abs().gt(1e-6).float().mean().item(), weighted_updates=int(sum(nontrivial)))
    if later_kl:
        stats.update(kl_quantiles(torch.cat(later_kl), torch.cat(later_ids)))
    return stats


KL_LOGGED = (0.5, 0.9, 0.99)


def kl_quantiles(kl: torch.Tensor, ids: torch.Tensor) -> dict:
    """The KL_t distribution a weighting reads (its quantiles, to fix alpha before any accuracy is seen), and
    which tokens sit in its top decile against all tokens (the mechanism check), as token id -> count."""
    q = torch.quantile(kl.double(), torch.tensor(KL_LOGGED, dtype=torch.double))
    top = ids[kl >= q[KL_LOGGED.index(0.9)]]
    count = lambda t: {str(int(k)): int(v) for k, v in zip(*torch.unique(t, return_counts=True))}
    return {**{f"kl_q{round(100 * p)}": float(v) for p, v in zip(KL_LOGGED, q)},
            "top_decile_tokens": count(top), "tokens": count(ids)}


def _rows(batch, index):
    return Batch(batch.ids[index], batch.attention_mask[index], batch.response_mask[index])


def entry(config: RLConfig, base: Path):
    """The cache entry of an RL run from model directory ``base`` (``storage.tuned_entry``)."""
    return storage.tuned_entry("rl", __name__, config, base)


def trained(base: Path, config: RLConfig, cache: ArtifactCache, show_progress: bool = True,
            name: str = "run") -> Path:
    """An RL run from model directory ``base`` with ``config`` as given (its own seed included),
    cached; returns the final model's directory (checkpoints and ``log.json`` lie beside it)."""
    return storage.tuned(entry(config, base), base, cache,
                         lambda model, tok, out: train_rl(model, tok, config, out, show_progress, f"RL {name}"))
