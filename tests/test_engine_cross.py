"""Cross-sampling with both models in the engine (vLLM's CPU build; `make test-engine` runs this module) against
the per-token lockstep, the reference implementation: a Qwen-shaped pair of two heads of 64 dimensions whose
base half-learnt the answers its RL model knows (accuracy about 0.4 against 1.0 under sampling, top-p JS
above 0.1 at a few percent of steps). Two engines share the process, one per model."""

import math
import os
from types import SimpleNamespace

import pytest
import qwen_like
import torch
from tokenshift.analyses.cross_sampling import cross_sample_by_names as cross_sample
from tokenshift.models import engine
from tokenshift.models.divergence import log_probs, top_p_js
from tokenshift.models.loading import load_model
from tokenshift.problems import math_answers, problem_sets
from transformers import AutoTokenizer

if os.environ.get("TOKENSHIFT_REQUIRE_VLLM"):
    import vllm  # noqa: F401  (an engine environment without a working vLLM fails here)
else:
    pytest.importorskip("vllm", reason="vLLM is not in this environment: `make test-engine` runs these in .venv-vllm")

NEW = 40  # the taught answer, "So the answer is \boxed{5}." and its stop, fits


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    base, rl, _ = qwen_like.build(tmp_path_factory.mktemp("cross"), hidden=128, padded=False, base_steps=25)
    tok = AutoTokenizer.from_pretrained(rl)
    prompts = [problem_sets.math_prompt(tok, p["problem"]) for p in qwen_like.PROBLEMS]
    context = max(map(len, prompts)) + NEW
    return SimpleNamespace(
        tok=tok, prompts=prompts, stops=set(tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])),
        models=(load_model(base)[0], load_model(rl)[0]),
        engines=tuple(engine.VllmEngine(str(m), dtype="float32", max_model_len=context) for m in (base, rl)))


def both(pair, forward=True, **kw):
    """(lockstep, engine) cross-samples of the pair: forward, the base decodes and the RL model intervenes."""
    order = slice(None) if forward else slice(None, None, -1)
    common = dict(max_new_tokens=NEW, eos_token_id=pair.stops, pad_token_id=0, vocab_size=len(pair.tok),
                  top_p=0.7, js_top_p=0.7, **kw)
    return (cross_sample(*pair.models[order], pair.prompts, method="lockstep", **common),
            cross_sample(*pair.engines[order], pair.prompts, method="engine", **common))


def accuracy(pair, out) -> list[bool]:
    return [math_answers.is_correct(qwen_like.PROBLEMS[i]["answer"], pair.tok.decode(ids))
            for i, ids in zip(out.prompt_index, out.response_ids)]


@pytest.mark.parametrize("forward", [True, False], ids=["forward", "reverse"])
@pytest.mark.parametrize("rule", [{"eps": 0.1}, {"eps": 0.01}, {"eps": 0.01, "cap": 1},
                                  {"random_fraction": [0.2] * 12}], ids=["eps 0.1", "eps 0.01", "capped", "random"])
def test_greedy_handovers_and_tokens_are_the_locksteps(pair, forward, rule):
    lock, eng = both(pair, forward, n=4, temperature=0.0, seed=5, **rule)
    steps = [js for row in lock.js for js in row]
    if "eps" in rule:  # no JS on a knife edge, where rounding could decide the handover
        assert min(abs(js - rule["eps"]) for js in steps) > 1e-4
    assert eng.response_ids == lock.response_ids and eng.stop_token == lock.stop_token
    assert eng.chosen == lock.chosen and eng.changed == lock.changed
    assert max(abs(a - b) for x, y in zip(lock.js, eng.js) for a, b in zip(x, y)) < 1e-4
    if "eps" in rule and rule["eps"] == 0.01 and forward:
        assert 0 < sum(map(sum, eng.chosen)) < 0.5 * len(steps)  # the pair differs at some steps, not all


def test_sampled_handover_rates_and_accuracy_agree_with_the_lockstep(pair):
    """Other random streams, the same distributions: over 120 responses per backend the mean handovers per
    response and the accuracies differ by less than 4 standard errors (a false alarm about once in 16,000)."""
    lock, eng = both(pair, n=40, temperature=1.0, seed=11, eps=0.1)
    for name, (a, b) in {"handovers": (list(map(sum, lock.chosen)), list(map(sum, eng.chosen))),
                         "accuracy": (accuracy(pair, lock), accuracy(pair, eng))}.items():
        a, b = torch.tensor(a, dtype=torch.double), torch.tensor(b, dtype=torch.double)
        se = math.sqrt(a.var() / len(a) + b.var() / len(b))
        assert abs(a.mean() - b.mean()) < 4 * max(se, 1e-3), (name, float(a.mean()), float(b.mean()), se)
    assert 0 < sum(accuracy(pair, eng)) < len(eng.response_ids) or sum(map(sum, eng.chosen)) > 0


def test_recorded_divergences_are_a_teacher_forced_forwards(pair):
    """The JS the engine backend records at every step (handovers included) is the top-p JS of the two models
    read teacher-forced on the finished response, to 1e-4."""
    _, eng = both(pair, n=6, temperature=1.0, seed=2, eps=0.05)
    handed = 0
    for i, ids, recorded, chosen in zip(eng.prompt_index, eng.with_stop_tokens(), eng.js, eng.chosen):
        prompt = pair.prompts[i]
        with torch.no_grad():
            logits = [m(torch.tensor([prompt + ids])).logits[0, len(prompt) - 1 : -1, : len(pair.tok)]
                      for m in pair.models]
        forced = top_p_js(*(log_probs(x.float())[1] for x in logits), 0.7)
        assert torch.allclose(forced, torch.tensor(recorded), atol=1e-4)
        handed += sum(chosen)
    assert handed > 0


def test_the_engines_say_what_they_were_asked(pair):
    for e in pair.engines:
        e.work.kinds.clear()
    _, eng = both(pair, n=2, temperature=1.0, seed=3, eps=0.1)
    primary, intervention = (e.work.kinds for e in pair.engines)
    drafted = primary["draft"]["new_tokens"]
    assert drafted >= sum(map(len, eng.response_ids)) and intervention["force"]["requests"] == primary["draft"]["requests"]
    assert intervention["force"]["new_tokens"] == drafted  # the intervention decodes exactly the drafted chunks
    # handed-over tokens are drawn from the intervention's listed ids where they decide it: no request for those
    assert intervention.get("handover", {}).get("requests", 0) <= sum(map(sum, eng.chosen))
    whole = sum(k.get("whole distribution", {}).get("requests", 0) for k in (primary, intervention))
    assert whole <= 2 * drafted  # at most both models at every drafted position


def test_full_vocabulary_js_is_refused_in_the_engine(pair):
    with pytest.raises(ValueError, match="decides on top-p JS"):
        cross_sample(*pair.engines, pair.prompts, method="engine", max_new_tokens=4, eos_token_id=pair.stops,
                     pad_token_id=0, vocab_size=len(pair.tok), js_top_p=1.0)
