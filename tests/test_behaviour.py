"""The guard of the cache's identities: each module's behaviour version, what it depends on read from its
imports, and code that changes only with its version."""

import json

from tokenshift.core import behaviour, seeding
from tokenshift.core.behaviour import SNAPSHOT, Version, combine, dependencies, differences, imports, snapshot, \
    source_hash


def test_every_behaviour_version_matches_its_snapshot():
    problems = differences(json.loads(SNAPSHOT.read_text()), snapshot())
    assert not problems, "\n".join(problems) + "\n(python -m tokenshift.core.behaviour --refresh rewrites the snapshot)"


def test_every_module_a_versioned_module_runs_is_versioned():
    assert behaviour.holes() == []


def test_a_module_without_a_version_is_a_hole(monkeypatch):
    real = behaviour.version_of
    monkeypatch.setattr(behaviour, "version_of", lambda m: None if m == "tokenshift.core.seeding" else real(m))
    found = behaviour.holes()
    assert any(h.startswith("tokenshift.core.seeding is imported by") and "models.sampling" in h for h in found)


def test_imports_are_read_from_the_source_wherever_they_sit():
    # relative imports, a submodule named in ``from package import``, an import inside a function
    assert {"tokenshift.analyses.reference_responses", "tokenshift.analyses.shift_scores"} <= imports(
        "tokenshift.analyses.shifts")
    assert "tokenshift.core.paths" in imports("tokenshift.core.behaviour")  # inside ``neutral``
    # an import for type checking only is not code the module runs
    assert "tokenshift.problems.problem_sets" not in imports("tokenshift.analyses.cross_sampling")
    # a builder reaches what it runs, and only that: sampling's key holds no scoring and no grader
    sampling = dependencies("tokenshift.analyses.reference_responses")
    assert "tokenshift.models.sampling" in sampling and "tokenshift.models.divergence" in sampling
    assert not {"tokenshift.models.scoring", "tokenshift.problems.math_answers"} & set(sampling)
    # the organism's parts: the base's key holds no RL trainer, an RL run's no SFT (each reads the base by content)
    assert "tokenshift.organism.rl" not in dependencies("tokenshift.organism.base")
    assert "tokenshift.organism.sft" not in dependencies("tokenshift.organism.rl")


def test_a_key_holds_the_versions_of_everything_the_builder_imports(monkeypatch):
    before = combine("tokenshift.models.sampling")
    assert before["versions"]["core.seeding"] == seeding.BEHAVIOUR.number  # imported by sampling
    assert set(before["libraries"]) == {"torch", "transformers"}
    monkeypatch.setattr(seeding, "BEHAVIOUR", Version(seeding.BEHAVIOUR.number + 1, libraries=("numpy",)))
    after = combine("tokenshift.models.sampling")
    assert after["versions"]["core.seeding"] == before["versions"]["core.seeding"] + 1
    assert set(after["libraries"]) == {"numpy", "torch", "transformers"}
    assert "core.seeding" not in combine("tokenshift.models.batching")["versions"]  # which does not import it


def test_docstrings_comments_and_layout_do_not_count_but_code_does():
    bare = "def f(x):\n    return x + 1\n"
    assert source_hash('"""A module."""\n' + bare.replace("return", "# why\n    return")) == source_hash(bare)
    assert source_hash('def f(x):\n    """A docstring."""\n    return   x+1') == source_hash(bare)
    assert source_hash(bare.replace("1", "2")) != source_hash(bare)


def test_the_guard_asks_for_a_bump_or_a_refresh():
    old = {"models.metrics": {"number": 1, "code": "aaa"}}
    assert differences(old, {"models.metrics": {"number": 1, "code": "aaa"}}) == []
    assert differences(old, {"models.metrics": {"number": 1, "code": "bbb"}}) == [
        "models.metrics changed: bump its BEHAVIOUR (now 1), or refresh the snapshot if the change is "
        "behaviour-neutral"]
    assert differences(old, {"models.metrics": {"number": 2, "code": "bbb"}}) == [
        "models.metrics was bumped to 2: refresh the snapshot"]
    assert differences(old, {}) == ["module models.metrics is gone or unversioned: refresh the snapshot"]
    assert differences({}, old) == ["module models.metrics is newly versioned: refresh the snapshot"]


def test_a_refresh_needs_the_smoke_profile_to_come_out_the_same(tmp_path, monkeypatch, capsys):
    """Two runs compare by their cache entries and every output byte; ``--refresh`` over code changed under an
    unbumped version writes the snapshot only when that comparison (``neutral``) finds nothing."""
    from tokenshift.core import behaviour

    def entry(run, kind, key, config, versions):
        (tmp_path / run / "cache" / kind / key).mkdir(parents=True)
        (tmp_path / run / "cache" / kind / key / "manifest.json").write_text(json.dumps(
            {"identity": {"kind": kind, "versions": versions, "config": config}}))

    for run, figure in (("a", b"png"), ("b", b"png!")):
        (tmp_path / run / "figures" / "smoke").mkdir(parents=True)
        (tmp_path / run / "figures" / "smoke" / "01.png").write_bytes(figure)
        (tmp_path / run / "figures" / "smoke" / "findings.json").write_text("{}")
    # the same entry under another key: code moved to a new module, so the key lists other modules
    entry("a", "responses", "k1", {"seed": 0}, {"analyses.shifts": 1})
    entry("b", "responses", "k9", {"seed": 0}, {"analyses.reference_responses": 1})
    entry("b", "shifts", "k2", {}, {})
    assert behaviour.compare_runs(tmp_path / "a", tmp_path / "b", "smoke") == [
        "cache entry shifts/k2 only in the second run", "01.png differs"]
    assert behaviour.compare_runs(tmp_path / "a", tmp_path / "a", "smoke") == []
    entry("a", "responses", "k3", {"seed": 1}, {"analyses.shifts": 1})  # a setting that came to enter the key
    assert behaviour.compare_runs(tmp_path / "a", tmp_path / "b", "smoke")[0] == (
        "cache entry responses/k3 only in the first run")

    snapshot_file = tmp_path / "code_versions.json"
    stale = behaviour.snapshot()
    stale["models.metrics"]["code"] = "0" * 16  # the module "changed" under an unbumped version
    snapshot_file.write_text(json.dumps(stale))
    monkeypatch.setattr(behaviour, "SNAPSHOT", snapshot_file)
    monkeypatch.setattr(behaviour, "neutral", lambda against: ["01.png differs"])
    assert behaviour.main(["--refresh"]) == 1 and json.loads(snapshot_file.read_text()) == stale
    assert "not refreshed: the smoke profile's results moved" in capsys.readouterr().out
    monkeypatch.setattr(behaviour, "neutral", lambda against: [])
    assert behaviour.main(["--refresh"]) == 0 and json.loads(snapshot_file.read_text()) == behaviour.snapshot()
