import json

import pytest

from tokenshift import cache as cache_mod, task
from tokenshift.cache import ArtifactCache


def writer(calls):
    def build(out):
        calls.append(out)
        (out / "sub").mkdir()
        (out / "sub" / "weights.bin").write_bytes(b"x" * 100)
        (out / "log.json").write_text("[]")
    return build


def test_miss_then_hit(tmp_path):
    c, calls = ArtifactCache(tmp_path), []
    first = c.get_or_build("thing", {"a": 1}, writer(calls))
    second = c.get_or_build("thing", {"a": 1}, writer(calls))
    assert first == second and len(calls) == 1
    assert (first / "sub" / "weights.bin").read_bytes() == b"x" * 100
    manifest = json.loads((first / "manifest.json").read_text())
    assert set(manifest["files"]) == {"sub/weights.bin", "log.json"}


def test_config_and_code_change_the_key(tmp_path):
    c = ArtifactCache(tmp_path)
    assert c.key("thing", {"a": 1}) != c.key("thing", {"a": 2})
    assert c.key("thing", {"a": 1}) != c.key("other", {"a": 1})
    assert c.key("thing", {"a": 1}) != c.key("thing", {"a": 1}, code=[task])
    assert c.key("thing", task.Demonstrator()) == c.key("thing", task.Demonstrator())


@pytest.mark.parametrize("damage", ["truncate", "delete", "manifest"])
def test_damaged_entry_is_rebuilt(tmp_path, damage):
    c, calls = ArtifactCache(tmp_path), []
    entry = c.get_or_build("thing", {"a": 1}, writer(calls))
    if damage == "truncate":
        (entry / "sub" / "weights.bin").write_bytes(b"x")
    elif damage == "delete":
        (entry / "log.json").unlink()
    else:
        (entry / "manifest.json").write_text("{not json")
    assert c.check(entry) is not None
    again = c.get_or_build("thing", {"a": 1}, writer(calls))
    assert len(calls) == 2 and c.check(again) is None


def test_interrupted_build_leaves_nothing_that_looks_finished(tmp_path):
    c = ArtifactCache(tmp_path)

    def crash(out):
        (out / "half.bin").write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        c.get_or_build("thing", {"a": 1}, crash)
    assert not c.path("thing", {"a": 1}).exists()
    assert list((tmp_path / "thing").iterdir()) == []  # the temporary directory is gone too
    calls = []
    c.get_or_build("thing", {"a": 1}, writer(calls))
    assert len(calls) == 1


def test_unkeyable_config_is_refused(tmp_path):
    with pytest.raises(TypeError, match="cannot key the cache on a set"):
        ArtifactCache(tmp_path).key("thing", {"a": {1, 2}})


def test_default_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENSHIFT_CACHE", str(tmp_path))
    assert ArtifactCache().root == tmp_path
    assert cache_mod.cache_root() == tmp_path
