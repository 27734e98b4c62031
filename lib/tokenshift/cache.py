"""A content-addressed artifact cache: expensive results stored under a hash of their configuration and the
source code of the modules that made them.

An entry is a directory built in a temporary sibling and renamed into place only when complete, with a
manifest of its files' SHA-256 sums written last; so an interrupted build leaves nothing that looks
finished, and an entry whose files were damaged or removed afterwards is noticed on use and rebuilt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from .paths import cache_root

MANIFEST = "manifest.json"


def _plain(obj):
    if dataclasses.is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    raise TypeError(f"cannot key the cache on a {type(obj).__name__}: use plain values or dataclasses")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def code_fingerprint(modules: Iterable) -> str:
    """Hash of the source files of ``modules``: editing any of them gives new cache keys."""
    h = hashlib.sha256()
    for module in sorted(modules, key=lambda m: m.__name__):
        h.update(module.__name__.encode())
        h.update(Path(inspect.getsourcefile(module)).read_bytes())
    return h.hexdigest()


def model_fingerprint(path) -> str:
    """Identity of a model directory for cache keys: its config and weights (large files by size and date)."""
    path = Path(path)
    if not path.is_dir():
        return f"hub:{path}"  # a hub id: the name is all we know offline
    h = hashlib.sha256()
    for f in sorted(p for p in path.iterdir() if p.is_file()):
        stat = f.stat()
        h.update(f.name.encode())
        if stat.st_size < 64 << 20:
            h.update(f.read_bytes())
        else:  # hashing tens of GB of weights on every use would cost minutes
            h.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return h.hexdigest()


class ArtifactCache:
    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else cache_root()

    def key(self, kind: str, config, code: Iterable = ()) -> str:
        payload = json.dumps({"kind": kind, "config": _plain(config), "code": code_fingerprint(code)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:20]

    def path(self, kind: str, config, code: Iterable = ()) -> Path:
        return self.root / kind / self.key(kind, config, code)

    def parts(self, kind: str, config, code: Iterable = ()) -> Path:
        """Where a build keeps finished pieces of work while it runs (kept if interrupted, so the next
        attempt resumes from them; removed once the entry is complete)."""
        final = self.path(kind, config, code)
        return final.parent / f".{final.name}.parts"

    def get_or_build(self, kind: str, config, build: Callable[[Path], None], code: Iterable = ()) -> Path:
        """The entry's directory; ``build(tmp_dir)`` fills a new one when it is missing or damaged."""
        final = self.path(kind, config, code)
        problem = self.check(final)
        if problem is None:
            return final
        if final.exists():
            print(f"cache entry {final} is damaged ({problem}); rebuilding it")
            shutil.rmtree(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
        try:
            build(tmp)
            files = {str(p.relative_to(tmp)): _sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
            manifest = {"kind": kind, "config": _plain(config), "files": files}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
            try:
                tmp.rename(final)
            except OSError:  # another process finished the same entry first; theirs is as good
                if self.check(final) is not None:
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    @staticmethod
    def check(entry: Path) -> str | None:
        """None when ``entry`` is complete and intact, else what is wrong with it."""
        manifest = entry / MANIFEST
        if not manifest.is_file():
            return "no manifest" if entry.exists() else "missing"
        try:
            files = json.loads(manifest.read_text())["files"]
        except (ValueError, KeyError) as e:
            return f"unreadable manifest: {e}"
        for name, digest in files.items():
            path = entry / name
            if not path.is_file():
                return f"{name} is missing"
            if _sha256(path) != digest:
                return f"{name} does not match its checksum"
        return None
