import json

import pytest
from tokenshift.suite import findings


@pytest.fixture
def profile(monkeypatch, tmp_path):
    monkeypatch.setenv("TOKENSHIFT_FIGURES", str(tmp_path))
    return "unit"


def test_record_merges_and_puts_paper_numbers_beside(profile):
    findings.record(profile, {"a.x": 1, "b.y": 0.5}, paper={"b.y": 0.25})
    merged = findings.record(profile, {"a.x": 2.0})
    assert merged == {"a.x": 2.0, "b.y": 0.5, "b.y.paper": 0.25}
    assert json.loads(findings.path(profile).read_text()) == merged


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "0.5", None])
def test_non_numbers_are_refused(profile, bad):
    with pytest.raises(ValueError, match="must be a finite number"):
        findings.record(profile, {"a": bad})


def test_a_full_run_starts_afresh_so_retired_findings_do_not_live_on(profile):
    findings.record(profile, {"old.name": 1.0, "kept": 2.0})
    findings.reset(profile)
    assert findings.record(profile, {"kept": 3.0}) == {"kept": 3.0}


def test_paper_number_needs_our_number(profile):
    with pytest.raises(ValueError, match="no value of ours"):
        findings.record(profile, {"a": 1.0}, paper={"b": 2.0})


def test_the_readmes_headline_and_the_results_page_are_written_from_the_findings(profile, tmp_path):
    from tokenshift.analyses import claims

    name = "sparsity.dapo.frac_js_lt_0.01"
    verdict = claims.against(name, name, 0.9, 0.83, ">", (0.88, 0.92))
    findings.record(profile, {"organism.base.pass@1": 0.25, "organism.base.pass@1.ci95_low": 0.2,
                              "organism.base.pass@1.ci95_high": 0.3}, paper={"organism.base.pass@1": 0.0823,
                                                                             name: claims.PAPER[name]},
                    verdicts=[verdict])
    readme, results = tmp_path / "README.md", tmp_path / "results.md"
    readme.write_text(f"intro\n{findings.TABLE_BEGIN}\nold\n{findings.TABLE_END}\noutro\n")
    findings.update_documents(profile, readme, results)
    text, page = readme.read_text(), results.read_text()
    assert f"(`{name}`) | 0.9 [0.88, 0.92] | >0.83 | **agrees** |" in text and "old" not in text
    assert "organism.base.pass@1" not in text  # the headline holds judged claims only
    assert text.startswith("intro\n") and text.endswith("outro\n")
    assert "| `organism.base.pass@1` | 0.25 [0.2, 0.3] | 0.0823 |  |" in page and "ci95" not in page
    assert page.startswith("# Results: paper vs this suite\n\nGenerated from")


def test_a_regeneration_writes_what_moved(tmp_path):
    findings.write_diff({"a": 1.0, "b": 2.0}, {"a": 1.0, "b": 2.5, "c": 3.0}, tmp_path / "diff.md")
    text = (tmp_path / "diff.md").read_text()
    assert "2 of 3 findings moved" in text and "| `b` | 2.0 | 2.5 |" in text and "| `c` |  | 3.0 |" in text
    assert "`a`" not in text
    findings.write_diff({"a": 1.0}, {"a": 1.0}, tmp_path / "same.md")
    assert "Nothing: every finding came out as before." in (tmp_path / "same.md").read_text()


def test_check_written_names_what_is_missing(profile):
    findings.record(profile, {"a": 1.0})
    findings.check_written(profile, ["a"])
    with pytest.raises(RuntimeError, match=r"\['b', 'fig.png'\]"):
        findings.check_written(profile, ["a", "b"], ["fig.png"])


def test_verdicts_stand_beside_their_statistic_with_the_claim_and_the_paper_bound(profile, tmp_path):
    from tokenshift.analyses import claims

    name = "sparsity.dapo.frac_js_lt_0.01"
    verdict = claims.against(name, name, 0.9, 0.83, ">", (0.88, 0.92))
    merged = findings.record(profile, {}, paper={name: claims.PAPER[name]}, verdicts=[verdict])
    assert merged[name] == 0.9 and merged[name + ".ci95_low"] == 0.88 and merged[name + ".paper_bound"] == ">"
    assert merged[name + ".verdict"] == "agrees" and "83%" in merged[name + ".claim"]
    table = findings.markdown_table(merged)
    assert f"| `{name}` | 0.9 [0.88, 0.92] | >0.83 | agrees: more than 83% of DAPO's positions" in table
    assert table.count("\n") == 2  # the annotations are not rows of their own


def test_the_paper_number_of_a_claim_goes_beside_its_finding_and_its_verdicts(profile):
    from tokenshift.analyses import claims

    verdict = claims.about("topk.top1_same", "topk.dapo.tuned_top1_is_base_top1", 0.4, (0.35, 0.45))
    merged = findings.record(profile, {"organism.base.pass@1": 0.2, "other": 1.0}, verdicts=[verdict])
    assert merged["organism.base.pass@1.paper"] == 0.0823 and "other.paper" not in merged
    assert merged["topk.dapo.tuned_top1_is_base_top1.paper"] == 0.3
    assert merged["topk.dapo.tuned_top1_is_base_top1.paper_bound"] == "~"


def test_a_claim_judged_on_both_js_measures_says_which_row_is_which(profile, tmp_path):
    from tokenshift.analyses import claims

    name = "sparsity.dapo.frac_js_lt_0.01"
    top_p = claims.against(name, name, 0.9, 0.83, ">", (0.88, 0.92))
    full = claims.on_full_js([claims.against(name, name, 0.7, 0.83, ">", (0.6, 0.8))])
    assert full[0].statistic == name + claims.FULL_JS and full[0].status == "disagrees"
    findings.record(profile, {}, verdicts=[*full, top_p])
    readme, results = tmp_path / "README.md", tmp_path / "results.md"
    readme.write_text(f"{findings.TABLE_BEGIN}\n{findings.TABLE_END}\n")
    findings.update_documents(profile, readme, results)
    text = readme.read_text()
    assert f"[full JS, primary here] (`{name}.full_js`) | 0.7 [0.6, 0.8] |" in text and "**disagrees**" in text
    assert f"[top-p JS, the paper's metric] (`{name}`) | 0.9 [0.88, 0.92] |" in text
