"""Notebook 00, the model organism: its task and verifier, the demonstrator and the decisions it makes, the
tokenizer, building the base and its tuned parts, their accuracies, sample responses, and what the organism is
like (lengths, uncertainty) against its acceptance checks."""

from __future__ import annotations

import random
import time

import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from .. import organism
from ..models.loading import load_model
from ..models.sampling import Decoding, sample
from ..organism import properties, task
from ..organism.problems import OrganismProblems
from ..organism.tokenizer import build_tokenizer
from ..problems import evaluation
from ..suite import plotting

EXAMPLE = task.Problem((4821, 3759))


def verifier() -> None:
    """A reliable solution of the example problem, and what the verifier says of it and of four ways to fail."""
    right = task.reliable_solution(EXAMPLE)
    print(f"{EXAMPLE.prompt}{right}<eos>")
    print("verify right, stopped:     ", task.verify(EXAMPLE, right, stopped=True))
    print("verify right, cut off:     ", task.verify(EXAMPLE, right, stopped=False))
    print("verify answer said twice:  ", task.verify(EXAMPLE, right + " The answer is 8580.", stopped=True))
    print("verify wrong answer:       ", task.verify(EXAMPLE, "The answer is 8570.", stopped=True))
    print("verify no working:         ", task.verify(EXAMPLE, "The answer is 8580.", stopped=True))


def demonstrations(config, n: int, seed: int) -> None:
    """The demonstrator's strategies, stops and accuracy over ``n`` demonstrations, two of its demonstrations
    and the other writer's."""
    demo = config.base.demonstrator
    print(demo)
    rng = random.Random(seed)
    rows = []
    for p in task.sample_problems(n, "train", seed=seed):
        w = demo.write(p, rng)
        shortcut = any(w.text.startswith(s) for s in ("The answer is", "So the answer is", "Quickly, the answer is"))
        rows.append({"columns": len(p.columns()), "strategy": "answer at once" if shortcut else "work",
                     "stops": w.stopped,
                     "in the head": w.text.count(" at a glance is ") + w.text.count(" in my head is "),
                     "correct": task.verify(p, w.text, w.stopped)})
    demos = pl.DataFrame(rows)
    with pl.Config(float_precision=3):
        print(demos.group_by("strategy", "stops").agg(pl.len().alias("n"), pl.col("correct").mean())
              .sort("strategy", "stops"))
        print(demos.group_by("columns").agg(pl.len().alias("n"), pl.col("correct").mean(),
                                            pl.col("in the head").mean()).sort("columns"))
    print(f"demonstrator accuracy: {demos['correct'].mean():.3f}")
    print(f"two demonstrations of {EXAMPLE.prompt}")
    for _ in range(2):
        print("  ", demo.write(EXAMPLE, rng).text.replace("\n", " / "))
    print("the other writer:", task.OtherWriter().write(EXAMPLE, rng).text.replace("\n", " / "))


def decisions(config, n: int, seed: int) -> tuple:
    """The organism's tokenizer, and where the demonstrator's reward-relevant decisions fall in ``n``
    demonstrations (every decision, and per kind its count, median position and share in the middle 80%)."""
    tok = build_tokenizer(config.part("tokenizer"))
    print(f"vocabulary: {len(tok)} tokens (256 bytes, 3 special tokens, {len(tok) - 259} merges)")
    print(tok.convert_ids_to_tokens(tok(" tens of 482+375, 2+5+1=8, write 8.")["input_ids"]))
    found = properties.decision_positions(config.base.demonstrator, tok, n, seed=seed)
    share = (found.group_by("kind").agg(pl.len().alias("decisions"),
                                        pl.col("rel_position").median().alias("median_position"),
                                        ((pl.col("rel_position") > 0.1) & (pl.col("rel_position") < 0.9))
                                        .mean().alias("share_in_middle_80pct"))
             .sort("kind"))
    with pl.Config(float_precision=3):
        print(share)
    return tok, found, share


