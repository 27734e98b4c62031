"""The vLLM engine path without vLLM itself (the real engine's tests are in test_vllm_engine.py): the requests
it builds (ids verbatim, every setting explicit, the pair's stop set, one seed per response, padding rows biased
away with no id list), how it starts (context, tensor-parallel size, memory share, refusals), its outputs read
back into the responses schema, the refusal when vLLM is missing, and `tokenshift sample --engine vllm` and
`tokenshift cross-sample --engine vllm` end to end against a stand-in engine that decodes with the suite's own
sampler, including a run interrupted and resumed."""

import dataclasses
import json
import sys
import types

import polars as pl
import pytest
import qwen_like
from tokenshift.analyses.reference_responses import SamplingConfig
from tokenshift.models import engine
from tokenshift.models.loading import load_model
from tokenshift.models.sampling import Decoding, sample
from tokenshift.suite import cli
from transformers import AutoTokenizer

DECODING = Decoding(40, {7, 3}, 0, vocab_size=10, temperature=0.6, top_p=0.7)


def decoding(vocab_size: int) -> Decoding:
    return Decoding(40, {7, 3}, 0, vocab_size=vocab_size, temperature=0.6, top_p=0.7)


def test_every_setting_is_explicit_and_padding_rows_are_biased_away():
    made = engine.settings(DECODING, 12, seed=5)
    assert made["max_tokens"] == 40 and made["stop_token_ids"] == [3, 7] and made["seed"] == 5
    assert (made["temperature"], made["top_p"], made["top_k"], made["min_p"]) == (0.6, 0.7, 0, 0.0)
    assert made["repetition_penalty"] == 1.0 and made["presence_penalty"] == made["frequency_penalty"] == 0.0
    assert made["ignore_eos"] and not made["detokenize"] and made["n"] == 1  # the pair's stop set only; ids only
    assert made["logit_bias"] == {10: -100.0, 11: -100.0} and "allowed_token_ids" not in made
    assert engine.settings(DECODING, 10, seed=5)["logit_bias"] is None
    assert engine.settings(DECODING, 12, seed=5, max_new_tokens=3)["max_tokens"] == 3  # a request's own limit


@pytest.mark.parametrize("rows", [151_936, 152_064])  # Qwen2.5's two padded output layers
def test_qwen_requests_carry_no_id_list_and_at_most_1024_biased_ids(rows):
    # vLLM's GPU model runner refuses a request with more than 1,024 allowed or biased ids in the engine core
    made = engine.settings(decoding(151_665), rows, seed=0)
    assert "allowed_token_ids" not in made and len(made["logit_bias"]) == rows - 151_665 <= engine.MAX_BIASED_IDS
    assert min(made["logit_bias"]) == 151_665 and max(made["logit_bias"]) == rows - 1
    wide = engine.settings(decoding(1000), 1000 + engine.MAX_BIASED_IDS + 1, seed=0)
    assert wide["logit_bias"] is None  # past the cap no bias; a drawn padding row is refused after
    with pytest.raises(RuntimeError, match=r"drew id 1000 for response 2, an output-layer row past the 1000-token"):
        engine.token_ids(done([5, 1000], "length"), {3}, 2, vocab_size=1000)


def test_the_context_is_the_longest_prompt_plus_the_budget():
    assert engine.context_length([[1, 2, 3], [4] * 10, [5]], 8192) == 8202


@pytest.mark.parametrize("heads, visible, asked, expected", [(40, 3, None, 2), (28, 8, None, 7), (40, 8, None, 8),
                                                              (14, 4, None, 2), (40, 0, None, 1), (40, 8, 4, 4)])
def test_the_tensor_parallel_size_divides_the_heads(heads, visible, asked, expected):
    assert engine.tensor_parallel_size(heads, visible, asked) == expected


def test_a_tensor_parallel_size_that_cannot_split_the_heads_is_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"--gpus-per-rank 3: .* 40 attention heads .* choose one of \[1, 2\]"):
        engine.tensor_parallel_size(40, 3, 3)


GIB = engine.GIB


