"""Notebook 05's experiment, divergence-weighted advantages on the organism, as a protocol fixed before it runs:
a pilot of the baseline picks the learning rate and sets alpha, the power the paired seeds give is stated, then
every arm trains on every test seed and each comparison is judged by the rule fixed in advance
(``analyses.weighting``: the power rule, paired sign-flip tests)."""

from __future__ import annotations

import dataclasses
import statistics
import textwrap
import time
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from .. import organism
from ..analyses import weighting
from ..core import seeding
from ..models.loading import load_model
from ..models.sampling import Decoding
from ..organism import task
from ..organism.problems import OrganismProblems
from ..problems import evaluation
from ..suite import plotting, profiles

BASELINE = "DAPO-like baseline"
COMPARISONS = [("weighting.high_boost_helps", "high-divergence boost", BASELINE),
               ("weighting.low_boost_helps", "low-divergence boost", BASELINE),
               ("weighting.targeting_matters", "high-divergence boost", "high boost, weights shuffled")]
PAPER_COMPARISON = ("weighting.high_boost_helps", "high boost, paper's weights", BASELINE)
COLORS = [plotting.color("dapo"), "#9467bd", "#17becf", "0.55", "#8c564b"]


def arms(lr: float, alpha: float, weight_scale: float, paper_weights: bool) -> dict[str, dict]:
    """Each arm's changes to the RL run: the baseline, the high and low boosts and the shuffled control
    (weights normalised per mini-batch), and the paper's weights as published."""
    weighted = dict(lr=lr, weight_scale=weight_scale, weight_normalise=True)
    out = {BASELINE: dict(lr=lr, weight_normalise=True),
           "high-divergence boost": dict(weighted, weight_alpha=alpha),
           "low-divergence boost": dict(weighted, weight_alpha=-alpha),
           "high boost, weights shuffled": dict(weighted, weight_alpha=alpha, weight_shuffle=True)}
    if paper_weights:  # w_t as the paper defines it, not normalised per mini-batch
        out["high boost, paper's weights"] = dict(lr=lr, weight_scale=weight_scale, weight_alpha=alpha)
    return out


def slug(name: str) -> str:
    return name.lower().replace(",", "").replace("'", "").replace(" ", "_").replace("-", "_")


