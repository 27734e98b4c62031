"""Progress of long work, shown to people and kept out of executed notebooks.

``bar`` is tqdm with one rule for where it draws: in JupyterLab a widget, in a terminal a bar on stderr, and
while the notebook runner executes a notebook (it sets ``TOKENSHIFT_PROGRESS`` to a file) into that file,
which the runner streams to the terminal line by line. Executed notebooks then hold the story and the
results, not dozens of progress lines.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

from tqdm import tqdm
from tqdm.auto import tqdm as auto_tqdm

from .behaviour import Version

BEHAVIOUR = Version(1)

ENV = "TOKENSHIFT_PROGRESS"
# one line a state, for a terminal that shows them one after another
STREAM_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit}s [{elapsed} elapsed, ETA {remaining}, {rate_fmt}]"


def bar(iterable=None, *, desc: str, total: int | None = None, unit: str = "it", disable: bool = False,
        mininterval: float = 2.0):
    """A progress bar over ``iterable`` (or one to ``update`` by hand when ``total`` is given)."""
    target = os.environ.get(ENV)
    if target:
        stream = open(target, "a", buffering=1)  # line-buffered: the runner sees each update as it is written
        return tqdm(iterable, desc=desc, total=total, unit=unit, disable=disable, file=stream,
                    mininterval=mininterval, bar_format=STREAM_FORMAT)
    return auto_tqdm(iterable, desc=desc, total=total, unit=unit, disable=disable, mininterval=mininterval)


class Relay:
    """Streams the progress file of a running notebook to the terminal: each bar's latest state, prefixed, at
    most every ``interval`` seconds per bar, at once when a bar completes, and every bar's last state at the end."""

    def __init__(self, path: Path, prefix: str, interval: float = 10.0, echo=print):
        self.path, self.prefix, self.interval, self.echo = Path(path), prefix, interval, echo
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._latest: dict[str, str] = {}  # bar name -> its latest state
        self._shown: dict[str, tuple[float, str]] = {}  # bar name -> (when, what) last printed

    def __enter__(self):
        self.path.write_text("")
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        offset, pending = 0, ""
        while True:
            stopping = self._stop.wait(0.5)
            with open(self.path) as f:
                f.seek(offset)
                pending += f.read()
                offset = f.tell()
            *states, pending = re.split(r"[\r\n]", pending)
            if stopping:  # the notebook is done: its last, unterminated state too
                states, pending = [*states, pending], ""
            for state in filter(None, (s.strip() for s in states)):
                self._update(state)
            if stopping:
                for name, state in self._latest.items():
                    if self._shown.get(name, (0.0, ""))[1] != state:
                        self._print(name, state)
                return

    def _update(self, state: str) -> None:
        name = state.split(":", 1)[0]
        self._latest[name] = state
        complete = re.search(r"\b(\d+)/\1\b", state) is not None  # "n/n"
        if complete or time.monotonic() - self._shown.get(name, (-1e9, ""))[0] >= self.interval:
            self._print(name, state)

    def _print(self, name: str, state: str) -> None:
        if self._shown.get(name, (0.0, ""))[1] != state:
            self.echo(f"{self.prefix} {state}", flush=True)
        self._shown[name] = (time.monotonic(), state)
