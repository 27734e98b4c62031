import random

import numpy as np
import polars as pl
import pytest
from conftest import TINY_TOKENIZER
from tokenshift.organism import properties, task
from tokenshift.organism.tokenizer import build_tokenizer


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(TINY_TOKENIZER)


def test_decisions_sit_where_the_demonstrator_takes_them(tok):
    found = properties.decision_positions(task.Demonstrator(), tok, 60, seed=3)
    assert set(found["kind"]) <= set(task.DECISIONS) and {"strategy", "stop", "method", "sum"} <= set(found["kind"])
    # the first decision of every response is its strategy, before its first token; a stopped response's stop
    # decision falls on its end-of-sequence token, the last position
    assert (found.filter(pl.col("kind") == "strategy")["position"] == 0).all()
    assert found["rel_position"].is_between(0, 1).all()
    # re-derived by decoding, for the same demonstrations (same problems, same writer stream): a decision's
    # token is the first whose text starts at or after the decision's character offset
    rng, expected = random.Random(3), []
    for problem in task.sample_problems(60, "train", seed=3):
        written = task.Demonstrator().write(problem, rng)
        ids = tok(written.text)["input_ids"]
        for offset, kind in written.decisions:
            position = next((i for i in range(len(ids)) if len(tok.decode(ids[:i])) >= offset), len(ids))
            expected.append((kind, position, len(ids) + written.stopped))
    assert list(found.select("kind", "position", "length").iter_rows()) == expected


def test_uncertainty_and_lengths_match_numpy():
    rng = np.random.default_rng(0)
    n = 500
    table = pl.DataFrame({"response": np.repeat(np.arange(50), 10), "length": np.repeat(rng.integers(5, 60, 50), 10),
                          "entropy_base": rng.exponential(0.5, n), "nucleus_base": rng.integers(1, 7, n)})
    got = properties.uncertainty(table, "base")
    e, k = table["entropy_base"].to_numpy(), table["nucleus_base"].to_numpy()
    assert got["entropy_gt_0.3"] == pytest.approx(np.mean(e > 0.3)) and got["entropy_gt_1.0"] == pytest.approx(np.mean(e > 1))
    assert got["nucleus_1"] + got["nucleus_2_3"] + got["nucleus_4_up"] == pytest.approx(1.0)
    assert got["nucleus_4_up"] == pytest.approx(np.mean(k >= 4))
    lengths = table["length"].to_numpy()[::10]
    got = properties.response_lengths(table)
    assert got["mean"] == pytest.approx(lengths.mean()) and got["max"] == lengths.max()
    assert got["q90"] == pytest.approx(np.quantile(lengths, 0.9))
