import json
import multiprocessing
import os
import time
from dataclasses import dataclass

import pytest
from tokenshift.core import cache as cache_mod
from tokenshift.core import seeding
from tokenshift.core.behaviour import Version
from tokenshift.core.cache import ArtifactCache, added, execution, spec

CODE = "tokenshift.core.seeding"  # a small module (it imports core.behaviour, which imports core.paths)


def writer(calls):
    def build(out):
        calls.append(out)
        (out / "sub").mkdir()
        (out / "sub" / "weights.bin").write_bytes(b"x" * 100)
        (out / "log.json").write_text("[]")
    return build


def thing(a=1, code=CODE, **inputs):
    return spec("thing", code, {"a": a}, inputs)


def test_miss_then_hit(tmp_path):
    c, calls = ArtifactCache(tmp_path), []
    first = c.get_or_build(thing(), writer(calls))
    second = c.get_or_build(thing(), writer(calls))
    assert first == second and len(calls) == 1
    assert (first / "sub" / "weights.bin").read_bytes() == b"x" * 100
    manifest = json.loads((first / "manifest.json").read_text())
    assert set(manifest["files"]) == {"sub/weights.bin", "log.json"}
    assert manifest["files"]["log.json"] == {"sha256": cache_mod.sha256(first / "log.json"), "size": 2,
                                             "mtime_ns": (first / "log.json").stat().st_mtime_ns}
    assert manifest["identity"]["versions"] == {"core.behaviour": 1, "core.paths": 1,
                                                "core.seeding": seeding.BEHAVIOUR.number}
    assert {"commit", "dirty", "modules"} <= set(manifest["provenance"])  # provenance, not identity
    assert "tokenshift/core/cache.py" in manifest["provenance"]["modules"]
    assert c.digest(first, "log.json") == cache_mod.sha256(first / "log.json")


@dataclass(frozen=True)
class Config:
    lr: float = 0.1
    batch_size: int = execution(16)


@dataclass(frozen=True)
class GrownConfig(Config):
    shuffle: bool = added(False)


def test_identity_is_the_config_the_versions_and_the_inputs(monkeypatch):
    assert thing().key == thing().key
    assert thing(a=2).key != thing().key
    assert thing(model="abc").key != thing().key
    assert spec("other", CODE, {"a": 1}).key != thing().key
    assert spec("thing", (CODE, "tokenshift.models.divergence"), {"a": 1}).key != thing().key
    # a module's version enters the key of everything that imports it, directly or not
    engine = spec("thing", "tokenshift.models.engine", {}).key  # the engine imports core.seeding
    monkeypatch.setattr(seeding, "BEHAVIOUR", Version(seeding.BEHAVIOUR.number + 1))
    assert spec("thing", "tokenshift.models.engine", {}).key != engine
    monkeypatch.undo()
    # execution settings do not change what is computed, so they are not part of the key
    assert spec("run", CODE, Config(batch_size=64)).key == spec("run", CODE, Config()).key
    assert spec("run", CODE, Config(lr=0.2)).key != spec("run", CODE, Config()).key
    # a field added later keys only when it leaves its default: results cached before it keep their key
    assert spec("run", CODE, GrownConfig()).key == spec("run", CODE, Config()).key
    assert spec("run", CODE, GrownConfig(shuffle=True)).key != spec("run", CODE, Config()).key


def test_library_versions_enter_the_key(monkeypatch):
    monkeypatch.setattr(seeding, "BEHAVIOUR", Version(1, libraries=("numpy",)))
    before = spec("thing", CODE, {}).key
    assert spec("thing", CODE, {}).identity["libraries"]["numpy"].count(".") == 1  # major.minor
    monkeypatch.setattr(cache_mod, "combine", lambda *v: {"versions": {}, "libraries": {"numpy": "99.0"}})
    assert spec("thing", CODE, {}).key != before


@pytest.mark.parametrize("damage", ["truncate", "delete", "manifest", "same_size"])
def test_damaged_entry_is_rebuilt(tmp_path, damage):
    c, calls = ArtifactCache(tmp_path), []
    entry = c.get_or_build(thing(), writer(calls))
    weights = entry / "sub" / "weights.bin"
    if damage == "truncate":
        weights.write_bytes(b"x")
    elif damage == "delete":
        (entry / "log.json").unlink()
    elif damage == "manifest":
        (entry / "manifest.json").write_text("{not json")
    else:  # same size, new date: the quick check hashes it and finds the change
        weights.write_bytes(b"y" * 100)
    assert c.check(entry) is not None
    again = c.get_or_build(thing(), writer(calls))
    assert len(calls) == 2 and c.check(again) is None


def test_a_copied_entry_is_hashed_once_then_read_quickly(tmp_path):
    c, calls = ArtifactCache(tmp_path), []
    entry = c.get_or_build(thing(), writer(calls))
    weights = entry / "sub" / "weights.bin"
    os.utime(weights, ns=(1, 1))  # as a copy without preserved dates leaves it: same bytes, new mtime
    assert c.check(entry) is None
    assert json.loads((entry / "manifest.json").read_text())["files"]["sub/weights.bin"]["mtime_ns"] == 1
    c.get_or_build(thing(), writer(calls))
    assert len(calls) == 1


