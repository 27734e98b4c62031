"""Malformed input, generated: problem files, responses files, profiles and option values, fed to every command
of `tokenshift` and to the runner's profile loading. Whatever the input, the command either succeeds (and its
output is whole) or exits with status 2 and one line of error, with no traceback and nothing half-written.

In `make test` each property runs a fixed number of examples in a fixed order (derandomised), so CI cannot fail
by chance. `make fuzz` runs many more on fresh random seeds (TOKENSHIFT_FUZZ=N examples each); a failure prints
the seed and a `@reproduce_failure` blob that replays it.
"""

import contextlib
import io
import json
import math
import os
import tempfile
from pathlib import Path

import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenshift.models import responses
from tokenshift.suite import cli, runner

pytestmark = pytest.mark.slow  # about a minute: in `make test`, not in the developers' loop
FRESH = int(os.environ.get("TOKENSHIFT_FUZZ", "0"))  # 0: the fixed budget below


def budget(examples: int):
    return settings(max_examples=FRESH or examples, derandomize=not FRESH, deadline=None, print_blob=True,
                    database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    import qwen_like

    return qwen_like.build(tmp_path_factory.mktemp("pair"), teach=False)


def run(command: list[str], folder: Path, out: Path | None) -> None:
    """Run a command and hold it to the contract: status 0 with a whole output, or 2 with one error line, no
    traceback, and no output or temporary file left behind."""
    before = out.read_bytes() if out is not None and out.exists() else None
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = cli.main([str(c) for c in command])
    text = err.getvalue()
    assert "Traceback" not in text, text
    leftovers = [p for p in folder.rglob("*.tmp")]
    assert not leftovers, leftovers
    if status == 0 or (status == 1 and command[0] == "cache"):  # 1: --verify found damaged entries (reported)
        if out is not None and out.suffix == ".parquet":
            pl.read_parquet(out)  # whole and readable
        return
    assert status == 2, text
    assert len([line for line in text.splitlines() if "error:" in line]) == 1, text
    if out is not None:
        assert (out.read_bytes() if out.exists() else None) == before, "a failed run changed its output"


SCALARS = st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=True) | st.text(max_size=12)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6),
                                                                                        inner, max_size=3),
                      max_leaves=6)
PROBLEM = st.fixed_dictionaries({}, optional={"problem": st.text(max_size=40) | VALUES,
                                              "answer": st.text(max_size=8) | VALUES, "extra": VALUES})
LINES = st.lists(PROBLEM.map(json.dumps) | st.text(max_size=30) | st.just(""), max_size=4)


@budget(40)
@given(lines=LINES, encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"]),
       newline=st.sampled_from(["\n", "\r\n", "\r", "\u2028"]),
       suffix=st.sampled_from([".jsonl", ".json", ".parquet", ".csv", ""]), huge=st.booleans())
def test_any_problem_file_is_read_or_refused_in_one_line(pair, lines, encoding, newline, suffix, huge):
    base, rl, _ = pair
    if huge:
        lines = [*lines, json.dumps({"problem": "7+8? " * 2000, "answer": "15"})]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = folder / f"problems{suffix}"
        data.write_bytes(newline.join(lines).encode(encoding, errors="replace"))
        run(["sample", "--base", base, "--tuned", rl, "--data", data, "--samples", 1, "--max-new-tokens", 2,
             "--limit", 2, "--out", folder / "out.parquet"], folder, folder / "out.parquet")


COLUMN_TYPES = {**responses.COLUMNS, "junk": pl.String}
ID_LISTS = st.lists(st.integers(-3, 400), max_size=5)


@st.composite
def responses_frames(draw):
    n = draw(st.integers(0, 3))
    columns = draw(st.lists(st.sampled_from(sorted(COLUMN_TYPES)), unique=True, min_size=1))
    made = {}
    for column in columns:
        dtype = COLUMN_TYPES[column] if draw(st.booleans()) else draw(st.sampled_from([pl.String, pl.Float64]))
        if dtype == pl.List(pl.Int64):
            made[column] = pl.Series(column, [draw(ID_LISTS) for _ in range(n)], dtype)
        elif dtype in (pl.Int64, pl.Float64):
            made[column] = pl.Series(column, [draw(st.integers(0, 2)) for _ in range(n)], dtype)
        elif dtype == pl.Boolean:
            made[column] = pl.Series(column, [draw(st.booleans()) for _ in range(n)], dtype)
        else:
            made[column] = pl.Series(column, [draw(st.text(max_size=4)) for _ in range(n)], pl.String)
    return pl.DataFrame(made)


