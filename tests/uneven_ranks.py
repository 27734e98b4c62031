"""Run by the launcher test: two ranks whose units finish far apart, under a control timeout shorter than the
gap (the test injects a few seconds for what is hours on a GPU).

    TOKENSHIFT_CONTROL_TIMEOUT_S=3 python -m torch.distributed.run --nproc-per-node 2 tests/uneven_ranks.py \\
        OUT SECONDS units|barrier

"units": rank 1's units each take SECONDS longer, through ``run_units``; "barrier": rank 1 reaches a bare
collective SECONDS late (what the timeout is for); "workers": each rank runs two jobs in worker processes, which
write the world they see to OUT-<rank>-<job>."""

import sys
import time
from pathlib import Path

import polars as pl
from tokenshift.core import parallel


def slow_on_rank_1(unit: int, items: list[int]) -> pl.DataFrame:
    if parallel.current().rank == 1:
        time.sleep(float(sys.argv[2]))
    return pl.DataFrame({"unit": [unit] * len(items), "item": items})


def world_seen(job: tuple[Path, int, int]) -> None:
    out, rank, index = job
    Path(f"{out}-{rank}-{index}").write_text(str(parallel.current().world))


if __name__ == "__main__":  # worker processes import this file again
    out, delay, mode = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    me = parallel.current()
    if mode == "units":
        parallel.run_units(4, 1, slow_on_rank_1, out, out.with_name(f".{out.name}.parts"), show_progress=False)
    elif mode == "workers":
        parallel.in_processes(world_seen, [(out, me.rank, 0), (out, me.rank, 1)], workers=2)
    else:
        if me.rank == 1:
            time.sleep(delay)
        parallel.barrier()
