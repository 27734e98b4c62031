"""`tokenshift plan`: a profile's runs and their cost, without loading a model; its counts are what `prepare`
then runs on a tiny CPU profile."""

import math

import pytest
import qwen_like
import yaml
from tokenshift.analyses import cross_sampling, reference_responses
from tokenshift.models import loading
from tokenshift.suite import cli, plan, profiles, runner, study


def test_the_paper_table_is_priced_without_loading_a_model(monkeypatch, capsys):
    def refuse(*a, **k):
        raise AssertionError("plan loaded a model")

    monkeypatch.setattr(loading, "load_model", refuse)
    assert cli.main(["plan", "--profile", "paper-table"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("24 runs for profile 'paper-table'") and "H200:" in out and "assumed:" in out
    e = plan.estimate("paper-table")
    assert {r["responses"] for r in e["runs"]} == {30 * 32} and e["cap"] == 8192 and e["mean"] == 3600
    # both AIME years (this profile prices one) within about two H200-days, expected
    assert 2 * e["total"]["H200_hours_expected"] <= 48 < 2 * e["total"]["H200_hours_upper"]
    assert e["layout"]["H200"]["gpus"] == 1 and e["layout"]["H100"]["gpus"] == 2  # a 32B model beside its KV


def test_the_cost_model_follows_its_hardware_figures():
    model = plan.shape("Qwen/Qwen2.5-32B")
    assert model.kv_per_token == 2 * 64 * 8 * 128 * 2 and model.weights == pytest.approx(65.6e9)
    fast, slow = (plan.decode_hours(model, g, 960, 3600)["hours"] for g in ("H200", "A100-80GB"))
    assert fast < slow and plan.forward_hours(model, "A100-80GB", 1e6) > plan.forward_hours(model, "H200", 1e6)
    with pytest.raises(ValueError, match="cannot size 'org/mystery' without loading it"):
        plan.shape("org/mystery")
    with pytest.raises(ValueError, match="plan prices real checkpoints"):
        plan.runs("smoke")


def test_plans_counts_are_what_prepare_runs(tmp_path, monkeypatch):
    """A tiny pair of the Qwen shape (both models taught, so greedy responses run to the 4-token cap): every
    sampling and cross-sampling call `prepare` makes, its responses and its new tokens, as `plan` lists them."""
    base, rl, problems = qwen_like.build(tmp_path / "pair", base_steps=60)
    spec = {"pairs": {"base": str(base), "tuned": {"rl": str(rl)}, "data": str(problems), "max_new_tokens": 4},
            "shifts": {"n_problems": 3, "samples_per_problem": 2, "temperature": 0.0, "prompts_per_unit": 2,
                       "responses_per_unit": 4},
            "notebooks": {"01_sparsity": {}, "03_cross_sampling": {"eps_grid": [math.inf, -1.0], "bisection_steps": 0,
                                                                   "caps": [1], "robustness_top_p": 1.0}}}
    profile = tmp_path / "tiny.yaml"
    profile.write_text(yaml.safe_dump(spec))
    calls = {"sample": [], "cross-sample": []}

    def counting(job, fn):
        def wrapped(*args, **kwargs):
            out = fn(*args, **kwargs)
            calls[job].append((len(out.response_ids), sum(map(len, out.response_ids))))
            return out
        return wrapped

    monkeypatch.setattr(reference_responses, "decode", counting("sample", reference_responses.decode))
    monkeypatch.setattr(cross_sampling, "cross_sample", counting("cross-sample", cross_sampling.cross_sample))
    notebooks = {n: runner.parameters(n, p) for n, p in profiles.notebook_parameters(str(profile)).items()}
    study.for_profile(str(profile), show_progress=False).prepare(notebooks)
    planned = plan.estimate(str(profile))["runs"]
    for job in calls:
        runs = [r for r in planned if r["job"] == job]
        assert len(calls[job]) == sum(r["units"] for r in runs)
        assert sum(n for n, _ in calls[job]) == sum(r["responses"] for r in runs)
        assert sum(t for _, t in calls[job]) == sum(r["new_tokens_upper"] for r in runs)
    # directions x (inf, -1 x2, cap, the verdict's budget: divergence and its two controls, then divergence and the
    # restricted control matched on changed tokens)
    assert len([r for r in planned if r["job"] == "cross-sample"]) == 2 * (1 + 2 + 1 + 3 + 2)