def test_verify_hashes_what_the_quick_check_trusts(tmp_path):
    c = ArtifactCache(tmp_path)
    entry = c.get_or_build(thing(), writer([]))
    weights = entry / "sub" / "weights.bin"
    stamp = weights.stat()
    weights.write_bytes(b"z" * 100)  # same size, and the date put back: only a full hash can tell
    os.utime(weights, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert c.check(entry) is None
    assert c.verify() == {entry: "sub/weights.bin does not match its checksum"}


def test_interrupted_build_leaves_nothing_that_looks_finished(tmp_path):
    c = ArtifactCache(tmp_path)

    def crash(out):
        (out / "half.bin").write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        c.get_or_build(thing(), crash)
    assert not c.path(thing()).exists()
    assert [p.name for p in (tmp_path / "thing").iterdir()] == [f".{thing().key}.lock"]
    calls = []
    c.get_or_build(thing(), writer(calls))
    assert len(calls) == 1


def test_a_killed_builds_temporary_directory_is_cleaned_up(tmp_path):
    c = ArtifactCache(tmp_path)
    final = c.path(thing())
    final.parent.mkdir(parents=True)
    left = final.parent / f".{final.name}-abc123"  # what a build killed with SIGKILL leaves
    (left / "sub").mkdir(parents=True)
    other = final.parent / f".{'0' * 20}-def456"  # another entry's
    other.mkdir()
    c.get_or_build(thing(), writer([]))
    assert not left.exists() and other.exists()
    assert c.clean() == [other] and not other.exists()


def test_a_build_that_writes_nothing_is_not_published(tmp_path):
    c = ArtifactCache(tmp_path)
    with pytest.raises(RuntimeError, match="wrote nothing"):
        c.get_or_build(thing(), lambda out: None)
    assert not c.path(thing()).exists()


def _slow_build(root, marker):
    def build(out):
        with open(marker, "a") as f:
            f.write("built\n")
        time.sleep(1.5)
        (out / "x").write_text("x")
    ArtifactCache(root).get_or_build(thing(), build)


def test_two_processes_build_an_entry_once(tmp_path):
    marker = tmp_path / "builds.txt"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_slow_build, args=(tmp_path / "c", marker)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=30)
    assert [p.exitcode for p in procs] == [0, 0]
    assert marker.read_text() == "built\n"


def test_unkeyable_config_is_refused():
    with pytest.raises(TypeError, match="cannot key the cache on a set"):
        spec("thing", CODE, {"a": {1, 2}})


def test_default_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENSHIFT_CACHE", str(tmp_path))
    assert ArtifactCache().root == tmp_path
    assert cache_mod.cache_root() == tmp_path


def test_file_digests_are_remembered_by_path_size_and_date(tmp_path, monkeypatch):
    f = tmp_path / "w.bin"
    f.write_bytes(b"a" * 10)
    memo = tmp_path / "memo.json"
    first = cache_mod.file_digest(f, memo)
    monkeypatch.setattr(cache_mod, "sha256", lambda path: pytest.fail("hashed again"))
    assert cache_mod.file_digest(f, memo) == first
    monkeypatch.undo()
    f.write_bytes(b"b" * 11)
    assert cache_mod.file_digest(f, memo) != first


def test_a_hub_id_is_identified_by_the_commit_it_resolves_to(tmp_path, monkeypatch):
    # the layout huggingface_hub keeps downloads in: models--org--name/{refs/main, snapshots/<commit>/}
    hub = tmp_path / "hub"
    repo = hub / "models--org--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("c0ffee" * 6 + "abcd")
    (repo / "snapshots" / ("c0ffee" * 6 + "abcd")).mkdir(parents=True)
    (repo / "snapshots" / ("c0ffee" * 6 + "abcd") / "config.json").write_text("{}")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub))
    assert cache_mod.model_fingerprint("org/tiny") == "hub:org/tiny@" + "c0ffee" * 6 + "abcd"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(ConnectionError, match="cannot tell which revision of org/other.*--local-dir"):
        cache_mod.model_fingerprint("org/other")


def test_the_cache_command_verifies_and_cleans(tmp_path, capsys):
    from tokenshift.suite import cli

    c = ArtifactCache(tmp_path)
    entry = c.get_or_build(thing(), writer([]))
    assert cli.main(["cache", "--root", str(tmp_path), "--verify"]) == 0
    assert "1 intact, 0 damaged" in capsys.readouterr().out
    stamp = (entry / "log.json").stat()
    (entry / "log.json").write_text("{}")  # same size, date put back
    os.utime(entry / "log.json", ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    left = entry.parent / f".{'1' * 20}-killed"
    left.mkdir()
    assert cli.main(["cache", "--root", str(tmp_path), "--verify", "--clean"]) == 1
    out = capsys.readouterr().out
    assert "damaged: " in out and "log.json does not match its checksum" in out and f"removed {left}" in out
    assert not left.exists()
