import copy
import math

import pytest
import torch
from conftest import TINY_SHAPE
from tokenshift.analyses.cross_sampling import cross_sample_by_names as cross_sample
from tokenshift.analyses.cross_sampling import SUITE_METHODS
from tokenshift.models.metrics import pair_metrics
from tokenshift.models.sampling import sample
from tokenshift.organism import architecture

# every test holds for both decoders: draft and verify (the default) and the per-token lockstep
pytestmark = pytest.mark.parametrize("method", SUITE_METHODS)


@pytest.fixture
def pair(tokenizer):
    return (architecture.new_model(tokenizer, TINY_SHAPE, seed=0).eval(),
            architecture.new_model(tokenizer, TINY_SHAPE, seed=1).eval())


def prompts(tokenizer, texts=("1234+5678=", "9+1=", "55+5=")):
    return [[tokenizer.bos_token_id, *tokenizer(t)["input_ids"]] for t in texts]


def kw(tokenizer, max_new_tokens=16):
    return dict(max_new_tokens=max_new_tokens, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)


def middle_eps(pair, ps, tokenizer) -> float:
    """The median JS of the pair's steps: an eps at which both policies get turns."""
    seen = cross_sample(*pair, ps, n=2, seed=3, **kw(tokenizer)).js
    return float(torch.tensor([x for row in seen for x in row]).median())


@pytest.mark.parametrize("top_p", [1.0, 0.7])
def test_infinite_eps_is_plain_sampling_from_the_primary(tokenizer, pair, top_p, method):
    ps = prompts(tokenizer)
    ours = cross_sample(*pair, ps, eps=math.inf, n=3, seed=5, top_p=top_p, method=method, **kw(tokenizer))
    plain = sample(pair[0], ps, n=3, seed=5, top_p=top_p, **kw(tokenizer))
    assert ours.response_ids == plain.response_ids and ours.stopped == plain.stopped
    assert not any(any(f) for f in ours.intervened)


def test_negative_eps_is_plain_sampling_from_the_intervention(tokenizer, pair, method):
    ps = prompts(tokenizer)
    ours = cross_sample(*pair, ps, eps=-1.0, n=3, seed=5, method=method, **kw(tokenizer))
    plain = sample(pair[1], ps, n=3, seed=5, **kw(tokenizer))
    assert ours.response_ids == plain.response_ids
    assert all(all(f) for f in ours.intervened)
    assert ours.intervened_fraction() == [1.0] * 9


def test_greedy_infinite_eps_equals_generate(tokenizer, pair, method):
    for p in prompts(tokenizer):
        ours = cross_sample(*pair, [p], eps=math.inf, temperature=0, method=method, **kw(tokenizer))
        ref = pair[0].generate(torch.tensor([p]), do_sample=False, max_new_tokens=16,
                               eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)[0, len(p):].tolist()
        if ours.stopped[0]:
            ref = ref[: ref.index(tokenizer.eos_token_id)]
        assert ours.response_ids[0] == ref


def test_recorded_divergence_equals_a_teacher_forced_forward(tokenizer, pair, method):
    # left-padded batch of mixed prompt lengths; a middle eps so both policies get turns
    ps = prompts(tokenizer)
    eps = middle_eps(pair, ps, tokenizer)
    out = cross_sample(*pair, ps, eps=eps, n=2, seed=3, method=method, **kw(tokenizer))
    assert any(any(f) for f in out.intervened) and not all(all(f) for f in out.intervened)
    for i, ids, stopped, js, flags in zip(out.prompt_index, out.response_ids, out.stopped, out.js, out.intervened):
        seq = ps[i] + ids + [tokenizer.eos_token_id] * stopped
        with torch.no_grad():
            a, b = (m(torch.tensor([seq])).logits[0, len(ps[i]) - 1 : len(seq) - 1] for m in pair)
        expected = pair_metrics(a, b)["js"]
        assert torch.allclose(torch.tensor(js), expected, atol=1e-5)
        assert flags == (torch.tensor(js) > eps).tolist()