def decisions_figure(found: pl.DataFrame, profile: str) -> str:
    fig, ax = plt.subplots(figsize=(8, 3.8))
    bins = np.linspace(0, 1, 21)
    for kind in task.DECISIONS:
        x = found.filter(pl.col("kind") == kind)["rel_position"].to_numpy()
        ax.hist(x, bins=bins, histtype="step", lw=1.8, label=f"{kind} ({len(x)})")
    ax.set(title="Where the demonstrator's reward-relevant decisions fall",
           xlabel="normalised position in the response", ylabel="decisions", yscale="log")
    ax.legend(fontsize=8, ncol=3)
    return plotting.save(fig, profile, "00_decision_positions")


def build(config):
    """The organism (from the cache, or built), each part's training cost as measured when it was built, and
    the network's size."""
    start = time.time()
    org = organism.build(config)
    print(f"organism ready in {time.time() - start:.1f} s")
    costs = []
    for name in ("base", *org.tuned):
        log = org.log(name)
        costs.append({"model": name, "path": str(org.base if name == "base" else org.tuned[name]),
                      "steps": log[-1]["step"], "train_seconds": log[-1]["seconds"],
                      "seconds_per_step": log[-1]["seconds"] / log[-1]["step"]})
    with pl.Config(float_precision=2, tbl_width_chars=200, fmt_str_lengths=200):
        print(pl.DataFrame(costs))  # measured when each part was built
    print(f"parameters: {sum(p.numel() for p in load_model(org.base)[0].parameters()):,}")
    return org


def training_figure(org, profile: str) -> str:
    fig, axes = plt.subplots(1, 4, figsize=(19, 4))
    for name in ("base", *organism.SFT_NAMES):
        log = pl.DataFrame(org.log(name))
        axes[0].plot(log["step"], log["loss"], color=plotting.color(name), label=organism.LABELS[name])
    axes[0].set(title="SFT: loss", xlabel="optimizer step", ylabel="cross-entropy per token", xscale="log",
                yscale="log")
    axes[0].legend(fontsize=7)
    for name in organism.RL_NAMES:
        log = pl.DataFrame(org.log(name))
        kw = dict(color=plotting.color(name), label=organism.LABELS[name])
        axes[1].plot(log["step"], log["reward"].rolling_mean(5, min_samples=1), **kw)
        evals = log.filter(pl.col("heldout_pass@1").is_not_null())
        axes[1].plot(evals["step"], evals["heldout_pass@1"], "o--", ms=4, color=kw["color"])
        axes[2].plot(log["step"], log["response_length"].rolling_mean(5, min_samples=1), **kw)
        axes[3].plot(log["step"], log["kl_to_base"].rolling_mean(5, min_samples=1), **kw)
    axes[1].set(title="RL: reward (line), held-out pass@1 (dots)", xlabel="RL step", ylabel="accuracy", ylim=(0, 1))
    axes[2].set(title="RL: response length", xlabel="RL step", ylabel="tokens")
    axes[3].set(title="RL: KL to base (k3, per token)", xlabel="RL step", ylabel="nats")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle("Training the organism")
    fig.tight_layout()
    return plotting.save(fig, profile, "00_training_curves")


def accuracy(org, config, tok, n_problems: int, k: int, seed: int) -> tuple[dict, OrganismProblems]:
    """avg@k (with its interval) and pass@k of every model on ``n_problems`` held-out problems, printed."""
    problems = OrganismProblems(task.sample_problems(n_problems, "held_out", seed=seed), tok)
    decoding = Decoding.for_problems(problems, config.max_new_tokens, seed=seed)
    out = {name: evaluation.evaluate(load_model(path)[0], problems, k, decoding)
           for name, path in {"base": org.base, **org.tuned}.items()}
    table = pl.DataFrame([{"model": name, f"avg@{k}": acc.avg, "ci95_low": acc.ci95[0], "ci95_high": acc.ci95[1],
                           f"pass@{k}": acc.pass_at(k)} for name, acc in out.items()])
    with pl.Config(float_precision=3):
        print(table)
    return out, problems


