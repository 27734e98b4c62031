import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import rel_entr
from scipy.stats import entropy as scipy_entropy
from tokenshift.models import divergence as dv
from tokenshift.models import metrics
from tokenshift.models.metrics import pair_metrics


def scipy_js(p, q):
    """JS from scipy's relative entropies (jensenshannon(...)**2 gives NaN for near-identical rows)."""
    m = 0.5 * (np.asarray(p) + np.asarray(q))
    return 0.5 * rel_entr(p, m).sum() + 0.5 * rel_entr(q, m).sum()


def random_logits(n, v, scale, seed):
    return torch.randn(n, v, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).float() * scale


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 50), st.floats(0.1, 20.0), st.integers(0, 10_000))
def test_full_vocabulary_metrics_match_scipy(v, scale, seed):
    a, b = random_logits(4, v, scale, seed), random_logits(4, v, scale, seed + 1)
    m = pair_metrics(a, b, top_p=1.0, max_k=min(10, v))
    p, q = a.double().softmax(-1).numpy(), b.double().softmax(-1).numpy()
    for i in range(4):
        assert m["js"][i].item() == pytest.approx(scipy_js(p[i], q[i]), abs=1e-5)
        assert m["kl_base_tuned"][i].item() == pytest.approx(scipy_entropy(p[i], q[i]), abs=1e-4, rel=1e-4)
        assert m["kl_tuned_base"][i].item() == pytest.approx(scipy_entropy(q[i], p[i]), abs=1e-4, rel=1e-4)
        assert m["entropy_base"][i].item() == pytest.approx(scipy_entropy(p[i]), abs=1e-5)
    assert torch.equal(m["js"], m["js_top_p"])  # top_p = 1 truncates nothing


def test_edge_cases():
    big = 1e4
    identical = torch.tensor([[1.0, 2.0, 3.0]])
    one_hot_a, one_hot_b = torch.tensor([[big, 0.0, 0.0]]), torch.tensor([[0.0, 0.0, big]])
    peaked = torch.tensor([[30.0, 0.0, 0.0]])
    assert pair_metrics(identical, identical)["js"].item() == 0.0
    assert pair_metrics(one_hot_a, one_hot_b)["js"].item() == pytest.approx(math.log(2), abs=1e-6)
    assert pair_metrics(one_hot_a, one_hot_a)["js"].item() == pytest.approx(0.0, abs=1e-7)
    p = peaked.double().softmax(-1).numpy()[0]
    q = identical.double().softmax(-1).numpy()[0]
    assert pair_metrics(peaked, identical, top_p=1.0)["js"].item() == pytest.approx(scipy_js(p, q), abs=1e-6)


def test_top_p_js_with_disjoint_supports_is_ln2():
    a = torch.tensor([[5.0, 4.0, 0.0, 0.0]])
    b = torch.tensor([[0.0, 0.0, 4.0, 5.0]])
    m = pair_metrics(a, b, top_p=0.7)
    assert m["js_top_p"].item() == pytest.approx(math.log(2))
    assert m["js"].item() < math.log(2)


def test_top_p_truncation_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    assert dv.top_p_truncate(probs, 0.7)[0].tolist() == pytest.approx([0.625, 0.375, 0, 0])
    kept = lambda p: (dv.top_p_truncate(probs, p) > 0)[0].tolist()
    assert kept(0.3) == [True, False, False, False]
    assert kept(0.79) == [True, True, False, False]
    assert kept(0.81) == [True, True, True, False]
    assert kept(1.0) == [True] * 4
    shuffled = probs[:, [2, 0, 3, 1]]
    assert (dv.top_p_truncate(shuffled, 0.79) > 0)[0].tolist() == [False, True, False, True]


def sorted_top_p_support(logp, p):
    """Reference: sort, keep while the mass ranked above is below p."""
    order = np.argsort(-logp)
    probs = np.exp(logp[order])
    keep = np.zeros_like(logp, dtype=bool)
    keep[order[(np.cumsum(probs) - probs) < p]] = True
    return keep


@pytest.mark.parametrize("vocab, scale", [(1000, 3.0), (1000, 0.01), (50, 1.0)])  # 0.01: flat, nucleus > probe
def test_top_p_support_matches_a_full_sort(vocab, scale):
    logp = random_logits(20, vocab, scale, 3).log_softmax(-1)
    for p in (0.1, 0.7, 0.95):
        probs = logp.exp()
        got = (probs >= dv.top_p_threshold(probs, p, probe=64)).numpy()
        for row in range(20):
            assert (got[row] == sorted_top_p_support(logp[row].double().numpy(), p)).all()


@pytest.mark.parametrize("scale", [0.01, 1.0, 10.0])
def test_sparse_top_p_js_equals_the_dense_computation(scale):
    p = random_logits(30, 500, scale, 8).softmax(-1)
    q = random_logits(30, 500, scale, 9).softmax(-1)
    dense = dv.js_divergence(dv.top_p_truncate(p, 0.7), dv.top_p_truncate(q, 0.7))
    assert torch.allclose(dv.top_p_js(p, q, 0.7), dense, atol=1e-6)


def test_top_p_js_matches_scipy_on_renormalised_union():
    a, b = random_logits(1, 8, 2.0, 0), random_logits(1, 8, 2.0, 1)
    m = pair_metrics(a, b, top_p=0.7)
    p = dv.top_p_truncate(dv.log_probs(a)[1], 0.7).double().numpy()[0]
    q = dv.top_p_truncate(dv.log_probs(b)[1], 0.7).double().numpy()[0]
    assert m["js_top_p"].item() == pytest.approx(scipy_js(p, q), abs=1e-6)


