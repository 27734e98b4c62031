"""The artifact cache: expensive results (models, responses, shift tables, sweeps) kept under a semantic identity.

An entry's identity (``Spec``) is its kind, the behaviour versions of the code that builds it (the builder's
module and every module it imports, ``core.behaviour``) and the major.minor versions of the libraries they name, the configuration fields that stage reads,
and the identities of its inputs: model fingerprints, the digests of the files it reads, the numerics it ran
with (dtype, device type). Source files are not part of it: editing a docstring rebuilds nothing, and a
behaviour change is declared by bumping a version. The manifest records provenance beside the identity:
the commit, whether the work tree was dirty, and a hash of each of the library's modules.

An entry is a directory built in a temporary sibling, under a lock, and renamed into place only when
complete, with its manifest (sha256, size and mtime of every file) written last: an interrupted build leaves
nothing that looks finished, and its temporary directory is removed by the next build of the same entry.
Reading an entry checks sizes and mtimes (a multi-GB entry is not re-hashed on every read); files are hashed
in full on write, when an mtime moved, and by ``verify`` (``tokenshift cache --verify``).

Under a launcher (torchrun, accelerate), rank 0 holds the lock and publishes the entry. A ``collective``
build, one that splits its work over the ranks (``parallel.run_units``), runs on every rank into the same
temporary directory; any other build runs on rank 0 while the others wait.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import parallel
from .behaviour import Version, combine
from .paths import REPO, cache_root, looks_like_path

BEHAVIOUR = Version(1)

MANIFEST = "manifest.json"


def plain(obj):
    """JSON-able form of a configuration; dataclass fields marked ``metadata={"key": False}`` (execution
    settings such as batch sizes, which do not change the result) are left out, and so are fields ``added``
    later while they hold their default."""
    if dataclasses.is_dataclass(obj):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if _keyed(f, obj)}
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, float) and obj != obj:
        raise TypeError("cannot key the cache on NaN")
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    raise TypeError(f"cannot key the cache on a {type(obj).__name__}: use plain values or dataclasses")


def _keyed(f: dataclasses.Field, obj) -> bool:
    key = f.metadata.get("key", True)
    return key is True or (key == "unless-default" and getattr(obj, f.name) != f.default)


def added(default, **kw):
    """A dataclass field added after results were cached, whose default reproduces them: it enters cache keys
    only when set to something else, so adding it rebuilds nothing."""
    return dataclasses.field(default=default, metadata={"key": "unless-default"}, **kw)


def execution(default, **kw):
    """A dataclass field that says how work is run (batch and unit sizes), not what it computes: it stays out
    of cache keys."""
    return dataclasses.field(default=default, metadata={"key": False}, **kw)


@dataclass(frozen=True)
class Spec:
    """What identifies one cache entry."""

    kind: str
    identity: dict

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.identity, sort_keys=True).encode()).hexdigest()[:20]


def spec(kind: str, code: str | tuple[str, ...], config=None, inputs: dict | None = None) -> Spec:
    """The identity of an entry of ``kind`` built by the code of modules ``code`` (dotted names: the builder's
    ``__name__``, and any module it runs through an object it is handed) from ``config`` and ``inputs``."""
    code = code if isinstance(code, tuple) else (code,)
    return Spec(kind, {"kind": kind, **combine(*code), "config": plain(config), "inputs": plain(inputs or {})})


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _stat(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def file_digest(path: Path, memo: Path | None = None) -> str:
    """sha256 of a file, remembered in ``memo`` (a JSON file) under its path, size and mtime, so a checkpoint
    of many GB is hashed once, not on every use."""
    path = Path(path).resolve()
    memo = memo or cache_root() / "digests.json"
    known = json.loads(memo.read_text()) if memo.is_file() else {}
    stamp = _stat(path)
    hit = known.get(str(path))
    if hit and {k: hit[k] for k in stamp} == stamp:
        return hit["sha256"]
    digest = sha256(path)
    known = json.loads(memo.read_text()) if memo.is_file() else {}  # another process may have added entries
    known[str(path)] = {**stamp, "sha256": digest}
    memo.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(memo, json.dumps(known, indent=0, sort_keys=True))
    return digest


def model_fingerprint(source) -> str:
    """Identity of a model: for a directory, the digests of its files (weights, config, tokenizer); for a hub id,
    the commit it names (``ID@COMMIT``) or resolves to (from the local hub cache, or the hub when online)."""
    path = Path(source).expanduser()
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.relative_to(path).parts[0].startswith(".")):
            h.update(f"{f.relative_to(path)}:{file_digest(f)}\n".encode())
        return h.hexdigest()
    repo_id, revision = split_revision(source)
    return f"hub:{repo_id}@{hub_commit(repo_id, revision)}"


COMMIT = re.compile(r"^[0-9a-f]{40}$")


def split_revision(source) -> tuple[str, str | None]:
    """A hub id pinned as ``ID@REVISION`` (a commit, branch or tag) as (ID, REVISION); a local path or an
    unpinned id comes back whole, with None."""
    text = str(source)
    if "@" not in text or looks_like_path(text) or Path(text).expanduser().exists():
        return text, None
    repo_id, _, revision = text.rpartition("@")
    return repo_id, revision


def hub_commit(repo_id: str, revision: str | None = None) -> str:
    """The commit a hub model id resolves to at ``revision`` (default: its main branch): the revision itself if it
    is a full commit hash, else the snapshot the local hub cache holds for it, else (online) the hub's answer."""
    from huggingface_hub import HfApi, try_to_load_from_cache

    if revision and COMMIT.match(revision):
        return revision
    cached = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    if isinstance(cached, str):
        return Path(cached).parent.name  # .../snapshots/<commit>/config.json
    try:
        return HfApi().model_info(repo_id, revision=revision).sha
    except Exception as e:  # offline, unknown or gated: loading it would fail the same way, with a better message
        pinned = f" --revision {revision}" if revision else ""
        raise ConnectionError(f"cannot tell which revision of {repo_id} to use ({type(e).__name__}); download it "
                              f"where you are online (`hf download {repo_id}{pinned} --local-dir DIR`) and pass "
                              "DIR") from e


