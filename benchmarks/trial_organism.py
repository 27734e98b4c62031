"""Would a cheaper organism (fewer rollouts per RL step, fewer layers) keep its premise? The cost/science trade
behind the RL-step target.

    .venv/bin/python benchmarks/trial_organism.py --prompts-per-step 8
    .venv/bin/python benchmarks/trial_organism.py --layers 2

Builds the organism's base (``--layers`` deep; the default's is read from the artifact cache) and its four tuned
parts with ``--prompts-per-step`` problems per RL step (8 samples each, as the default) and the SFT controls
matched to that budget, then evaluates every model on 200 held-out problems x 8 samples with a seed other than
notebook 00's. The acceptance test is the issue's premise, fixed before the run: both RL runs at least twice
the base's avg@8. Took 8 minutes on two cores at 8 problems per step, 13 at 2 layers.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch
from tokenshift.models.loading import load_model
from tokenshift.models.sampling import Decoding
from tokenshift.organism import build, properties, task
from tokenshift.organism.problems import OrganismProblems
from tokenshift.problems import evaluation
from tokenshift.suite import profiles


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts-per-step", type=int, default=16)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7, help="of the held-out problems and evaluation samples")
    args = parser.parse_args()
    default = profiles.organism_config("default")
    rollouts = args.prompts_per_step * default.dapo.samples_per_prompt
    config = dataclasses.replace(
        default,
        shape=dataclasses.replace(default.shape, num_layers=args.layers),
        simplerl=dataclasses.replace(default.simplerl, prompts_per_step=args.prompts_per_step),
        dapo=dataclasses.replace(default.dapo, prompts_per_step=args.prompts_per_step),
        sft_offpolicy=dataclasses.replace(default.sft_offpolicy, batch_size=rollouts),
        sft_rejection=dataclasses.replace(default.sft_rejection, batch_size=rollouts, rollouts=rollouts))
    start = time.perf_counter()
    org = build(config)
    print(f"{args.layers} layers, {rollouts} rollouts per step: built in {(time.perf_counter() - start) / 60:.1f} min "
          f"(0 where the artifact cache had every part)")
    torch.set_num_threads(2)
    tok = load_model(org.base)[1]
    problems = OrganismProblems(task.sample_problems(200, "held_out", seed=args.seed), tok)
    accuracy = {}
    for name, path in {"base": org.base, **org.tuned}.items():
        accuracy[name] = evaluation.evaluate(load_model(path)[0], problems, 8,
                                             Decoding.for_problems(problems, config.max_new_tokens, seed=args.seed))
        print(f"{name}: {accuracy[name].summary()}, pass@8 {accuracy[name].pass_at(8):.3f}", flush=True)
    base = accuracy["base"].avg
    for name in ("simplerl", "dapo"):
        ratio = accuracy[name].avg / base
        kept = ratio >= properties.RL_GAIN
        print(f"premise, {name}: {ratio:.2f}x the base ({'kept' if kept else 'NOT kept'}: needs >= "
              f"{properties.RL_GAIN:g}x)")


if __name__ == "__main__":
    main()
