import importlib

import polars as pl
import pytest
from conftest import TINY_SHAPE
from tokenshift.analyses import cross_sampling, reference_responses, shift_scores, shifts
from tokenshift.core.behaviour import Version
from tokenshift.core.cache import ArtifactCache, model_fingerprint
from tokenshift.models import loading
from tokenshift.organism import architecture, task
from tokenshift.organism.problems import OrganismProblems


@pytest.fixture
def pair_dirs(tmp_path, tokenizer):
    base_dir, tuned_dir = tmp_path / "base", tmp_path / "tuned"
    loading.save(architecture.new_model(tokenizer, TINY_SHAPE, seed=0), tokenizer, base_dir)
    loading.save(architecture.new_model(tokenizer, TINY_SHAPE, seed=1), tokenizer, tuned_dir)
    return base_dir, tuned_dir


def kinds(cache_dir):
    return {p.name: len([e for e in p.iterdir() if not e.name.startswith(".")]) for p in cache_dir.iterdir()
            if p.is_dir()}


def test_shift_table_is_cached_and_scores_the_reference_responses(tmp_path, tokenizer, pair_dirs):
    base_dir, tuned_dir = pair_dirs
    problems = OrganismProblems(task.sample_problems(3, "held_out", seed=0), tokenizer)
    # units of 2 prompts and 4 responses: the unit boundaries fall inside the problem set
    sampling = reference_responses.SamplingConfig(samples_per_problem=2, max_new_tokens=8, prompts_per_unit=2)
    scoring = shift_scores.ScoringConfig(responses_per_unit=4)
    cache = ArtifactCache(tmp_path / "cache")
    table = shifts.shift_table(base_dir, tuned_dir, problems, sampling, scoring, cache=cache, show_progress=False)
    refs = reference_responses.responses(tuned_dir, problems, sampling, cache)
    assert refs["response"].to_list() == list(range(6)) and refs["problem"].to_list() == [0, 0, 1, 1, 2, 2]
    assert refs["correct"].dtype == pl.Boolean
    assert len(table) == sum(len(r) for r in refs["response_ids"])
    assert table["response"].unique().sort().to_list() == list(range(6))
    assert table.columns[:3] == ["response", "problem", "correct"]
    assert (table["js"] > 0).any()
    assert table["base_top_ids"].dtype.shape == (5,) and (table["base_top_prob"].arr.sum() <= 1 + 1e-6).all()
    assert kinds(tmp_path / "cache") == {"responses": 1, "verdicts": 1, "shifts": 1}
    assert not list((tmp_path / "cache").rglob("*.parts"))  # the units are merged and removed
    again = shifts.shift_table(base_dir, tuned_dir, problems, sampling, scoring, cache=cache, show_progress=False)
    assert again.equals(table)
    # re-scoring (another js_top_p) reuses the responses; batch sizes are not part of any key
    shifts.shift_table(base_dir, tuned_dir, problems, sampling, shift_scores.ScoringConfig(js_top_p=0.9, batch_size=3),
                       cache=cache, show_progress=False)
    shifts.shift_table(base_dir, tuned_dir, problems, sampling, shift_scores.ScoringConfig(batch_size=3),
                       cache=cache, show_progress=False)
    assert kinds(tmp_path / "cache") == {"responses": 1, "verdicts": 1, "shifts": 2}
    # on the base's responses instead: new responses and scores, the same columns
    other = shifts.shift_table(base_dir, tuned_dir, problems, sampling, scoring, reference=base_dir, cache=cache,
                               show_progress=False)
    assert other.columns == table.columns and kinds(tmp_path / "cache") == {"responses": 2, "verdicts": 2, "shifts": 3}


def test_the_sweeps_never_intervening_rows_are_the_reference_responses(tmp_path, tokenizer, pair_dirs):
    """One decoding loop: cross-sampling at eps = inf, reverse, is plain sampling of the tuned model with the
    same unit seeds, so it reproduces the shift tables' reference responses exactly."""
    base_dir, tuned_dir = pair_dirs
    problems = OrganismProblems(task.sample_problems(3, "held_out", seed=0), tokenizer)
    sampling = reference_responses.SamplingConfig(samples_per_problem=2, max_new_tokens=8, prompts_per_unit=2, seed=4)
    cache = ArtifactCache(tmp_path / "cache")
    refs = reference_responses.responses(tuned_dir, problems, sampling, cache)
    config = cross_sampling.SweepConfig(eps_grid=(float("inf"),), samples_per_problem=2, max_new_tokens=8,
                                        prompts_per_unit=2, seed=4)
    reverse = cross_sampling.sweep(tuned_dir, base_dir, problems, config, cache, show_progress=False)
    reverse = reverse.filter(pl.col("rule") == "divergence")
    assert reverse.select(refs.columns).equals(refs)


