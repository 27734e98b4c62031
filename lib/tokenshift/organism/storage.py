"""How the organism's models lie in the artifact cache: each an ordinary ``save_pretrained`` directory (``model``)
with its training log beside it (``log.json``) and, for a run that saves them, its checkpoints
(``checkpoints/step_N``), so the analyses load the organism exactly as they load real checkpoints."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..core import parallel
from ..core.behaviour import Version
from ..core.cache import ArtifactCache, Spec, model_fingerprint, spec
from ..models.loading import load_model, save

BEHAVIOUR = Version(1)
# The organism trains on the CPU in fp32 wherever it runs, on a fixed number of threads (a BLAS reduction's
# order, hence the last bits of every weight, follows the thread count): the base on two, each later part on
# one, so that two of them train at once on two cores. Its numbers then do not depend on the machine's cores.
BASE_THREADS, PART_THREADS = 2, 1


def runtime(threads: int) -> dict:
    """Where and how a part trains, for its cache key."""
    return {"device": "cpu", "dtype": "float32", "threads": threads}


def store(out: Path, model, tok, log: list[dict]) -> None:
    save(model, tok, out / "model")
    (out / "log.json").write_text(json.dumps(log))


def tuned_entry(kind: str, code: str, config, base: Path) -> Spec:
    """The cache entry of a part tuned from model directory ``base`` by module ``code``: keyed by the base's
    content, so a base retrained bit for bit the same keeps it."""
    return spec(kind, code, config, {"base": model_fingerprint(base), "runtime": runtime(PART_THREADS)})


def tuned(entry: Spec, base: Path, cache: ArtifactCache, train: Callable) -> Path:
    """The final model's directory of a part tuned from ``base``, cached as ``entry``: ``train(model, tokenizer,
    out)`` tunes the base's fp32 copy on ``PART_THREADS`` threads and returns (model, log); checkpoints it saves
    under ``out`` lie beside the model."""

    def build(out: Path):
        model, tok = load_model(base, dtype="float32", device_map=None)
        with parallel.threads(PART_THREADS):
            model, log = train(model, tok, out)
        store(out, model, tok, log)

    return cache.get_or_build(entry, build) / "model"


def checkpoints_of(model_dir: Path) -> list[tuple[int, Path]]:
    """(step, model directory) of the checkpoints saved beside a model the organism built, by step; none for a
    model saved without them."""
    folder = Path(model_dir).parent / "checkpoints"
    return sorted((int(p.name.split("_")[1]), p) for p in folder.iterdir()) if folder.is_dir() else []


def run_log(model_dir: Path) -> list[dict]:
    """The training log stored beside a model the organism built."""
    return json.loads((Path(model_dir).parent / "log.json").read_text())
