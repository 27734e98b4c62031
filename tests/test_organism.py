import dataclasses

import torch
from conftest import TINY_ORGANISM
from tokenshift import organism
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
    first = organism.build(TINY_ORGANISM, ArtifactCache(tmp_path / "a"), show_progress=False)
    trained = count_training(monkeypatch)
    again = organism.build(TINY_ORGANISM, ArtifactCache(tmp_path / "a"), show_progress=False)
    assert trained == [] and again.rl == first.rl and again.base == first.base
    other = organism.build(TINY_ORGANISM, ArtifactCache(tmp_path / "b"), show_progress=False)
    for a, b in [(first.base, other.base), (first.rl["dapo"], other.rl["dapo"]), (first.sft_control, other.sft_control)]:
        assert all(torch.equal(x, y) for x, y in zip(weights(a), weights(b)))
    assert first.rl["dapo"] != first.rl["simplerl"]  # two runs, two entries
    assert not all(torch.equal(x, y) for x, y in zip(weights(first.base), weights(first.sft_control)))
    assert [step for step, _ in first.checkpoints("dapo")] == [0, 1, 2]
    assert [r["step"] for r in first.log("simplerl")] == [1, 2]
    assert first.log("base")[-1]["step"] == 3


def test_changing_one_rl_run_keeps_the_base_and_the_other_run(tmp_path):
    cache = ArtifactCache(tmp_path)
    first = organism.build(TINY_ORGANISM, cache, show_progress=False)
    changed = dataclasses.replace(TINY_ORGANISM, dapo=dataclasses.replace(TINY_ORGANISM.dapo, lr=1e-3))
    second = organism.build(changed, cache, show_progress=False)
    assert second.base == first.base and second.rl["simplerl"] == first.rl["simplerl"]
    assert second.rl["dapo"] != first.rl["dapo"]


def test_a_version_bump_rebuilds_exactly_what_depends_on_it(tmp_path, monkeypatch):
    cache = ArtifactCache(tmp_path)
    first = organism.build(TINY_ORGANISM, cache, show_progress=False)
    trained = count_training(monkeypatch)
    monkeypatch.setattr(rl.RL, "number", rl.RL.number + 1)  # as if the trainer's behaviour had changed
    second = organism.build(TINY_ORGANISM, cache, show_progress=False)
    assert trained == ["train_rl", "train_rl"]  # both RL runs; not the base, not the SFT control
    assert second.base == first.base and second.sft_control == first.sft_control and second.rl != first.rl
    monkeypatch.undo()
    trained = count_training(monkeypatch)
    monkeypatch.setattr(sft.SFT, "number", sft.SFT.number + 1)
    third = organism.build(TINY_ORGANISM, cache, show_progress=False)
    # the base and the SFT control are retrained; the base comes out bit for bit the same, so the RL runs,
    # keyed by the base's content, are reused
    assert trained == ["train_sft", "train_sft"] and third.rl == first.rl and third.base != first.base


def test_parts_get_distinct_seeds_and_the_shared_length():
    config = dataclasses.replace(TINY_ORGANISM, seed=7)
    seeds = {config.part(n).seed for n in ("base", "simplerl", "dapo", "sft_control")}
    assert len(seeds) == 4
    assert config.part("dapo").max_new_tokens == config.part("base").max_response_tokens == 16
