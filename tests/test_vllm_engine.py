"""The real engine: vLLM (its CPU build here; `make test` runs this module in the engine's environment, where
TOKENSHIFT_REQUIRE_VLLM=1 makes a vLLM that does not import a failure, not a skip), on the Qwen-shaped pair with
Qwen2.5's real vocabulary: 151,665 tokens and a 151,936-row output layer, two heads of 64 dimensions (the CPU
attention's least). The base's padding rows are scaled up so that, unmasked, one of them is its greedy token:
a request that let them through would show. One engine serves the module (it takes 20-50 s to start)."""

import json
import os

import polars as pl
import pytest
import qwen_like
import torch
from tokenshift.models import engine
from tokenshift.models.loading import load_model
from tokenshift.models.sampling import Decoding, sample
from tokenshift.suite import cli

if os.environ.get("TOKENSHIFT_REQUIRE_VLLM"):
    import vllm  # noqa: F401  (an engine environment without a working vLLM fails here)
else:
    pytest.importorskip("vllm", reason="vLLM is not in this environment: `make test-engine` runs these in .venv-vllm")

PROMPTS = ["What is 2+3?", "Compute 1/2 + 1/4.", "How many sides has a hexagon?", "Name a prime."]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    base, rl, data = qwen_like.build(tmp_path_factory.mktemp("qwen"), vocabulary="qwen", hidden=128,
                                     teach=False)  # the engine samples the base; the instruct side only names files
    model, tok = load_model(base)
    with torch.no_grad():  # padding rows, unmasked, would win the argmax
        model.lm_head.weight[len(tok):] *= 5
    model.save_pretrained(base)
    return base, rl, data


@pytest.fixture(scope="module")
def base(pair):
    model, tok = load_model(pair[0])
    return model, tok, [tok(p)["input_ids"] for p in PROMPTS]


@pytest.fixture(scope="module")
def llm(pair):
    return engine.VllmEngine(pair[0], dtype="float32", max_model_len=64)


def test_the_padding_rows_are_what_an_unmasked_argmax_picks(base):
    model, tok, prompts = base
    assert model.config.vocab_size == qwen_like.QWEN_ROWS and len(tok) == 151_665
    with torch.no_grad():
        for p in prompts:
            assert int(model(torch.tensor([p])).logits[0, -1].argmax()) >= len(tok)


def test_greedy_equals_the_suites_decoder_and_draws_no_padding_row(base, llm):
    model, tok, prompts = base
    kw = dict(max_new_tokens=12, eos_token_id=tok.eos_token_id, vocab_size=len(tok), temperature=0.0)
    by_engine = llm.sample(prompts, **kw)
    by_suite = sample(model, prompts, pad_token_id=tok.pad_token_id, **kw)
    assert by_engine.response_ids == by_suite.response_ids
    assert max(t for ids in by_engine.response_ids for t in ids) < len(tok)


def test_the_requests_sent_carry_no_id_list_and_few_biased_ids(base, llm, monkeypatch):
    model, tok, prompts = base
    sent = []

    def params(**kw):
        sent.append(kw)
        return vllm_params(**kw)

    vllm_params = llm.params
    monkeypatch.setattr(llm, "params", params)
    llm.sample(prompts[:2], n=2, max_new_tokens=4, eos_token_id=tok.eos_token_id, vocab_size=len(tok))
    assert len(sent) == 4
    for kw in sent:
        assert "allowed_token_ids" not in kw and len(kw["logit_bias"]) == qwen_like.QWEN_ROWS - len(tok) <= 1024


def test_units_stream_as_they_finish_with_the_same_draws_as_alone(base, llm, monkeypatch):
    model, tok, prompts = base
    kw = dict(n=3, max_new_tokens=10, eos_token_id=tok.eos_token_id, vocab_size=len(tok), temperature=1.0)
    units = [(u, [prompts[u], prompts[u + 1]], list(range(6 * u, 6 * u + 6))) for u in range(3)]
    monkeypatch.setattr(llm, "window", 6)  # one unit (2 prompts x 3 responses) ahead at a time
    decoding, rest = Decoding.split({**kw, "seed": 100})
    streamed = dict(llm.sample_units(units, decoding, **rest))
    assert sorted(streamed) == [0, 1, 2]
    for key, unit_prompts, numbers in units:
        alone = llm.sample(unit_prompts, seed=100, responses=numbers, **kw)  # each response's own seed: the same
        assert streamed[key].response_ids == alone.response_ids and streamed[key].prompt_index == [0, 0, 0, 1, 1, 1]
    drawn = [t for out in streamed.values() for ids in out.response_ids for t in ids]
    assert len(set(drawn)) > 20 and max(drawn) < len(tok)  # sampled, never a padding row


def test_a_context_longer_than_the_model_is_refused_before_the_engine_starts(pair):
    with pytest.raises(engine.EngineUnavailable, match=r"up to 600 positions, more than the model's 512: lower "
                                                       r"max_new_tokens"):
        engine.VllmEngine(pair[0], max_model_len=600)


def test_sample_with_the_engine_from_the_command_line(pair, tmp_path):
    base_dir, rl_dir, data = pair
    args = ["sample", "--base", base_dir, "--tuned", rl_dir, "--data", data, "--from", "base", "--samples", 2,
            "--max-new-tokens", 8, "--temperature", 0, "--prompts-per-unit", 2, "--dtype", "float32"]
    assert cli.main([str(a) for a in [*args, "--engine", "vllm", "--out", tmp_path / "e.parquet"]]) == 0
    assert cli.main([str(a) for a in [*args, "--out", tmp_path / "s.parquet"]]) == 0
    by_engine, by_suite = pl.read_parquet(tmp_path / "e.parquet"), pl.read_parquet(tmp_path / "s.parquet")
    assert by_engine.select("problem", "response", "prompt_ids", "response_ids").equals(
        by_suite.select("problem", "response", "prompt_ids", "response_ids"))  # greedy: token for token
    meta = json.loads((tmp_path / "e.parquet.meta.json").read_text())
    assert meta["engine"].startswith("vllm 0.")
