import dataclasses

import pytest
import torch
from conftest import TINY_RL
from tokenshift.organism import rl
from tokenshift.organism.problems import OrganismProblems


def test_group_advantages_are_normalised_within_groups():
    adv = rl.group_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]]))
    assert torch.allclose(adv.mean(dim=1), torch.zeros(3), atol=1e-6)
    assert torch.equal(adv[1], torch.zeros(4))  # a uniform group teaches nothing
    assert torch.allclose(adv[0], torch.tensor([1.0, -1.0, -1.0, 1.0]), atol=1e-4)
    assert adv[2, 3] > 0 > adv[2, 0]


def test_k3_is_nonnegative_and_zero_only_at_equality():
    logp, ref = torch.randn(1000), torch.randn(1000)
    assert (rl.k3(logp, ref) >= 0).all()
    assert torch.equal(rl.k3(logp, logp), torch.zeros(1000))
    # its expectation under pi is KL(pi || ref): check on a two-token distribution
    pi, q = torch.tensor([0.7, 0.3]), torch.tensor([0.4, 0.6])
    expected = (pi * (pi / q).log()).sum()
    assert torch.isclose((pi * rl.k3(pi.log(), q.log())).sum(), expected, atol=1e-6)


@pytest.mark.parametrize("adv, ratio, clipped", [(1.0, 1.5, True), (1.0, 0.5, False), (-1.0, 0.5, True),
                                                 (-1.0, 1.5, False), (1.0, 1.1, False)])
def test_clipping_follows_ppo(adv, ratio, clipped):
    logp, old = torch.tensor([float(torch.tensor(ratio).log())]), torch.zeros(1)
    loss, was_clipped = rl.clipped_surrogate(logp, old, torch.tensor([adv]), clip_low=0.2, clip_high=0.28)
    assert bool(was_clipped) == clipped
    bound = 1.28 if adv > 0 else 0.8
    assert torch.isclose(loss, torch.tensor([-adv * (min(ratio, bound) if adv > 0 else max(ratio, bound))]))


def test_clip_higher_lets_positive_advantages_grow_further():
    logp = torch.tensor([float(torch.tensor(1.25).log())])
    _, symmetric = rl.clipped_surrogate(logp, torch.zeros(1), torch.ones(1), 0.2, 0.2)
    _, higher = rl.clipped_surrogate(logp, torch.zeros(1), torch.ones(1), 0.2, 0.28)
    assert symmetric.item() and not higher.item()


def test_token_mean_weighs_tokens_and_seq_mean_weighs_responses():
    per_token = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    assert rl.aggregate(per_token, mask, "token-mean").item() == pytest.approx(4 / 5)
    assert rl.aggregate(per_token, mask, "seq-mean-token-mean").item() == pytest.approx(0.5)


def test_unknown_loss_aggregation_is_refused():
    with pytest.raises(ValueError, match="loss_agg"):
        rl.RLConfig(loss_agg="sum")


def coin_flip_rewards(monkeypatch):
    # an untrained model never earns a reward: give it seeded coin-flip rewards so the groups differ
    def coin_flips(self, samples, problem=None):
        g = torch.Generator().manual_seed(len(samples.response_ids) + sum(map(len, samples.response_ids)))
        return torch.randint(0, 2, (len(samples.response_ids),), generator=g).bool().tolist()

    monkeypatch.setattr(OrganismProblems, "rewards", coin_flips)


def test_training_is_deterministic_and_saves_checkpoints(tmp_path, tokenizer, tiny_model, monkeypatch):
    coin_flip_rewards(monkeypatch)
    config = dataclasses.replace(TINY_RL, max_new_tokens=12, kl_coef=0.1)
    a, log = rl.train_rl(tiny_model, tokenizer, config, out_dir=tmp_path / "a", show_progress=False)
    b, _ = rl.train_rl(tiny_model, tokenizer, config, out_dir=tmp_path / "b", show_progress=False)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert any(not torch.equal(pa, p0) for pa, p0 in zip(a.parameters(), tiny_model.parameters()))
    assert sorted(p.name for p in (tmp_path / "a" / "checkpoints").iterdir()) == ["step_0001", "step_0002"]
    assert [r["step"] for r in log] == [1, 2] and "heldout_pass@1" in log[1]


def test_dapo_drops_groups_with_equal_rewards(tokenizer, tiny_model):
    # an untrained model never answers correctly, so every group is uniform and nothing is learned
    config = dataclasses.replace(rl.DAPO_LIKE, steps=1, prompts_per_step=2, samples_per_prompt=2,
                                 max_new_tokens=8, eval_every=100)
    policy, log = rl.train_rl(tiny_model, tokenizer, config, show_progress=False)
    assert log[0]["groups_kept"] == 0.0 and log[0]["reward"] == 0.0
    for p, p0 in zip(policy.parameters(), tiny_model.parameters()):
        assert torch.equal(p, p0)


def test_zero_scale_weights_train_exactly_like_the_baseline(tokenizer, tiny_model, monkeypatch):
    coin_flip_rewards(monkeypatch)
    base = dataclasses.replace(TINY_RL, max_new_tokens=10, updates_per_batch=2)
    plain, _ = rl.train_rl(tiny_model, tokenizer, base, show_progress=False)
    zero_s, log = rl.train_rl(tiny_model, tokenizer, dataclasses.replace(base, weight_alpha=50.0), show_progress=False)
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), zero_s.parameters()))
    assert all(r["weighted_share"] == 0.0 for r in log)