def test_random_control_meets_its_budget_on_average(tokenizer, pair, method):
    ps = prompts(tokenizer)
    n = 40
    targets = [0.1, 0.3, 0.6] * n  # one target per response
    out = cross_sample(*pair, ps, random_fraction=targets, n=n, seed=0, method=method,
                       **kw(tokenizer, max_new_tokens=24))
    lengths = [len(f) for f in out.intervened]
    expected_tokens = sum(t * l for t, l in zip(targets, lengths)) / len(targets)
    realised_tokens = sum(out.intervened_count()) / len(targets)
    assert abs(realised_tokens - expected_tokens) < 0.5


def test_bad_inputs_are_refused(tokenizer, pair, method):
    with pytest.raises(ValueError, match="empty prompt"):
        cross_sample(*pair, [[]], method=method, **kw(tokenizer))
    with pytest.raises(ValueError, match="one value per response"):
        cross_sample(*pair, prompts(tokenizer), random_fraction=[0.5], method=method, **kw(tokenizer))


def test_a_random_control_that_never_fires_draws_what_the_primary_draws(tokenizer, pair, method):
    """Why a sweep may reuse the divergence rule's rows where it handed nothing over: the control's coins come
    from their own stream, so at fraction 0 its tokens are the primary's, seed for seed."""
    ps = prompts(tokenizer)
    plain = cross_sample(*pair, ps, eps=math.inf, n=2, seed=9, method=method, **kw(tokenizer))
    never = cross_sample(*pair, ps, random_fraction=[0.0] * 6, n=2, seed=9, method=method, **kw(tokenizer))
    assert never.response_ids == plain.response_ids and never.js == plain.js
    assert not any(any(f) for f in never.intervened)


def test_a_sweep_has_every_response_for_every_eps_and_rule(tmp_path, tokenizer, pair, method):
    """Both rules, every eps, every response: even where a work unit never intervenes (here eps = 0.69,
    above any JS of this pair), so accuracies can be compared slice by slice."""
    import polars as pl
    from tokenshift.analyses.cross_sampling import SweepConfig, run_sweep
    from tokenshift.organism import task
    from tokenshift.organism.problems import OrganismProblems

    problems = OrganismProblems(task.sample_problems(3, "held_out", seed=0), tokenizer)
    config = SweepConfig(eps_grid=(math.inf, 0.69, 0.01, -1.0), samples_per_problem=2, max_new_tokens=6,
                         prompts_per_unit=2, method=method, rules=("random", "divergence", "divergence, first 2",
                                                                   "random, divergent", "entropy, intervention"))
    run_sweep(*pair, problems, config, tmp_path / "sweep.parquet", tmp_path / "parts", show_progress=False)
    sweep = pl.read_parquet(tmp_path / "sweep.parquet")
    counts = sweep.group_by("eps", "rule").len()
    assert len(counts) == 20 and (counts["len"] == 6).all()
    assert sweep.filter(pl.col("rule") == "divergence, first 2")["count"].max() <= 2
    assert (sweep["changed_count"] <= sweep["count"]).all()
    quiet = sweep.filter(pl.col("eps") == 0.69)
    assert quiet["count"].sum() == 0
    by_rule = {rule: quiet.filter(pl.col("rule") == rule).drop("rule") for rule in config.rules}
    assert all(by_rule["divergence"].equals(by_rule[r]) for r in ("random", "random, divergent",
                                                                 "entropy, intervention"))