@dataclass
class Experiment:
    """The notebook's parameters; each step fills in what the next reads."""

    profile: str
    seed: int
    pilot_seeds: list[int]
    pilot_lrs: list[float]
    seeds: list[int]
    size_seeds: bool
    max_seeds: int
    steps: int
    prompts_per_step: int
    updates_per_batch: int
    weight_scale: float
    paper_weights: bool
    top_decile_share: float
    n_validation_problems: int
    n_test_problems: int
    eval_samples: int
    workers: int

    def prepare(self) -> None:
        """The organism, the shortened DAPO run every arm starts from, the validation and test problems, and the
        base's accuracy on both (printed)."""
        self.config = profiles.organism_config(self.profile)
        self.org = organism.build(self.config)
        base_model, self.tok = load_model(self.org.base)
        # one checkpoint and one held-out evaluation per run, at its end (accuracy is measured below)
        self.dapo = dataclasses.replace(self.config.part("dapo"), steps=self.steps,
                                        updates_per_batch=self.updates_per_batch,
                                        prompts_per_step=self.prompts_per_step, checkpoint_every=self.steps,
                                        eval_every=self.steps)
        self.validation = OrganismProblems(task.sample_problems(self.n_validation_problems, "validation",
                                                                seed=self.seed), self.tok)
        self.test = OrganismProblems(task.sample_problems(self.n_test_problems, "test", seed=self.seed), self.tok)
        self.base_validation, self.base_test = self.accuracy(base_model, self.validation), self.accuracy(base_model,
                                                                                                          self.test)
        print(f"base: validation {self.base_validation.summary()}; test {self.base_test.summary()}")

    def accuracy(self, model, problems) -> evaluation.Accuracy:
        return evaluation.evaluate(model, problems, self.eval_samples,
                                   Decoding.for_problems(problems, self.config.max_new_tokens, seed=self.seed))

    def train(self, runs: dict[tuple, dict]) -> dict[tuple, object]:
        """RL runs keyed by (arm, seed) -> the RLConfig changes; trained ``workers`` at a time; key -> model
        directory."""
        named = {f"{arm}, seed {s}": dataclasses.replace(self.dapo, seed=seeding.derive(s, "weighted-advantages"),
                                                         **changes)
                 for (arm, s), changes in runs.items()}
        paths = organism.rl_runs(self.config, named, workers=self.workers)
        return {key: paths[name] for key, name in zip(runs, named)}

    def pilot(self) -> None:
        """The baseline on the pilot seeds at each learning rate in turn, until one passes
        (``weighting.pilot_check``); printed."""
        start = time.time()
        self.pilot_rows, self.pilot_logs = [], {}
        for lr in self.pilot_lrs:
            paths = self.train({("pilot", s): dict(lr=lr) for s in self.pilot_seeds})
            accs = [self.accuracy(load_model(paths["pilot", s])[0], self.validation).avg for s in self.pilot_seeds]
            stable, why = weighting.pilot_check(accs, (self.base_validation.avg, *self.base_validation.ci95))
            self.pilot_rows += [{"lr": lr, "seed": s, "validation_accuracy": a} for s, a in zip(self.pilot_seeds, accs)]
            self.pilot_logs[lr] = [organism.run_log(paths["pilot", s]) for s in self.pilot_seeds]
            print(f"lr {lr:g}: validation accuracy per seed {[round(a, 3) for a in accs]} -> "
                  f"{'stable' if stable else 'not stable'} ({why})")
            if stable:
                break
        self.lr, self.stable = lr, stable
        self.pilot_sd = statistics.stdev(accs)
        self.untestable = "" if stable else f"no learning rate passed the pilot (the last: {why})"
        print(f"the experiment runs at lr {lr:g}" + ("" if stable else ": NO learning rate passed the pilot, so the "
                                                     "verdicts below are not testable")
              + f"; pilot took {time.time() - start:.0f} s")

    def power(self) -> None:
        """alpha from the pilot's KL_t, the seeds power 0.8 at the paper's effect needs (and, with
        ``size_seeds``, the seeds to run), and the minimum detectable effect of the seeds that run; printed."""
        try:  # alpha is set even without a stable baseline, so that every arm still runs and shows its numbers
            self.kl_q90 = weighting.kl_q90(self.pilot_logs[self.lr])
            self.alpha = weighting.alpha_for(self.kl_q90, self.top_decile_share)
        except ValueError as e:  # then alpha = 0 makes every weight 1: the arms repeat the baseline
            self.kl_q90, self.alpha, self.untestable = 0.0, 0.0, f"alpha cannot be set: {e}"
            print(f"{self.untestable}. Every weight is 1, and the verdicts are not testable")
        # a run's test accuracy varies with its training seed (the pilot's spread, from few seeds) and with the
        # evaluation's own sampling (the base's standard error on the test set); a paired difference carries both
        # twice
        eval_se = (self.base_test.ci95[1] - self.base_test.ci95[0]) / (2 * 1.96)
        difference_sd = float(np.sqrt(2 * (self.pilot_sd**2 + eval_se**2)))
        self.effect = weighting.paper_effect()
        self.needed = weighting.seeds_needed(difference_sd, self.effect)
        n_arms = 5 if self.paper_weights else 4
        print(f"power 0.8 at the paper's effect (+{self.effect:.3f}) needs {self.needed} paired seeds: {self.needed} "
              f"x {n_arms} arms = {self.needed * n_arms} runs of {self.steps} steps (docs/organism.md gives a run's "
              "measured time)")
        if self.size_seeds:
            self.seeds = list(range(min(self.needed, self.max_seeds)))
            print(f"size_seeds: the arms run on {len(self.seeds)} seeds"
                  + (f" (capped by max_seeds={self.max_seeds})" if self.needed > self.max_seeds else ""))
        self.mde = weighting.minimum_detectable_effect(difference_sd, len(self.seeds))
        print(f"KL_t to pi_old on later updates (pilot, median over steps): 90th percentile {self.kl_q90:.3g} -> "
              f"|alpha| = {self.alpha:.4g}")
        print(f"with {len(self.seeds)} paired seeds, the pilot's seed std {self.pilot_sd:.3f} and the evaluation's "
              f"standard error {eval_se:.3f} (a difference's std ~ {difference_sd:.3f}), the test detects a mean "
              f"difference of ~{self.mde:.3f} with 80% power at p < 0.05; the smallest p it can reach is "
              f"{weighting.smallest_p(len(self.seeds)):.3g}")

    def run_arms(self) -> None:
        """Every arm on every test seed: test accuracy per seed (printed), the seeds that did not learn, and the
        power rule's decision."""
        self.arms = arms(self.lr, self.alpha, self.weight_scale, self.paper_weights)
        start = time.time()
        self.paths = self.train({(arm, s): changes for arm, changes in self.arms.items() for s in self.seeds})
        results, logs = [], []
        for (arm, s), path in self.paths.items():
            log = organism.run_log(path)
            results.append({"arm": arm, "seed": s, "test_accuracy": self.accuracy(load_model(path)[0], self.test).avg,
                            "weighted_token_share": float(np.mean([r["weighted_share"] for r in log]))})
            logs += [{"arm": arm, "seed": s, **{k: v for k, v in r.items() if not isinstance(v, dict)}} for r in log]
        results, self.logs = pl.DataFrame(results), pl.DataFrame(logs)
        print(f"{len(self.paths)} runs in {time.time() - start:.0f} s")
        self.per_seed = results.pivot(on="arm", index="seed", values="test_accuracy")
        self.collapsed = {arm: int((results.filter(pl.col("arm") == arm)["test_accuracy"]
                                    <= self.base_test.ci95[1]).sum()) for arm in self.arms}
        with pl.Config(float_precision=3, tbl_cols=-1, tbl_width_chars=160):
            print(self.per_seed)
        print("seeds that did not learn (test accuracy within the base's interval):", self.collapsed)
        self.untestable = self.untestable or weighting.power_rule(self.mde, self.effect, self.collapsed[BASELINE],
                                                                  len(self.seeds))
        print("the power rule:", self.untestable or "the comparisons are testable")

    def figure(self) -> str:
        fig, axes = plt.subplots(1, 3, figsize=(18, 4.8), gridspec_kw={"width_ratios": [0.8, 1.4, 1.2]})
        pilot = pl.DataFrame(self.pilot_rows)
        for i, (_, g) in enumerate(pilot.group_by("lr", maintain_order=True)):
            axes[0].scatter([i] * len(g), g["validation_accuracy"], color=plotting.color("dapo"), zorder=3)
        axes[0].axhspan(*self.base_validation.ci95, color=plotting.color("base"), alpha=0.2, label="base, 95% interval")
        axes[0].set(xticks=range(pilot["lr"].n_unique()),
                    xticklabels=[f"lr {x:g}" for x in pilot["lr"].unique(maintain_order=True)],
                    title="Pilot: baseline per seed", ylabel=f"validation avg@{self.eval_samples}",
                    xlim=(-0.5, pilot["lr"].n_unique() - 0.5))
        axes[0].legend(fontsize=8)
        colors = dict(zip(self.arms, COLORS))
        for s in self.seeds:
            row = self.per_seed.filter(pl.col("seed") == s)
            axes[1].plot(range(len(self.arms)), [row[a][0] for a in self.arms], color="0.8", lw=1, zorder=1)
        for i, arm in enumerate(self.arms):
            axes[1].scatter([i] * len(self.seeds), self.per_seed[arm], color=colors[arm], zorder=3)
        axes[1].axhspan(*self.base_test.ci95, color=plotting.color("base"), alpha=0.2)
        axes[1].set(xticks=range(len(self.arms)), xticklabels=[textwrap.fill(a, 16) for a in self.arms],
                    title=f"Test accuracy per seed (lines join a seed's arms), lr {self.lr:g}",
                    ylabel=f"test avg@{self.eval_samples}")
        for arm in self.arms:
            c = self.logs.filter(pl.col("arm") == arm).group_by("step").agg(pl.col("reward").mean()).sort("step")
            axes[2].plot(c["step"], c["reward"], color=colors[arm], label=arm)
        axes[2].set(title=f"Training reward (mean over {len(self.seeds)} seeds)", xlabel="RL step", ylabel="reward")
        axes[2].legend(fontsize=8)
        fig.suptitle("Divergence-weighted advantages on the organism: a pilot, then paired arms")
        fig.tight_layout()
        return plotting.save(fig, self.profile, "05_weighted_advantages")

    def column(self, arm: str) -> np.ndarray:
        return self.per_seed.sort("seed")[arm].to_numpy()

    def verdicts(self) -> tuple[list, dict]:
        """Each comparison's verdict (paired, by the rule fixed in advance) and the experiment's findings."""
        comparisons = COMPARISONS + ([PAPER_COMPARISON] if self.paper_weights else [])
        verdicts, values = [], {}
        for claim, arm, other in comparisons:
            v = weighting.comparison_verdict(claim, f"weighting.{slug(arm)}_minus_{slug(other)}", self.column(arm),
                                             self.column(other), self.untestable, seed=self.seed)
            verdicts.append(v)
            values[f"{v.statistic}.p"] = weighting.sign_flip_p(self.column(arm) - self.column(other))
            print(v.line())
        for arm in self.arms:
            values[f"weighting.{slug(arm)}.test_accuracy_mean"] = float(self.column(arm).mean())
            values[f"weighting.{slug(arm)}.test_accuracy_std"] = float(self.column(arm).std(ddof=1))
            values[f"weighting.{slug(arm)}.seeds_not_learning"] = self.collapsed[arm]
        values.update({"weighting.lr": self.lr, "weighting.alpha": self.alpha, "weighting.kl_q90": self.kl_q90,
                       "weighting.minimum_detectable_effect": self.mde, "weighting.pilot_stable": float(self.stable),
                       "weighting.paper_effect": self.effect, "weighting.seeds_needed_for_power": self.needed,
                       "weighting.test_seeds": len(self.seeds)})
        observed_sd = float(np.std(self.column("high-divergence boost") - self.column(BASELINE), ddof=1))
        print(f"minimum detectable effect stated before the arms ran: {self.mde:.3f}; with the differences' observed "
              f"std ({observed_sd:.3f} for the high boost) it is "
              f"{weighting.minimum_detectable_effect(observed_sd, len(self.seeds)):.3f}")
        return verdicts, values

    def top_tokens(self) -> None:
        """The tokens the high boost weighted most (KL_t's top decile) and the categories' lift there; printed."""
        high_logs = [organism.run_log(self.paths["high-divergence boost", s]) for s in self.seeds]
        top, lift = weighting.top_decile_tokens(high_logs, self.tok.convert_ids_to_tokens)
        if not top:
            print("no KL_t was logged (no rollout batch was trained on a second update): nothing to check")
        with pl.Config(float_precision=3, tbl_rows=-1):
            print(pl.DataFrame(top))
        print("category lift in the top decile:", {k: round(v, 2) for k, v in lift.items()})
