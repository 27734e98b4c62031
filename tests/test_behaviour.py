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