def test_changed_steps_are_intervened_steps_where_the_greedy_choices_differ(tokenizer, pair, method):
    """At temperature 0 a handed-over step changes the text exactly where the two models' argmaxes differ on
    the mixed prefix: checked against a teacher-forced forward of each model."""
    ps = prompts(tokenizer)
    contrary = copy.deepcopy(pair[1])  # tiny random models can share their argmax everywhere: make them differ
    with torch.no_grad():
        contrary.model.norm.weight.neg_()  # its logits negated (the output layer is tied to the embedding)
    pair = (pair[0], contrary)
    out = cross_sample(*pair, ps, eps=-1.0, temperature=0, method=method, **kw(tokenizer))
    assert sum(out.changed_count()) > 0
    for i, ids, stopped, flags, changed in zip(out.prompt_index, out.response_ids, out.stopped, out.intervened,
                                               out.changed):
        seq = ps[i] + ids + [tokenizer.eos_token_id] * stopped
        with torch.no_grad():
            a, b = (m(torch.tensor([seq])).logits[0, len(ps[i]) - 1 : len(seq) - 1].argmax(-1) for m in pair)
        assert changed == [f and bool(x != y) for f, x, y in zip(flags, a, b)]


def test_changed_steps_lie_within_the_intervened_ones_when_sampling(tokenizer, pair, method):
    ps = prompts(tokenizer)
    out = cross_sample(*pair, ps, eps=middle_eps(pair, ps, tokenizer), n=4, seed=2, method=method, **kw(tokenizer))
    assert all(not c or f for cs, fs in zip(out.changed, out.intervened) for c, f in zip(cs, fs))
    assert 0 < sum(out.changed_count()) < sum(out.intervened_count())  # some handovers drew the same token


@pytest.mark.parametrize("cap", [1, 3])
def test_a_capped_rule_hands_over_each_responses_first_steps_above_eps_only(tokenizer, pair, cap, method):
    ps = prompts(tokenizer)
    eps = middle_eps(pair, ps, tokenizer)
    out = cross_sample(*pair, ps, eps=eps, cap=cap, n=4, seed=2, method=method, **kw(tokenizer))
    uncapped = cross_sample(*pair, ps, eps=eps, n=4, seed=2, method=method, **kw(tokenizer))
    assert max(out.intervened_count()) <= cap < max(uncapped.intervened_count())
    for js, flags in zip(out.js, out.intervened):
        above = [t for t, x in enumerate(js) if x > eps]
        assert [t for t, f in enumerate(flags) if f] == above[:cap]
    for a, b, flags in zip(out.response_ids, uncapped.response_ids, uncapped.intervened):
        fired = [t for t, f in enumerate(flags) if f]
        same_until = fired[cap] if len(fired) > cap else len(b)  # identical up to the first handover beyond the cap
        assert a[:same_until] == b[:same_until]


def test_controls_without_the_divergence_rule_or_entropy_from_engines_are_refused(method):
    from tokenshift.analyses.cross_sampling import SweepConfig

    with pytest.raises(ValueError, match="controls take the divergence rule's realised budget"):
        SweepConfig(rules=("entropy, primary",), method=method)
    with pytest.raises(ValueError, match="entropy control needs both models' full distributions"):
        SweepConfig(rules=("divergence", "entropy, primary"), method="engine")
    with pytest.raises(ValueError, match="unknown cross-sampling rule 'entropy'"):
        SweepConfig(rules=("divergence", "entropy"), method=method)


def test_impossible_rules_are_refused(tokenizer, pair, method):
    from tokenshift.analyses.cross_sampling import SweepConfig

    with pytest.raises(ValueError, match="cap must be an integer >= 1"):
        cross_sample(*pair, prompts(tokenizer), eps=0.1, cap=0, method=method, **kw(tokenizer))
    with pytest.raises(ValueError, match="divergence rule only"):
        cross_sample(*pair, prompts(tokenizer), random_fraction=[0.1] * 3, cap=2, method=method, **kw(tokenizer))
    with pytest.raises(ValueError, match="unknown cross-sampling rule 'first 2'"):
        SweepConfig(rules=("divergence", "first 2"))
    with pytest.raises(ValueError, match="add 'divergence'"):
        SweepConfig(rules=("random",))