def test_a_responses_file_is_judged_apart_from_sampling(tmp_path, tokenizer, pair_dirs, monkeypatch):
    """A new verifier re-judges without re-sampling."""
    _, tuned_dir = pair_dirs
    problems = OrganismProblems(task.sample_problems(2, "held_out", seed=0), tokenizer)
    sampling = reference_responses.SamplingConfig(samples_per_problem=2, max_new_tokens=6)
    cache = ArtifactCache(tmp_path / "cache")
    first = reference_responses.responses(tuned_dir, problems, sampling, cache)
    assert not first["correct"].any()  # an untrained model
    monkeypatch.setattr(OrganismProblems, "verify", lambda self, i, text, stopped: True)
    verifier = importlib.import_module(problems.verifier)
    monkeypatch.setattr(verifier, "BEHAVIOUR", Version(verifier.BEHAVIOUR.number + 1))
    second = reference_responses.responses(tuned_dir, problems, sampling, cache)
    assert second["correct"].all() and second.drop("correct").equals(first.drop("correct"))
    assert kinds(tmp_path / "cache") == {"responses": 1, "verdicts": 2}


def test_an_interrupted_sampling_run_resumes_from_its_finished_units(tmp_path, tokenizer, tiny_model):
    problems = OrganismProblems(task.sample_problems(5, "held_out", seed=0), tokenizer)
    config = reference_responses.SamplingConfig(samples_per_problem=2, max_new_tokens=6, prompts_per_unit=2)
    whole = tmp_path / "whole.parquet"
    reference_responses.sample_responses(tiny_model, problems, config, whole, tmp_path / "parts-a", show_progress=False)
    # a run that stopped after its first unit left that unit behind; a marker frame shows it is reused as is
    parts = tmp_path / "parts-b"
    parts.mkdir()
    (parts / "plan.json").write_text('{"n_items": 5, "per_unit": 2}')
    marked = pl.read_parquet(whole).head(4).with_columns(pl.lit(True).alias("stopped"))
    marked.write_parquet(parts / "unit-000000.parquet")
    resumed = tmp_path / "resumed.parquet"
    reference_responses.sample_responses(tiny_model, problems, config, resumed, parts, show_progress=False)
    a, b = pl.read_parquet(whole), pl.read_parquet(resumed)
    assert b["stopped"].head(4).all() and a.tail(6).equals(b.tail(6))
    assert not parts.exists()
    # units cut another way are not reused
    parts.mkdir()
    (parts / "plan.json").write_text('{"n_items": 5, "per_unit": 3}')
    marked = pl.read_parquet(whole).head(4).with_columns(pl.lit(True).alias("stopped"))
    marked.write_parquet(parts / "unit-000000.parquet")
    reference_responses.sample_responses(tiny_model, problems, config, resumed, parts, show_progress=False)
    assert pl.read_parquet(resumed).equals(a)


def test_fingerprint_follows_the_weights(tmp_path, tokenizer):
    a, b = tmp_path / "a", tmp_path / "b"
    loading.save(architecture.new_model(tokenizer, TINY_SHAPE, seed=0), tokenizer, a)
    loading.save(architecture.new_model(tokenizer, TINY_SHAPE, seed=0), tokenizer, b)
    assert model_fingerprint(a) == model_fingerprint(b)
    loading.save(architecture.new_model(tokenizer, TINY_SHAPE, seed=2), tokenizer, b)
    assert model_fingerprint(a) != model_fingerprint(b)


def torchrun(script, *args, nproc=2):
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc), script,
           *map(str, args)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_cached_entry_points_under_a_launcher_build_once_and_agree(tmp_path, tokenizer, pair_dirs):
    """Under torchrun every rank takes its share of the units, rank 0 alone publishes, and every rank reads
    the same complete entries, equal to what one process computes with the work cut otherwise (units of 5
    prompts decoded 256 at a time, against units of 1 decoded 3 at a time over two ranks)."""
    from pathlib import Path

    script = str(Path(__file__).with_name("ranked_cache.py"))
    pair = pair_dirs[0].parent
    (tmp_path / "two").mkdir()
    torchrun(script, pair, tmp_path / "cache-two", tmp_path / "two", 1, 3)
    (tmp_path / "one").mkdir()
    torchrun(script, pair, tmp_path / "cache-one", tmp_path / "one", 5, 256, nproc=1)
    for name in ("shifts", "sweep"):
        one = pl.read_parquet(tmp_path / "one" / f"{name}-0.parquet")
        for rank in (0, 1):
            assert pl.read_parquet(tmp_path / "two" / f"{name}-{rank}.parquet").equals(one), (name, rank)
    entries = {kind: sorted(p.name for p in (tmp_path / "cache-two" / kind).iterdir())
               for kind in ("responses", "shifts", "cross_sampling")}
    # one complete entry each, and no temporary directory or unit left behind
    assert all(len([n for n in names if not n.startswith(".")]) == 1 for names in entries.values()), entries
    assert all(n.endswith(".lock") for names in entries.values() for n in names if n.startswith(".")), entries
    assert all(ArtifactCache.check(p) is None for kind in entries
               for p in (tmp_path / "cache-two" / kind).iterdir() if not p.name.startswith("."))