def test_the_memory_share_fits_the_machine():
    # a CPU: the engine's process, the weights and the KV of a few whole contexts, as a share of RAM
    share = engine.memory_share(weights=GIB, kv_per_token=1024, context=1024, gpus=0, total=24 * GIB,
                                available=20 * GIB)
    assert share == round((engine.CPU_OVERHEAD + GIB + 1024 * 1024 * engine.CPU_ROWS) / (24 * GIB), 4)
    assert engine.memory_share(weights=GIB, kv_per_token=1, context=1, gpus=0, total=24 * GIB,
                               available=20 * GIB, asked=0.3) == 0.3
    # a 32B in bf16 (~61 GiB) over 2 H200s at 8k tokens: 0.9 by default
    assert engine.memory_share(weights=61 * GIB, kv_per_token=262_144, context=8192, gpus=2, total=141 * GIB,
                               available=140 * GIB) == 0.9


def test_an_engine_that_cannot_hold_the_model_and_one_context_is_refused_with_its_fix():
    with pytest.raises(engine.EngineUnavailable, match=r"needs 62\.0 GiB per GPU .* share 0\.3 of 80 GiB is 24\.0 "
                                                       r"GiB: raise the memory share \(--engine-memory\), shard over "
                                                       r"more GPUs \(--gpus-per-rank\), or lower max_new_tokens"):
        engine.memory_share(weights=61 * GIB, kv_per_token=131_072, context=8192, gpus=1, total=80 * GIB,
                            available=79 * GIB, asked=0.3)
    with pytest.raises(engine.EngineUnavailable, match=r"needs 9\.0 GiB of RAM .* lower max_new_tokens, free memory"):
        engine.memory_share(weights=6 * GIB, kv_per_token=0, context=10, gpus=0, total=24 * GIB,
                            available=4 * GIB)


def test_one_request_per_response_with_its_own_seed():
    prompts = [[1, 2, 3], [4]]
    inputs, params = engine.requests(prompts, 3, dataclasses.replace(DECODING, seed=11), 12)
    assert [x["prompt_token_ids"] for x in inputs] == [[1, 2, 3]] * 3 + [[4]] * 3  # prompt-major, verbatim
    seeds = [p["seed"] for p in params]
    again = engine.requests(prompts, 3, dataclasses.replace(DECODING, seed=11), 12)[1]
    assert len(set(seeds)) == 6 and seeds == [p["seed"] for p in again]
    assert not set(seeds) & {p["seed"] for p in engine.requests(prompts, 3, dataclasses.replace(DECODING, seed=12),
                                                                12)[1]}


def done(ids, reason, stop_reason=None):
    return types.SimpleNamespace(outputs=[types.SimpleNamespace(token_ids=ids, finish_reason=reason,
                                                                stop_reason=stop_reason)])


def test_outputs_become_the_suites_samples():
    outputs = [done([5, 6, 7], "stop", 7),  # the stop token kept in the ids
               done([5, 6], "stop", 3),  # a special stop token left out, named by stop_reason
               done([5, 6, 8, 9], "length")]
    out = engine.to_samples(outputs, 3, {3, 7})
    assert out.prompt_index == [0, 0, 0] and out.response_ids == [[5, 6], [5, 6], [5, 6, 8, 9]]
    assert out.stopped == [True, True, False] and out.stop_token == [7, 3, None]
    with pytest.raises(RuntimeError, match=r"stopped response 0 on 'end', which is not one of the pair's stop ids"):
        engine.to_samples([done([5], "stop", "end")], 1, {3, 7})


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return qwen_like.build(tmp_path_factory.mktemp("pair"))


