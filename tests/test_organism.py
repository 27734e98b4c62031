import dataclasses

import torch
from conftest import TINY_ORGANISM
from tokenshift import organism
from tokenshift.core.behaviour import Version
from tokenshift.core.cache import ArtifactCache
from tokenshift.models.loading import load_model
from tokenshift.organism import rl, sft


def weights(path):
    model, _ = load_model(path)
    return [p.detach().clone() for p in model.parameters()]


def count_training(monkeypatch) -> list[str]:
    calls = []
    for module, name in ((sft, "train_sft"), (rl, "train_rl")):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _o=original, _n=name, **k: calls.append(_n) or _o(*a, **k))
    return calls


def test_build_is_cached_and_deterministic(tmp_path, monkeypatch):
    """The parts after the base train in two worker processes or in this one: the same weights either way."""
    first = organism.build(TINY_ORGANISM, ArtifactCache(tmp_path / "a"), show_progress=False, workers=2)
    trained = count_training(monkeypatch)
    again = organism.build(TINY_ORGANISM, ArtifactCache(tmp_path / "a"), show_progress=False, workers=1)
    assert trained == [] and again.rl == first.rl and again.base == first.base
    other = organism.build(TINY_ORGANISM, ArtifactCache(tmp_path / "b"), show_progress=False, workers=1)
    for name in ("simplerl", "dapo", "sft_offpolicy", "sft_rejection"):
        assert all(torch.equal(x, y) for x, y in zip(weights(first.tuned[name]), weights(other.tuned[name]))), name
    # the tiny base solves nothing, so the RL runs (zero advantages) and rejection SFT (no accepted samples) may
    # leave it as it is; the off-policy control always trains, so the equality above is not trivial
    assert not all(torch.equal(x, y) for x, y in zip(weights(first.base), weights(first.sft["sft_offpolicy"])))
    assert first.rl["dapo"] != first.rl["simplerl"] and first.sft["sft_offpolicy"] != first.sft["sft_rejection"]
    assert [step for step, _ in first.checkpoints("dapo")] == [0, 1, 2]
    assert [r["step"] for r in first.log("simplerl")] == [1, 2]
    assert first.log("base")[-1]["step"] == 3 and first.log("sft_rejection")[-1]["step"] == 2


def test_changing_one_rl_run_keeps_the_base_and_the_other_run(tmp_path):
    cache = ArtifactCache(tmp_path)
    first = organism.build(TINY_ORGANISM, cache, show_progress=False, workers=1)
    changed = dataclasses.replace(TINY_ORGANISM, dapo=dataclasses.replace(TINY_ORGANISM.dapo, lr=1e-3))
    second = organism.build(changed, cache, show_progress=False, workers=1)
    assert second.base == first.base and second.rl["simplerl"] == first.rl["simplerl"]
    assert second.rl["dapo"] != first.rl["dapo"]


def test_a_version_bump_rebuilds_exactly_what_depends_on_it(tmp_path, monkeypatch):
    cache = ArtifactCache(tmp_path)
    first = organism.build(TINY_ORGANISM, cache, show_progress=False, workers=1)
    trained = count_training(monkeypatch)
    monkeypatch.setattr(rl, "BEHAVIOUR", Version(rl.BEHAVIOUR.number + 1))  # as if the trainer had changed
    second = organism.build(TINY_ORGANISM, cache, show_progress=False, workers=1)
    assert trained == ["train_rl", "train_rl"]  # both RL runs; not the base, not the SFT controls
    assert second.base == first.base and second.sft == first.sft and second.rl != first.rl
    monkeypatch.undo()
    trained = count_training(monkeypatch)
    monkeypatch.setattr(sft, "BEHAVIOUR", Version(sft.BEHAVIOUR.number + 1))
    third = organism.build(TINY_ORGANISM, cache, show_progress=False, workers=1)
    # the base and the SFT controls are retrained; the base comes out bit for bit the same, so the RL runs,
    # keyed by the base's content, are reused
    assert trained == ["train_sft"] * 3 and third.rl == first.rl and third.base != first.base


def test_parts_get_distinct_seeds_and_the_shared_length():
    config = dataclasses.replace(TINY_ORGANISM, seed=7)
    seeds = {config.part(n).seed for n in ("tokenizer", "base", "simplerl", "dapo", "sft_offpolicy", "sft_rejection")}
    assert len(seeds) == 6
    assert config.part("dapo").max_new_tokens == config.part("base").max_response_tokens == 16


def test_early_stopping_ends_when_the_held_out_nll_stops_improving(tmp_path, tokenizer):
    """lr 0: the first measurement is the best and none beats it, so the run stops after `patience` more and keeps
    that step's weights; a run that learns fast goes past the same point; the dose point is saved on the way."""
    from conftest import TINY_SHAPE
    from tokenshift.organism import architecture

    rule = sft.EarlyStop(every=2, patience=2, problems=4)
    frozen = sft.SFTConfig(steps=40, batch_size=4, lr=0.0, warmup_steps=1, source="other_writer", stop=rule,
                           save_steps=(3,), log_every=100)
    model = architecture.new_model(tokenizer, TINY_SHAPE, seed=0)
    log = sft.train_sft(model, tokenizer, frozen, show_progress=False, out_dir=tmp_path)
    assert [e["step"] for e in log] == [2, 4, 6] and log[-1]["kept_step"] == 2
    assert (tmp_path / "checkpoints" / "step_0003" / "config.json").is_file()
    learning = dataclasses.replace(frozen, lr=3e-3, steps=12, save_steps=())
    model = architecture.new_model(tokenizer, TINY_SHAPE, seed=0)
    log = sft.train_sft(model, tokenizer, learning, show_progress=False)
    nll = [e["held_out_nll"] for e in log]
    assert log[-1]["step"] == 12 and nll[-1] < nll[0] - 0.1 and log[-1]["kept_held_out_nll"] == min(nll)
    # the kept weights are those of the measurement the rule kept: measuring them again gives its NLL
    held = sft.make_batch(*sft.held_out_set(learning, tokenizer), tokenizer.pad_token_id)
    assert abs(sft.held_out_nll(model, held) - min(nll)) < 1e-5


def test_early_stopping_is_refused_where_there_is_nothing_to_measure():
    import pytest

    with pytest.raises(ValueError, match="own_correct has none"):
        sft.SFTConfig(source="own_correct", stop=sft.EarlyStop())