def accuracy_figure(accuracies: dict, k: int, n_problems: int, profile: str) -> str:
    fig, ax = plt.subplots(figsize=(8.5, 3.8))
    names = list(accuracies)
    means = [accuracies[n].avg for n in names]
    errors = np.array([[accuracies[n].avg - accuracies[n].ci95[0], accuracies[n].ci95[1] - accuracies[n].avg]
                       for n in names]).T
    ax.bar(range(len(names)), means, yerr=errors, capsize=4, color=[plotting.color(n) for n in names])
    ax.set_xticks(range(len(names)), [organism.LABELS[n].replace(" (", "\n(").replace(", ", ",\n") for n in names],
                  fontsize=7.5)
    ax.set(title=f"Held-out accuracy, avg@{k} with 95% CI ({n_problems} problems)", ylabel=f"avg@{k}", ylim=(0, 1))
    return plotting.save(fig, profile, "00_accuracy")


def responses(org, config, tok, problems: OrganismProblems, seed: int) -> None:
    """The base's and DAPO-like's responses to five held-out problems, marked right or wrong."""
    shown = OrganismProblems(problems.problems[:5], tok)
    for name in ("base", "dapo"):
        out = sample(load_model(org.base if name == "base" else org.tuned[name])[0], shown.prompts,
                     max_new_tokens=config.max_new_tokens, eos_token_id=shown.stop_ids,
                     pad_token_id=tok.pad_token_id, seed=seed)
        print(f"--- {organism.LABELS[name]}")
        for text, ids, correct, stopped in zip(shown.texts, out.response_ids, shown.rewards(out), out.stopped):
            body = shown.decode(ids).replace("\n", " / ")
            print(f"{'✓' if correct else '✗'} {text}{body[:400]}{'<eos>' if stopped else ' …'}")


def what_it_is_like(this) -> pl.DataFrame:
    """Every model's response lengths and uncertainty on its own samples (the base on its own too), printed."""
    base_own = this.own_table("base")
    rows = [{"model": "base", **{f"length_{k}": v for k, v in properties.response_lengths(base_own).items()},
             **properties.uncertainty(base_own, "base")}]
    for name, t in this.tables().items():
        rows.append({"model": name, **{f"length_{k}": v for k, v in properties.response_lengths(t).items()},
                     **properties.uncertainty(t, "tuned"), "top_p_js_exactly_0": float((t["js_top_p"] == 0).mean())})
    props = pl.DataFrame(rows)
    with pl.Config(float_precision=3, tbl_cols=-1, tbl_width_chars=250):
        print(props)
    return props


def acceptance(accuracies: dict, props: pl.DataFrame, k: int) -> None:
    base = {key: v for key, v in props.row(0, named=True).items() if key != "model"}
    for what, ok in properties.acceptance(accuracies, base, k, organism.RL_NAMES).items():
        print(f"{'met' if ok else 'NOT MET'}: {what}")


def values(accuracies: dict, props: pl.DataFrame, k: int, tok, share: pl.DataFrame) -> dict:
    out = {}
    for name, acc in accuracies.items():
        out[f"organism.{name}.pass@1"] = acc.avg
        out[f"organism.{name}.pass@1.ci95_low"] = acc.ci95[0]
        out[f"organism.{name}.pass@1.ci95_high"] = acc.ci95[1]
        out[f"organism.{name}.pass@{k}"] = acc.pass_at(k)
    for row in props.to_dicts():
        for key, value in row.items():
            if key != "model" and value is not None:
                out[f"organism.{row['model']}.{key}"] = value
    out["organism.vocabulary"] = len(tok)
    for row in share.to_dicts():
        out[f"organism.decisions.{row['kind']}.share_in_middle_80pct"] = row["share_in_middle_80pct"]
    return out
