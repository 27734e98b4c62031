"""The guard of the cache's identities: behaviour code changes only with its version."""

import json

from tokenshift.core import behaviour
from tokenshift.core.behaviour import SNAPSHOT, Version, differences, snapshot, source_hash


def test_every_behaviour_version_matches_its_snapshot():
    problems = differences(json.loads(SNAPSHOT.read_text()), snapshot())
    assert not problems, "\n".join(problems) + "\n(python -m tokenshift.core.behaviour --refresh rewrites the snapshot)"


def documented(x):
    """A docstring."""
    # a comment
    return x + 1  # another


def bare(x):
    return x + 1


def changed(x):
    return x + 2


def test_docstrings_comments_and_layout_do_not_count_but_code_does():
    assert source_hash(documented) == source_hash(bare)
    assert source_hash(changed) != source_hash(bare)


def test_the_guard_asks_for_a_bump_or_a_refresh():
    old = {"metrics": {"number": 1, "code": {"m.f": "aaa", "m.g": "bbb"}}}
    same = {"metrics": {"number": 1, "code": {"m.f": "aaa", "m.g": "bbb"}}}
    assert differences(old, same) == []
    edited = {"metrics": {"number": 1, "code": {"m.f": "aaa", "m.g": "ccc"}}}
    assert differences(old, edited) == ["m.g changed: bump metrics (now 1), or refresh the snapshot if the change is "
                                        "behaviour-neutral"]
    bumped = {"metrics": {"number": 2, "code": {"m.f": "aaa", "m.g": "ccc"}}}
    assert differences(old, bumped) == ["metrics was bumped to 2: refresh the snapshot"]
    assert differences(old, {}) == ["version 'metrics' is gone: refresh the snapshot"]
    moved = {"metrics": {"number": 1, "code": {"pkg.m.f": "aaa", "pkg.m.g": "bbb"}}}
    assert differences(old, moved) == []  # the same code under new names


def test_a_version_closes_over_what_it_uses():
    leaf = Version("test-leaf", 3, libraries=("numpy",))
    top = Version("test-top", 1, uses=(leaf,))
    assert top.closure() == {"test-leaf": 3, "test-top": 1}
    assert set(behaviour.combine(top)["libraries"]) == {"numpy"}


def test_a_refresh_needs_the_smoke_profile_to_come_out_the_same(tmp_path, monkeypatch, capsys):
    """Two runs compare by their cache entries and every output byte; ``--refresh`` over code changed under an
    unbumped version writes the snapshot only when that comparison (``neutral``) finds nothing."""
    from tokenshift.core import behaviour

    for run, figure in (("a", b"png"), ("b", b"png!")):
        (tmp_path / run / "cache" / "responses" / "k1").mkdir(parents=True)
        (tmp_path / run / "figures" / "smoke").mkdir(parents=True)
        (tmp_path / run / "figures" / "smoke" / "01.png").write_bytes(figure)
        (tmp_path / run / "figures" / "smoke" / "findings.json").write_text("{}")
    (tmp_path / "b" / "cache" / "shifts" / "k2").mkdir(parents=True)
    assert behaviour.compare_runs(tmp_path / "a", tmp_path / "b", "smoke") == [
        "cache entry shifts/k2 only in the second run", "01.png differs"]
    assert behaviour.compare_runs(tmp_path / "a", tmp_path / "a", "smoke") == []

    snapshot_file = tmp_path / "code_versions.json"
    stale = behaviour.snapshot()
    name = next(n for n, v in stale.items() if v["code"])
    first = next(iter(stale[name]["code"]))
    stale[name]["code"][first] = "0" * 16  # that definition "changed" under an unbumped version
    snapshot_file.write_text(json.dumps(stale))
    monkeypatch.setattr(behaviour, "SNAPSHOT", snapshot_file)
    monkeypatch.setattr(behaviour, "neutral", lambda against: ["01.png differs"])
    assert behaviour.main(["--refresh"]) == 1 and json.loads(snapshot_file.read_text()) == stale
    assert "not refreshed: the smoke profile's results moved" in capsys.readouterr().out
    monkeypatch.setattr(behaviour, "neutral", lambda against: [])
    assert behaviour.main(["--refresh"]) == 0 and json.loads(snapshot_file.read_text()) == behaviour.snapshot()