def test_weights_carry_no_gradient_and_follow_the_formula():
    logp = torch.randn(4, 7, requires_grad=True)
    anchor = torch.randn(4, 7)
    for alpha in (30.0, -30.0):
        w = rl.advantage_weights(logp, anchor, scale=0.8, alpha=alpha)
        assert not w.requires_grad
        kl = rl.k3(anchor, logp.detach())
        assert torch.allclose(w, 1 + 0.8 * (torch.sigmoid(alpha * kl) - 0.5))
        if alpha > 0:  # KL >= 0: boosts lie in [1, 1 + s/2], damping in [1 - s/2, 1]
            assert ((w >= 1) & (w <= 1.4 + 1e-6)).all()
        else:
            assert ((w <= 1) & (w >= 0.6 - 1e-6)).all()
    assert torch.equal(rl.advantage_weights(anchor, anchor, 0.8, 30.0), torch.ones(4, 7))


def test_weights_are_one_on_a_batch_first_update_only(tokenizer, tiny_model, monkeypatch):
    coin_flip_rewards(monkeypatch)
    weighted = dataclasses.replace(TINY_RL, max_new_tokens=10, weight_scale=1.0, weight_alpha=100.0)
    _, once = rl.train_rl(tiny_model, tokenizer, dataclasses.replace(weighted, updates_per_batch=1), show_progress=False)
    assert all(r["weighted_updates"] == 0 and r["weight_max"] == 1.0 for r in once)
    _, twice = rl.train_rl(tiny_model, tokenizer, dataclasses.replace(weighted, updates_per_batch=2), show_progress=False)
    assert all(r["weighted_updates"] <= 1 for r in twice) and any(r["weighted_updates"] == 1 for r in twice)
    _, ref = rl.train_rl(tiny_model, tokenizer, dataclasses.replace(weighted, updates_per_batch=1,
                                                                    weight_divergence="reference"), show_progress=False)
    assert any(r["weighted_updates"] == 1 for r in ref[1:])  # the policy has left the reference after step 1


def test_arranged_weights_keep_their_values_and_mean_one_on_response_tokens():
    w = 1 + torch.rand(3, 9)
    mask = (torch.rand(3, 9) > 0.3).float()
    on = mask.bool()
    assert torch.equal(rl.arranged_weights(w, mask, False, None), w)
    normalised = rl.arranged_weights(w, mask, True, None)
    assert torch.allclose(normalised[on].mean(), torch.tensor(1.0))
    assert torch.allclose(normalised / w, w[on].mean() ** -1)
    shuffled = rl.arranged_weights(w, mask, False, torch.Generator().manual_seed(0))
    assert torch.equal(shuffled[~on], w[~on]) and not torch.equal(shuffled, w)
    assert torch.equal(shuffled[on].sort().values, w[on].sort().values)  # the same weights, at other tokens
    assert torch.allclose(rl.arranged_weights(w, mask, True, torch.Generator().manual_seed(0)),
                          shuffled / shuffled[on].mean())


def test_normalised_and_shuffled_arms(tokenizer, tiny_model, monkeypatch):
    """At s = 0 the controls change nothing; with weights they move training, and every arm logs what the
    weights read: KL_t's quantiles and the top-decile tokens."""
    coin_flip_rewards(monkeypatch)
    base = dataclasses.replace(TINY_RL, max_new_tokens=10, updates_per_batch=2)
    plain, log = rl.train_rl(tiny_model, tokenizer, base, show_progress=False)
    both = dataclasses.replace(base, weight_normalise=True, weight_shuffle=True)
    same, _ = rl.train_rl(tiny_model, tokenizer, both, show_progress=False)
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), same.parameters()))
    logged = [r for r in log if "kl_q90" in r]
    assert logged and all(0 <= r["kl_q50"] <= r["kl_q90"] <= r["kl_q99"] for r in logged)
    for r in logged:
        assert sum(r["top_decile_tokens"].values()) >= 0.1 * sum(r["tokens"].values())
        assert set(r["top_decile_tokens"]) <= set(r["tokens"])
    weighted = dataclasses.replace(base, weight_scale=1.0, weight_alpha=1000.0, weight_normalise=True)
    runs = [rl.train_rl(tiny_model, tokenizer, c, show_progress=False)
            for c in (weighted, dataclasses.replace(weighted, weight_shuffle=True))]
    assert all(abs(r["weight_mean"] - 1) < 1e-5 for _, lg in runs for r in lg if r["weighted_updates"])
    assert not all(torch.equal(a, b) for a, b in zip(runs[0][0].parameters(), runs[1][0].parameters()))


def test_unknown_weight_divergence_is_refused():
    with pytest.raises(ValueError, match="weight_divergence"):
        rl.RLConfig(weight_divergence="base")


def test_old_log_probs_cover_every_row(tokenizer, tiny_model, monkeypatch):
    """pi_old comes from the first update's own pass for its rows and from a no-grad pass for the rest (the
    other mini-batch, dropped groups): on the first step the policy is the base, so the KL to it is ~0 only if
    every row's old log-probs were filled in; after an update it is not."""
    coin_flip_rewards(monkeypatch)
    config = dataclasses.replace(TINY_RL, max_new_tokens=10, updates_per_batch=2, samples_per_prompt=2,
                                 prompts_per_step=4, skip_uniform_groups=True, lr=1e-2)
    _, log = rl.train_rl(tiny_model, tokenizer, config, show_progress=False)
    assert 0 < log[0]["groups_kept"] < 1
    assert log[0]["kl_to_base"] < 1e-9 < log[1]["kl_to_base"]
