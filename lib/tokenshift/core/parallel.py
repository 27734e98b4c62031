"""Data parallelism over processes started by an existing launcher (``torchrun`` or ``accelerate launch``), and
independent jobs in worker processes of this machine's own (``in_processes``).

Work is cut into units (a few prompts or responses each); rank r takes units r, r + world, ... . A unit's
results do not depend on how the work is cut: each response's random streams come from the run's seed and the
response's number in the run (``responses_of``), never from its unit or the number of processes. Each finished unit
is written at once as its own Parquet file, so an interrupted run resumes where it stopped; when all ranks are
done, rank 0 merges the units in order. The merged file is identical whatever the number of processes.

Ranks exchange only control messages (barriers, a broadcast path), over gloo whatever the devices, with a
timeout that fits hour-long work (``TOKENSHIFT_CONTROL_TIMEOUT_S``, default a day; NCCL's default of ten
minutes would end a run whose ranks finish their units far apart). A rank that finishes its units early waits
for the others' unit files (``wait_for``), not at a collective, so no timeout bounds the work itself.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterator

import polars as pl
import torch
import torch.distributed as dist

from . import progress
from .behaviour import Version
from .paths import atomic

BEHAVIOUR = Version(1)  # how work is cut into units and each response numbered
# (unit, items) of the units still to compute -> (unit, frame) as each finishes
Stream = Callable[[list[tuple[int, list[int]]]], Iterator[tuple[int, pl.DataFrame]]]


@dataclass(frozen=True)
class Rank:
    rank: int
    world: int
    local_rank: int


def control_timeout() -> float:
    """Seconds a rank may wait for the others at a barrier (``TOKENSHIFT_CONTROL_TIMEOUT_S``; default a day)."""
    return float(os.environ.get("TOKENSHIFT_CONTROL_TIMEOUT_S", 24 * 3600))


def current() -> Rank:
    """This process's place among the launcher's (rank 0 of 1 without a launcher); joins the process group
    on first use: gloo, for control messages only, with ``control_timeout``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="gloo", timeout=timedelta(seconds=control_timeout()))
    rank = dist.get_rank() if world > 1 else 0
    return Rank(rank, world, int(os.environ.get("LOCAL_RANK", "0")))


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def broadcast(value):
    """Rank 0's ``value`` on every rank (a small picklable object); the value itself without a launcher."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def responses_of(index: list[int], n: int) -> list[int]:
    """The numbers in the whole run of the responses to problems ``index``, ``n`` each, prompt-major: problem
    * n + sample slot, which name each response's random streams whatever unit it falls in."""
    return [i * n + j for i in index for j in range(n)]


def response_numbers(index: list[int], prompt_index: list[int], n: int) -> tuple[list[int], list[int]]:
    """For a unit's samples (``n`` per prompt, prompt-major; ``prompt_index`` into the unit's ``index``):
    each one's problem and its response number in the whole run, problem * n + sample slot."""
    problem = [index[i] for i in prompt_index]
    return problem, [p * n + j % n for j, p in enumerate(problem)]


def run_units(n_items: int, per_unit: int, work: Callable[[int, list[int]], pl.DataFrame] | None, out_file: Path,
              parts: Path, desc: str = "units", show_progress: bool = True, stream: Stream | None = None,
              order: Callable[[pl.DataFrame], pl.DataFrame] | None = None) -> None:
    """Cut items 0..n_items-1 (prompts or responses) into units of ``per_unit``, compute
    ``work(unit, items)`` for every unit across the launcher's processes, and merge the frames, in unit
    order, into ``out_file`` (written by rank 0). Units already in ``parts`` (an earlier, interrupted run of
    the same job, cut the same way) are not computed again.

    ``stream`` instead of ``work``: given every unit still to compute as (unit, items), it yields (unit, frame)
    in any order as each finishes (an engine that keeps many units in flight); each is written as it comes.
    ``order``: puts the merged rows in an order that does not depend on how the items were cut (where a unit's
    frame groups its rows by something other than the item, such as a sweep's settings)."""
    n_units = -(-n_items // per_unit)
    me = current()
    plan = {"n_items": n_items, "per_unit": per_unit}
    if me.rank == 0:
        plan_file = parts / "plan.json"
        if parts.exists() and (not plan_file.is_file() or json.loads(plan_file.read_text()) != plan):
            shutil.rmtree(parts)  # units cut another way cannot be reused
        parts.mkdir(parents=True, exist_ok=True)
        plan_file.write_text(json.dumps(plan))
    barrier()
    part = lambda unit: parts / f"unit-{unit:06d}.parquet"
    mine = [u for u in range(me.rank, n_units, me.world)]
    todo = [(u, list(range(u * per_unit, min((u + 1) * per_unit, n_items)))) for u in mine if not part(u).is_file()]
    label = desc if me.world == 1 else f"{desc} (rank {me.rank}/{me.world})"
    finished = stream(todo) if stream is not None else ((u, work(u, items)) for u, items in todo)
    with progress.bar(desc=label, total=len(mine), unit="unit", disable=not show_progress) as bar:
        bar.update(len(mine) - len(todo))
        for unit, frame in finished:
            with atomic(part(unit)) as tmp:  # a unit file is complete or absent
                frame.write_parquet(tmp)
            bar.update(1)
    wait_for([part(u) for u in range(n_units)], f"{desc}: the other ranks' units")
    barrier()
    if me.rank == 0:
        merged = pl.concat([pl.read_parquet(part(u)) for u in range(n_units)], how="vertical")
        merged = order(merged) if order is not None else merged
        with atomic(out_file) as tmp:
            merged.write_parquet(tmp)
        shutil.rmtree(parts)
    barrier()


def wait_for(files: list[Path], what: str, poll_s: float = 1.0) -> None:
    """Wait until every one of ``files`` exists (written by other ranks), however long the others' work takes,
    as long as one appears at least every ``TOKENSHIFT_STALL_TIMEOUT_S`` (default a day); then refuse, naming
    the first missing one. (A rank that dies ends the run through the launcher.)"""
    stall = float(os.environ.get("TOKENSHIFT_STALL_TIMEOUT_S", 24 * 3600))
    missing = [f for f in files if not f.exists()]
    deadline = time.monotonic() + stall
    while missing:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no new file of {what} for {stall:.0f} s, {len(missing)} still missing (first "
                               f"{missing[0]}): a rank has stalled; rerun to resume from the finished units, or "
                               "raise TOKENSHIFT_STALL_TIMEOUT_S")
        time.sleep(poll_s)
        still = [f for f in missing if not f.exists()]
        if len(still) < len(missing):
            deadline = time.monotonic() + stall
        missing = still


# what a launcher tells its ranks; a worker process is no rank, and would otherwise try to join their group
LAUNCHER_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK",
                      "MASTER_ADDR", "MASTER_PORT")


def _as_one_process() -> None:
    for name in LAUNCHER_VARIABLES:
        os.environ.pop(name, None)


def in_processes(fn: Callable, jobs: list, workers: int) -> list:
    """``[fn(job) for job in jobs]``, ``workers`` jobs at a time, each in a fresh process (spawned: safe beside
    threads and notebooks; ``fn`` and the jobs must pickle) that runs as one process even under a launcher; in
    this process with one worker or one job."""
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_as_one_process) as pool:
            return list(pool.map(fn, jobs))
    return [fn(job) for job in jobs]


@contextlib.contextmanager
def threads(n: int | None):
    """Run the block on ``n`` torch threads (None: as it is)."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