def _write_atomic(target: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, target)


def provenance() -> dict:
    """Where an entry came from (not part of its identity): the commit, a dirty flag, each module's source hash."""
    def git(*args) -> str | None:
        try:
            return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    status = git("status", "--porcelain", "--untracked-files=no")
    modules = {p.relative_to(REPO / "lib").as_posix(): sha256(p)[:16]
               for p in sorted((REPO / "lib" / "tokenshift").rglob("*.py"))}
    return {"commit": git("rev-parse", "HEAD"), "dirty": None if status is None else bool(status), "modules": modules}


class ArtifactCache:
    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else cache_root()

    def path(self, entry: Spec) -> Path:
        return self.root / entry.kind / entry.key

    def parts(self, entry: Spec) -> Path:
        """Where a build keeps finished pieces of work while it runs (kept if interrupted, so the next attempt
        resumes from them; removed once the entry is complete)."""
        final = self.path(entry)
        return final.parent / f".{final.name}.parts"

    def get_or_build(self, entry: Spec, build: Callable[[Path], None], collective: bool = False) -> Path:
        """The entry's directory; ``build(tmp_dir)`` fills a new one when it is missing or damaged."""
        final = self.path(entry)
        if self.check(final) is None:
            return final
        me = parallel.current()
        with self._lock(final) if me.rank == 0 else contextlib.nullcontext():
            tmp = parallel.broadcast(self._prepare(final) if me.rank == 0 else None)
            if tmp is not None:
                try:
                    if collective or me.rank == 0:
                        build(Path(tmp))
                    parallel.barrier()
                    if me.rank == 0:
                        self._publish(entry, Path(tmp), final)
                finally:
                    if me.rank == 0:
                        shutil.rmtree(tmp, ignore_errors=True)
            parallel.barrier()
        return final

    @contextlib.contextmanager
    def _lock(self, final: Path):
        """One builder per entry across processes; a second waits, then finds the entry built."""
        final.parent.mkdir(parents=True, exist_ok=True)
        with open(final.parent / f".{final.name}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _prepare(self, final: Path) -> str | None:
        """Under the lock: None if another process finished the entry meanwhile; else a fresh temporary
        directory, after removing the damaged entry and temporary directories that killed builds left."""
        problem = self.check(final)
        if problem is None:
            return None
        if final.exists():
            print(f"cache entry {final} is damaged ({problem}); rebuilding it")
            shutil.rmtree(final)
        for stale in final.parent.glob(f".{final.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        return tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent)

    @staticmethod
    def _publish(entry: Spec, tmp: Path, final: Path) -> None:
        files = {str(p.relative_to(tmp)): {"sha256": sha256(p), **_stat(p)}
                 for p in sorted(tmp.rglob("*")) if p.is_file()}
        if not files:
            raise RuntimeError(f"building {entry.kind} {final.name} wrote nothing; nothing is published")
        manifest = {"kind": entry.kind, "key": entry.key, "identity": entry.identity, "files": files,
                    "provenance": provenance()}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        tmp.rename(final)

    @staticmethod
    def manifest(entry: Path) -> dict:
        return json.loads((entry / MANIFEST).read_text())

    def digest(self, entry: Path, name: str) -> str:
        """sha256 of one file of a complete entry, as its manifest recorded it on write."""
        return self.manifest(entry)["files"][name]["sha256"]

    @classmethod
    def check(cls, entry: Path, full: bool = False) -> str | None:
        """None when ``entry`` is complete and intact, else what is wrong with it. Sizes and mtimes are compared
        with the manifest; a file whose mtime moved (a copy, a touch) is hashed, and ``full`` hashes every file."""
        if not (entry / MANIFEST).is_file():
            return "no manifest" if entry.exists() else "missing"
        try:
            manifest = cls.manifest(entry)
            files = manifest["files"]
            moved = []
            for name, recorded in files.items():
                path = entry / name
                if not path.is_file():
                    return f"{name} is missing"
                stamp = _stat(path)
                if stamp["size"] != recorded["size"]:
                    return f"{name} has {stamp['size']} bytes, not {recorded['size']}"
                if full or stamp["mtime_ns"] != recorded["mtime_ns"]:
                    if sha256(path) != recorded["sha256"]:
                        return f"{name} does not match its checksum"
                    moved.append((name, stamp))
        except (ValueError, KeyError, TypeError) as e:
            return f"unreadable manifest: {e}"
        if moved:  # intact, but copied or touched: remember the new stamps so the next read is quick again
            for name, stamp in moved:
                files[name].update(stamp)
            with contextlib.suppress(OSError):
                _write_atomic(entry / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
        return None

    def entries(self) -> list[Path]:
        return sorted(p.parent for p in self.root.glob(f"*/*/{MANIFEST}"))

    def verify(self) -> dict[Path, str]:
        """Hash every file of every entry; the damaged entries with what is wrong."""
        return {e: problem for e in self.entries() if (problem := self.check(e, full=True)) is not None}

    def clean(self) -> list[Path]:
        """Remove temporary directories left by killed builds (none whose build still holds its lock)."""
        removed = []
        for tmp in sorted(p for p in self.root.glob("*/.*-*") if p.is_dir() and not p.name.endswith(".parts")):
            key = tmp.name[1:].split("-", 1)[0]
            lock = tmp.parent / f".{key}.lock"
            with open(lock, "a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # being built right now
                shutil.rmtree(tmp, ignore_errors=True)
                fcntl.flock(handle, fcntl.LOCK_UN)
            removed.append(tmp)
        return removed
