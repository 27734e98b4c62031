"""Run by the launcher test: the cached entry points (shift tables, cross-sampling sweeps) under torchrun.

    python -m torch.distributed.run --nproc-per-node 2 tests/ranked_cache.py PAIR_DIR CACHE_DIR OUT_DIR PER_UNIT BATCH

PER_UNIT and BATCH cut the work (prompts per unit, sequences per batch): execution settings, which change nothing
in the results.
"""

import sys
from pathlib import Path

from tokenshift.analyses import cross_sampling, reference_responses, shift_scores, shifts
from tokenshift.core import parallel
from tokenshift.core.cache import ArtifactCache
from tokenshift.models.loading import load_tokenizer
from tokenshift.organism import task
from tokenshift.organism.problems import OrganismProblems

pair, cache_dir, out = map(Path, sys.argv[1:4])
per_unit, batch = map(int, sys.argv[4:6])
problems = OrganismProblems(task.sample_problems(5, "held_out", seed=0), load_tokenizer(pair / "base"))
sampling = reference_responses.SamplingConfig(samples_per_problem=2, max_new_tokens=8, prompts_per_unit=per_unit,
                                               batch_size=batch)
scoring = shift_scores.ScoringConfig(responses_per_unit=3)
sweep = cross_sampling.SweepConfig(eps_grid=(float("inf"), 0.05), samples_per_problem=2, max_new_tokens=8,
                                   prompts_per_unit=per_unit, batch_size=batch)
cache = ArtifactCache(cache_dir)
rank = parallel.current().rank
table = shifts.shift_table(pair / "base", pair / "tuned", problems, sampling, scoring, cache=cache, show_progress=False)
swept = cross_sampling.sweep(pair / "base", pair / "tuned", problems, sweep, cache, show_progress=False)
table.write_parquet(out / f"shifts-{rank}.parquet")
swept.write_parquet(out / f"sweep-{rank}.parquet")