def test_a_gpu_group_that_cannot_hold_the_pair_is_refused_naming_the_gpus_per_rank_that_would():
    gib = 2**30
    loading.check_group_fits(60 * gib, [80 * gib], None)  # one 32B in bf16 on an H100
    with pytest.raises(ValueError, match=r"take 120.0 GiB, but this rank's 1 GPU\(s\) \(--gpus-per-rank 1\) have "
                                         r"80.0 GiB free: give each rank 2 GPUs \(--gpus-per-rank 2\)"):
        loading.check_group_fits(120 * gib, [80 * gib], 1)  # two of them
    loading.check_group_fits(120 * gib, [80 * gib, 80 * gib], 2)


def test_a_checkpoints_weights_are_measured_at_the_loading_width(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)  # stored in fp32
    stored = sum(f.stat().st_size for f in tmp_path.glob("*.safetensors"))
    assert loading.weight_bytes(tmp_path, tiny_model.config, 2) == stored * 2 // 4
    assert loading.weight_bytes("org/model", tiny_model.config, 2) == 0  # a hub id: unknown before download


def test_waiting_for_other_ranks_files_ends_only_when_they_stall(tmp_path, monkeypatch):
    import threading
    import time

    from tokenshift.core import parallel

    monkeypatch.setenv("TOKENSHIFT_STALL_TIMEOUT_S", "0.5")
    files = [tmp_path / f"unit-{i}" for i in range(3)]
    writer = threading.Thread(target=lambda: [time.sleep(0.3) or f.touch() for f in files])  # 0.9 s in all
    writer.start()
    parallel.wait_for(files, "units", poll_s=0.05)  # longer than the stall timeout, but never stalled
    writer.join()
    with pytest.raises(TimeoutError, match=r"no new file of units for 0 s, 1 still missing \(first .*unit-9\)"):
        parallel.wait_for([*files, tmp_path / "unit-9"], "units", poll_s=0.05)


@pytest.mark.slow
def test_ranks_whose_units_finish_far_apart_outlast_the_control_timeout(tmp_path):
    """Rank 1's units each take 4 s longer than rank 0's, under a 2 s control timeout (hours on a GPU against
    NCCL's ten-minute default): rank 0 waits for their files, not at a collective, and the run completes; a
    bare barrier reached as late is ended by the same timeout."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = str(Path(__file__).with_name("uneven_ranks.py"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENSHIFT_CONTROL_TIMEOUT_S": "2"}
    run = lambda mode: subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                       "--nproc-per-node", "2", script, str(tmp_path / "out.parquet"), "4", mode],
                                      env=env, capture_output=True, text=True, timeout=300)
    done = run("units")
    assert done.returncode == 0, done.stderr[-3000:]
    assert pl.read_parquet(tmp_path / "out.parquet")["item"].to_list() == [0, 1, 2, 3]
    late = run("barrier")
    assert late.returncode != 0 and "timed out" in late.stderr.lower(), late.stderr[-3000:]
    # worker processes under a launcher (the organism's parts, notebook 03's sweeps) are no ranks: each runs as
    # one process instead of trying to join the ranks' group
    workers = run("workers")
    assert workers.returncode == 0, workers.stderr[-3000:]
    assert sorted(p.read_text() for p in tmp_path.glob("out.parquet-*-*")) == ["1"] * 4


def test_sweeps_in_worker_processes_are_the_sweeps_in_one(tmp_path, tokenizer, pair_dirs, monkeypatch):
    """Notebook 03 runs a study's sweeps (the grid, then each bisection toward its goal) two at a time in worker
    processes: every row is what one process computes, and each threshold is one cached sweep."""
    from tokenshift.suite import profiles, study
    from tokenshift.suite.pairs import Pairs

    base_dir, tuned_dir = pair_dirs
    problems = OrganismProblems(task.sample_problems(3, "held_out", seed=0), tokenizer)
    pairs = Pairs(base=base_dir, tuned={"rl": tuned_dir}, rl_names=["rl"], labels={}, max_new_tokens=8,
                  make_problems=lambda n, seed, benchmark: problems)
    this = study.Study("test", profiles.ShiftSetup(), pairs, problems, show_progress=False)
    config = cross_sampling.SweepConfig(eps_grid=(float("inf"), 0.1, 0.0), samples_per_problem=2, max_new_tokens=8,
                                        prompts_per_unit=2)
    found = {}
    for workers in (1, 2):
        monkeypatch.setenv("TOKENSHIFT_CACHE", str(tmp_path / f"cache-{workers}"))
        found[workers] = this.sweeps(config, bisection_steps=2, workers=workers)
    assert list(found[2]) == [("rl", "forward"), ("rl", "reverse")]
    for key, frame in found[1].items():
        assert frame.equals(found[2][key]) and frame["rule"].unique().sort().to_list() == ["divergence", "random"]
        one = this.sweep(*key, config)  # the same cached grid, one model and direction
        assert one.equals(frame.filter(pl.col("eps").is_in(config.eps_grid)))
    # one entry per grid sweep, and one per threshold a bisection added
    added = sum(f["eps"].n_unique() - len(config.eps_grid) for f in found[2].values())
    assert kinds(tmp_path / "cache-2")["cross_sampling"] == len(found[2]) + added