def test_ranks_and_overlaps():
    base = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]]).log_softmax(-1)
    rl = torch.tensor([[0.0, 1.0, 4.0, 3.0, 2.0]]).log_softmax(-1)  # RL top-1 is the base's 3rd token
    m = pair_metrics(base, rl, max_k=5)
    assert m["tuned_top1_base_rank"].item() == 2
    assert not m["top1_agree"].item()
    assert m["tuned_top1_base_prob"].item() == pytest.approx(base.exp()[0, 2].item())
    # top sets: base 0,1,2,3,4 ; rl 2,3,4,1,0
    assert m["topk_overlap"][0].tolist() == pytest.approx([0.0, 0.0, 1 / 3, 3 / 4, 1.0])


def test_chunking_does_not_change_results():
    a, b = random_logits(300, 40, 3.0, 5), random_logits(300, 40, 3.0, 6)
    whole = pair_metrics(a, b)
    parts = [pair_metrics(a[i : i + 64], b[i : i + 64]) for i in range(0, 300, 64)]
    for name, value in whole.items():
        assert torch.equal(value, torch.cat([p[name] for p in parts])), name


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="logit shapes differ"):
        pair_metrics(torch.zeros(2, 5), torch.zeros(2, 6))


@pytest.mark.parametrize("case", ["peaked", "flat", "ties_beyond_the_probe", "one_sided_wide"])
def test_top_p_js_from_the_probe_equals_the_dense_computation(case):
    g = torch.Generator().manual_seed(3)
    peaked = torch.randn(30, 2000, generator=g) * 3
    peaked[:, :5] += 20
    other = peaked + torch.randn(30, 2000, generator=g)
    a, b = {"peaked": (peaked, other),
            "flat": (torch.randn(30, 2000, generator=g), torch.randn(30, 2000, generator=g)),
            "ties_beyond_the_probe": (torch.zeros(30, 2000).index_fill_(1, torch.arange(300), 5.0), peaked),
            "one_sided_wide": (peaked, torch.randn(30, 2000, generator=g) * 0.1)}[case]
    dense = dv.top_p_js(dv.log_probs(a)[1], dv.log_probs(b)[1], 0.7)
    assert torch.allclose(pair_metrics(a, b)["js_top_p"], dense, atol=1e-6)


def test_the_fused_metrics_equal_their_eager_version(monkeypatch):
    a, b = random_logits(50, 3000, 4.0, 11), random_logits(50, 3000, 4.0, 12)
    fused = pair_metrics(a, b)
    assert metrics._compiled is not metrics._dense, "torch.compile failed here: see the warning it printed"
    monkeypatch.setenv("TOKENSHIFT_COMPILE", "0")
    eager = pair_metrics(a, b)
    for name, value in fused.items():
        assert torch.allclose(value.float(), eager[name].float(), atol=1e-6, rtol=1e-5), name


def test_a_masked_vocabulary_contributes_nothing():
    """Logits of -inf (tokens a model can never emit) have probability 0: every metric equals the float64
    reference on the tokens that remain, none is inf or NaN."""
    a = random_logits(6, 40, 3.0, 21)
    b = a + random_logits(6, 40, 0.7, 22)  # related models: their nuclei overlap
    masked = torch.zeros(40, dtype=torch.bool)
    masked[::3] = True
    a[:, masked], b[:, masked] = -math.inf, -math.inf
    b[0, 1] = -math.inf  # one token masked by one model only
    m = pair_metrics(a, b, top_p=0.7)
    for name in ("js", "js_top_p", "entropy_base", "entropy_tuned", "kl_tuned_base"):
        assert torch.isfinite(m[name]).all(), name
    p, q = a.double().softmax(-1).numpy(), b.double().softmax(-1).numpy()
    for i in range(6):
        assert m["js"][i].item() == pytest.approx(scipy_js(p[i], q[i]), abs=1e-5)
        assert m["entropy_base"][i].item() == pytest.approx(scipy_entropy(p[i]), abs=1e-5)
        assert m["kl_tuned_base"][i].item() == pytest.approx(scipy_entropy(q[i], p[i]), abs=1e-4, rel=1e-4)
        if i > 0:  # row 0: the base gives mass to a token the tuned model masks, so KL(base || tuned) is infinite
            assert m["kl_base_tuned"][i].item() == pytest.approx(scipy_entropy(p[i], q[i]), abs=1e-4, rel=1e-4)
        tp = dv.top_p_truncate(torch.tensor(p[i : i + 1]).float(), 0.7).double().numpy()[0]
        tq = dv.top_p_truncate(torch.tensor(q[i : i + 1]).float(), 0.7).double().numpy()[0]
        assert m["js_top_p"][i].item() == pytest.approx(scipy_js(tp, tq), abs=1e-5)
    assert m["kl_base_tuned"][0].item() == math.inf  # truly infinite, never NaN


@pytest.mark.parametrize("scale", [0.01, 3.0])
def test_nucleus_sizes_count_the_top_p_set(scale):
    a, b = random_logits(20, 400, scale, 31), random_logits(20, 400, scale, 32)
    m = pair_metrics(a, b, top_p=0.7)
    for logits, name in ((a, "nucleus_base"), (b, "nucleus_tuned")):
        expected = [int(sorted_top_p_support(row.double().log_softmax(-1).numpy(), 0.7).sum()) for row in logits]
        assert m[name].tolist() == expected