def test_a_missing_engine_is_refused_with_how_to_get_it(pair, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # importing it fails, as where it is not installed
    base, rl, problems = pair
    assert cli.main(["sample", "--base", str(base), "--tuned", str(rl), "--data", str(problems), "--engine", "vllm",
                     "--max-new-tokens", "30", "--out", str(tmp_path / "x.parquet")]) == 2
    err = capsys.readouterr().err
    assert "the vllm engine is not installed in this environment" in err and "`make env-vllm`" in err
    with pytest.raises(ValueError, match=r"unknown sampling engine 'sglang': choose one of \('suite', 'vllm'\)"):
        SamplingConfig(engine="sglang")


class StandIn:
    """vllm's LLM and SamplingParams as far as the suite uses them, decoding each request with the suite's own
    sampler (its seed, length limit, stop ids, and no padding row where they are biased), keeping the stop token
    in the ids; a step of the engine's loop finishes up to ``per_step`` of the requests it holds, last added first."""

    seen, per_step = {}, None

    class SamplingParams:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    class LLM:
        def __init__(self, **kw):
            StandIn.seen["llm"], StandIn.seen["params"] = kw, []
            self.model = load_model(kw["model"])[0]
            self.llm_engine, self.queue = self, []

        def run(self, prompt, p):
            StandIn.seen["params"].append(p)
            out = sample(self.model, [prompt["prompt_token_ids"]], max_new_tokens=p.max_tokens, seed=p.seed,
                         eos_token_id=p.stop_token_ids, pad_token_id=0, temperature=p.temperature, top_p=p.top_p,
                         vocab_size=min(p.logit_bias or [self.model.config.vocab_size]))
            stop = out.stop_token[0]
            return done(out.response_ids[0] + [stop] * (stop is not None), "stop" if stop else "length", stop)

        def generate(self, inputs, params, use_tqdm):
            StandIn.seen["params"] = []
            return [self.run(x, p) for x, p in zip(inputs, params)]

        def add_request(self, request_id, prompt, params):
            self.queue.append((request_id, prompt, params))

        def step(self):
            finished = []
            while self.queue and len(finished) != StandIn.per_step:
                request_id, prompt, params = self.queue.pop()
                output = self.run(prompt, params)
                output.request_id, output.finished = request_id, True
                finished.append(output)
            return finished


@pytest.fixture
def stand_in(monkeypatch):
    module = types.ModuleType("vllm")
    module.__version__, module.LLM, module.SamplingParams = "0.0-stand-in", StandIn.LLM, StandIn.SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)