@budget(25)
@given(frame=responses_frames(), command=st.sampled_from(["score", "summarise", "view"]), as_text=st.booleans())
def test_any_responses_file_is_read_or_refused_in_one_line(pair, frame, command, as_text):
    base, rl, _ = pair
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / "responses.parquet"
        if as_text:
            path.write_text(frame.write_json())  # not Parquet, whatever its name says
        else:
            frame.write_parquet(path)
        out = folder / ("o.html" if command == "view" else "o.parquet")
        args = {"score": ["score", "--base", base, "--tuned", rl, "--responses", path, "--out", out],
                "summarise": ["summarise", path],
                "view": ["view", path, "--tokenizer", base, "--out", out]}[command]
        run(args, folder, None if command == "summarise" else out)


SETTINGS = st.one_of(st.floats(allow_nan=True), st.integers(-2, 3), st.text(max_size=5), st.none(), st.booleans())


@budget(60)
@given(section=st.sampled_from(["shifts", "organism", "notebooks", "pairs", "typo"]),
       key=st.sampled_from(["seed", "top_p", "temperature", "n_problems", "samples_per_problem", "js_top_p",
                            "max_new_tokens", "high_js", "engine", "typo"]), value=SETTINGS | VALUES,
       raw=st.sampled_from(["", "shifts: [1\n", "notebooks:\n  01_sparsity: 3\n", "- a\n- b\n", "\t: x\n"]))
def test_any_profile_is_loaded_or_refused_in_one_line(section, key, value, raw):
    spec = yaml.safe_load((Path(runner.__file__).parents[3] / "papermill_runs" / "smoke.yaml").read_text())
    if section == "notebooks":
        spec["notebooks"]["03_cross_sampling"] = {key if key != "typo" else "eps_grid": value}
    else:
        spec.setdefault(section, {})
        if isinstance(spec[section], dict):
            spec[section][key] = value
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.yaml"
        path.write_text(raw or yaml.safe_dump(spec))
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                runner.plan(str(path))
                status = 0
            except (ValueError, FileNotFoundError, ConnectionError) as e:  # what runner.main prints in one line
                assert "\n" not in str(e).strip(), str(e)
                status = 2
        assert status in (0, 2) and "Traceback" not in err.getvalue()


NUMBERS = st.sampled_from([math.nan, math.inf, -math.inf, -1, 0, 0.5, 1, 2, 10**9]).map(str) | st.text(max_size=4)
OPTIONS = ["--samples", "--max-new-tokens", "--temperature", "--top-p", "--js-top-p", "--seed", "--limit",
           "--prompts-per-unit", "--batch-size", "--eps", "--cap", "--engine-memory", "--gpus-per-rank"]


@budget(40)
@given(option=st.sampled_from(OPTIONS), value=NUMBERS, command=st.sampled_from(["sample", "cross-sample"]))
def test_any_option_value_is_taken_or_refused_in_one_line(pair, option, value, command):
    base, rl, problems = pair
    if command == "sample" and option in ("--eps", "--cap", "--engine-memory", "--js-top-p"):
        command = "cross-sample"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        settings_ = {"--samples": "1", "--max-new-tokens": "2", "--limit": "1", option: value}
        args = [command, "--base", base, "--tuned", rl, "--data", problems, "--out", folder / "o.parquet",
                *[x for k, v in settings_.items() for x in (k, v)]]
        try:
            run(args, folder, folder / "o.parquet")
        except SystemExit as e:  # argparse refuses a value of the wrong type: its usage line and status 2
            assert e.code == 2


@budget(15)
@given(flags=st.lists(st.sampled_from(["--verify", "--clean"]), unique=True),
       root=st.sampled_from(["missing", "a-file", "empty", "junk"]))
def test_any_cache_root_is_checked_or_refused_in_one_line(flags, root):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / root
        if root == "a-file":
            folder.write_text("not a cache")
        elif root == "empty":
            folder.mkdir()
        elif root == "junk":
            (folder / "responses" / "abc").mkdir(parents=True)
            (folder / "responses" / "abc" / "manifest.json").write_text("{not json")
        run(["cache", *flags, "--root", folder], Path(tmp), None)