def test_sample_with_the_engine_writes_the_responses_schema(pair, tmp_path, stand_in):
    base, rl, problems = pair
    args = ["--base", base, "--tuned", rl, "--data", problems, "--samples", 3, "--max-new-tokens", 30,
            "--prompts-per-unit", 2]
    assert cli.main([str(a) for a in ["sample", *args, "--engine", "vllm", "--out", tmp_path / "e.parquet"]]) == 0
    assert cli.main([str(a) for a in ["sample", *args, "--out", tmp_path / "s.parquet"]]) == 0
    by_engine, by_suite = pl.read_parquet(tmp_path / "e.parquet"), pl.read_parquet(tmp_path / "s.parquet")
    assert by_engine.schema == by_suite.schema and len(by_engine) == 9
    assert by_engine.select("problem", "response", "prompt_ids").equals(by_suite.select("problem", "response",
                                                                                        "prompt_ids"))
    assert by_engine["correct"].any()  # the taught model's boxed answers, judged as usual
    llm = StandIn.seen["llm"]
    assert llm["skip_tokenizer_init"] and llm["generation_config"] == "vllm" and llm["model"] == str(rl)
    assert llm["max_model_len"] == max(map(len, by_suite["prompt_ids"].to_list())) + 30
    params = StandIn.seen["params"]
    assert {p.max_tokens for p in params} == {30} and {p.top_p for p in params} == {0.7}
    assert all(not hasattr(p, "allowed_token_ids") and len(p.logit_bias) <= engine.MAX_BIASED_IDS for p in params)
    tok = AutoTokenizer.from_pretrained(base)
    assert params[0].stop_token_ids == sorted(tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>"]))
    meta = json.loads((tmp_path / "e.parquet.meta.json").read_text())
    assert meta["engine"] == "vllm 0.0-stand-in" and meta["arguments"]["engine"] == "vllm"


def test_an_interrupted_engine_run_keeps_its_finished_units_and_resumes(pair, tmp_path, stand_in, monkeypatch):
    base, rl, problems = pair
    args = [str(a) for a in ["sample", "--base", base, "--tuned", rl, "--data", problems, "--samples", 2,
                             "--max-new-tokens", 12, "--prompts-per-unit", 1, "--engine", "vllm",
                             "--out", tmp_path / "e.parquet"]]
    whole = tmp_path / "whole.parquet"
    monkeypatch.setenv("TOKENSHIFT_CACHE", str(tmp_path / "whole-cache"))  # a cache of its own for the whole run
    assert cli.main([*args[:-1], str(whole)]) == 0
    monkeypatch.setenv("TOKENSHIFT_CACHE", str(tmp_path / "cache"))
    step = StandIn.LLM.step

    def fails_after_one_unit(self):  # the engine dies once a unit (one prompt's 2 requests) is done
        if StandIn.seen["params"]:
            raise KeyboardInterrupt
        return step(self)

    monkeypatch.setattr(StandIn, "per_step", 2)
    monkeypatch.setattr(StandIn.LLM, "step", fails_after_one_unit)
    with pytest.raises(KeyboardInterrupt):
        cli.main(args)
    parts = list((tmp_path / "cache" / "responses").glob(".*.parts/unit-*.parquet"))  # kept by the cache's entry
    assert len(parts) == 1 and not (tmp_path / "e.parquet").exists()  # the finished unit kept, nothing merged
    monkeypatch.setattr(StandIn.LLM, "step", step)
    assert cli.main(args) == 0
    assert len(StandIn.seen["params"]) == 4  # only the two units not finished were sampled again
    assert pl.read_parquet(tmp_path / "e.parquet").equals(pl.read_parquet(whole))


def test_a_profile_that_samples_with_a_missing_engine_is_refused_before_any_notebook(tmp_path, capsys, monkeypatch):
    import yaml
    from tokenshift.suite import profiles, runner

    monkeypatch.setitem(sys.modules, "vllm", None)
    spec = profiles.load("smoke")
    spec["shifts"] = {**spec.get("shifts", {}), "engine": "vllm"}
    path = tmp_path / "smoke-vllm.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert runner.main(["--profile", str(path)]) == 2
    assert "the vllm engine is not installed in this environment" in capsys.readouterr().err


def test_the_engine_drafts_each_prefix_with_its_own_request(pair, stand_in):
    base, rl, _ = pair
    tok = AutoTokenizer.from_pretrained(base)
    drafter = engine.VllmEngine(str(base), memory=0.25, max_model_len=64)
    llm = StandIn.seen["llm"]
    assert llm["gpu_memory_utilization"] == 0.25 and llm["enable_prefix_caching"] and llm["max_model_len"] == 64
    assert llm["tensor_parallel_size"] == 1
    stops = set(tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>"]))
    prefixes = [tok("What is 2+3?")["input_ids"], tok("1/2 + 1/4 =")["input_ids"]]
    drafted = drafter.draft(prefixes, [3, 5], [11, 12], Decoding(8, stops, 0, len(tok), temperature=0.0))
    params = StandIn.seen["params"]
    assert [p.max_tokens for p in params] == [3, 5] and [p.seed for p in params] == [11, 12]
    assert all(p.stop_token_ids == sorted(stops) and set(p.logit_bias) == set(range(len(tok), drafter.rows))
               for p in params)
    for prefix, ids, m in zip(prefixes, drafted, [3, 5]):
        alone = sample(drafter.llm.model, [prefix], max_new_tokens=m, eos_token_id=stops, pad_token_id=0,
                       temperature=0.0, vocab_size=len(tok))
        assert ids == alone.with_stop_tokens()[0]


def test_cross_sample_with_the_engine_drafting(pair, tmp_path, stand_in, capsys):
    base, rl, problems = pair
    args = ["--base", base, "--tuned", rl, "--data", problems, "--samples", 2, "--max-new-tokens", 24,
            "--temperature", 0, "--eps", "inf", 0.05, 0, "--cap", 1]
    assert cli.main([str(a) for a in ["cross-sample", *args, "--engine", "vllm", "--out", tmp_path / "e.parquet"]]) == 0
    assert cli.main([str(a) for a in ["cross-sample", *args, "--out", tmp_path / "s.parquet"]]) == 0
    by_engine, by_suite = pl.read_parquet(tmp_path / "e.parquet"), pl.read_parquet(tmp_path / "s.parquet")
    assert by_engine.equals(by_suite)  # greedy: the engine's drafts are the primary's own tokens
    assert by_engine.filter(pl.col("eps") == 0.0)["count"].sum() > 0  # the intervention had its turns
    assert StandIn.seen["llm"]["model"] == str(base) and StandIn.seen["llm"]["gpu_memory_utilization"] < 0.3
    meta = json.loads((tmp_path / "e.parquet.meta.json").read_text())
    assert meta["engine"] == "vllm 0.0-stand-in drafting, tokenshift verifying"
    assert cli.main([str(a) for a in ["cross-sample", *args, "--engine", "vllm", "--method", "lockstep", "--out",
                                      tmp_path / "x.parquet"]]) == 2
    assert "--engine vllm drafts for draft and verify" in capsys.readouterr().err
    assert not (tmp_path / "x.parquet").exists()
