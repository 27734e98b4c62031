"""tokenshift: the suite's analyses on any base/RL model pair, from the command line.

A typical run on real checkpoints (local directories or hub ids; a .jsonl/.parquet file with `problem` and
`answer` fields):

  tokenshift sample --base Qwen/Qwen2.5-32B --tuned BytedTsinghua-SIA/DAPO-Qwen-32B --data aime24.jsonl \\
      --out runs/dapo/responses.parquet
  tokenshift score --base Qwen/Qwen2.5-32B --tuned BytedTsinghua-SIA/DAPO-Qwen-32B \\
      --responses runs/dapo/responses.parquet --out runs/dapo/shifts.parquet
  tokenshift summarise runs/dapo/shifts.parquet
  tokenshift view runs/dapo/shifts.parquet --tokenizer Qwen/Qwen2.5-32B --out runs/dapo/viewer.html
  tokenshift cross-sample --base ... --tuned ... --data aime25.jsonl --eps inf 0.1 0.01 --out runs/dapo/cross.parquet
  tokenshift run-notebooks --profile paper
  tokenshift cache --verify                  # hash every cached entry; --clean removes what killed builds left

Sampling, scoring and cross-sampling split their problems across processes when started by a launcher,
e.g. `torchrun --nproc-per-node 8 -m tokenshift.suite.cli sample ...`; the merged output is identical to a
single process's. An interrupted run picks up from the units it finished.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import math
import sys
from pathlib import Path

import polars as pl

from ..core.paths import REPO, atomic

DEFAULTS = "(default: %(default)s)"


def _pair_arguments(p: argparse.ArgumentParser, data: bool = True) -> None:
    from ..problems.math_answers import FORMATS, GRADERS
    from ..problems.problem_sets import PROMPT

    p.add_argument("--base", required=True, help="base model: local directory or hub id")
    p.add_argument("--tuned", required=True, help="tuned (e.g. RL) model: local directory or hub id")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"],
                   help="weights' dtype (default: bfloat16 on a GPU, float32 on the CPU; metrics are always fp32)")
    p.add_argument("--gpus-per-rank", type=int,
                   help="GPUs each process owns under a launcher, both models sharded over them: local rank r takes "
                        "GPUs r*G .. r*G+G-1, so run --nproc-per-node (GPUs per node) / G (default: 1 under a "
                        "launcher, every GPU for a single process)")
    p.add_argument("--frozen", action="store_true",
                   help="refuse any hub model or dataset not pinned to a commit (ID@COMMIT, --data-revision COMMIT)")
    if data:
        p.add_argument("--data", required=True, help="problems: a .jsonl or .parquet file, or a hub dataset id")
        p.add_argument("--problem-field", default="problem", help=f"field holding the problem {DEFAULTS}")
        p.add_argument("--answer-field", default="answer", help=f"field holding the reference answer {DEFAULTS}")
        p.add_argument("--limit", type=int, help="use only the first LIMIT problems")
        p.add_argument("--data-files", default="", help="hub dataset: a glob of the split's own files, e.g. "
                                                            "'data/train-*' (default: every .jsonl/.parquet)")
        p.add_argument("--data-revision", default="", help="hub dataset: the commit to read (default: main)")
        p.add_argument("--template-from", choices=["base", "tuned"], default="base",
                       help=f"whose tokenizer's chat template prompts both models {DEFAULTS}")
        p.add_argument("--prompt", default=PROMPT,
                       help="the user turn, with {problem} where the problem goes (default: the problem, then "
                            "'Please reason step by step, and put your final answer within \\boxed{}.')")
        p.add_argument("--system", default="",
                       help="the chat's system message, e.g. 'You are a helpful assistant.' (SimpleRL-Zoo's) "
                            "(default: the chat template's own)")
        p.add_argument("--answer-format", choices=FORMATS, default="boxed",
                       help="where a response's final answer is: the last \\boxed{}, the last 'Answer: ...' line "
                            f"(DAPO's prompt), or whichever comes last {DEFAULTS}")
        p.add_argument("--grader", choices=GRADERS, default="math-verify",
                       help="how a final answer is judged: math-verify (equivalent forms count), dapo (DAPO's "
                            "own reward: an answer line or box in the last 300 characters, exact match) or qwen-math "
                            f"(Qwen2.5-Math's evaluation, SimpleRL-Zoo's: a box, else the last number) {DEFAULTS}")


def _profile_arguments(p: argparse.ArgumentParser, only: str) -> None:
    p.add_argument("--profile", required=True, help="a papermill_runs/<profile>.yaml, or a .yaml file")
    p.add_argument("--only", nargs="*", help=f"{only} notebooks whose names start with these prefixes")


# Each command's settings options, generated from the fields of ``profiles.ShiftSetup`` (the profiles' shifts
# section): field -> option. Their defaults come from --preset, the presets the profiles name too.
SAMPLING = {"seed": "--seed", "samples_per_problem": "--samples", "temperature": "--temperature", "top_p": "--top-p",
            "max_new_tokens": "--max-new-tokens", "prompts_per_unit": "--prompts-per-unit",
            "sample_batch_size": "--batch-size"}
SETTINGS = {"sample": {**SAMPLING, "engine": "--engine"},
            "score": {"js_top_p": "--js-top-p", "score_batch_size": "--batch-size",
                      "responses_per_unit": "--responses-per-unit"},
            "cross-sample": {**SAMPLING, "js_top_p": "--js-top-p", "cross_method": "--method",
                             "cross_drafter": "--engine"}}


def _settings_arguments(p: argparse.ArgumentParser, command: str) -> None:
    import typing

    from ..models.engine import ENGINES
    from .profiles import CROSS_METHODS, PRESETS, ShiftSetup, preset

    p.add_argument("--preset", choices=sorted(PRESETS), default="paper",
                   help="where the settings below start (profiles.PRESETS, which profiles name too); each option "
                        f"given overrides it {DEFAULTS}")
    fields = {f.name: f for f in dataclasses.fields(ShiftSetup)}
    hints = typing.get_type_hints(ShiftSetup)
    presets = {name: preset(name) for name in sorted(PRESETS)}
    choices = {"engine": ENGINES, "cross_drafter": ENGINES, "cross_method": CROSS_METHODS}
    for name, option in SETTINGS[command].items():
        defaults = ", ".join(f"{p_}: {getattr(setup, name)}" for p_, setup in presets.items())
        p.add_argument(option, dest=name, type=hints[name], choices=choices.get(name), default=None,
                       help=f"{fields[name].metadata['help']} (default by preset: {defaults})")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="tokenshift", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("sample", help="sample responses from one model of a pair",
                       description="Sample responses to the problems from one model of a pair, with the pair's "
                                   "one prompt template and stop-token set, and check each answer (math-verify on "
                                   "the last \\boxed{}). One row per response.")
    _pair_arguments(p)
    _settings_arguments(p, "sample")
    p.add_argument("--from", dest="sample_from", choices=["tuned", "base"], default="tuned",
                   help=f"which model samples (the paper scores the RL model's own responses) {DEFAULTS}")
    p.add_argument("--out", required=True, type=Path, help="output .parquet file")

    p = sub.add_parser("score", help="per-token divergence of a pair on sampled responses",
                       description="Teacher-force both models on the same token ids and write one row per "
                                   "(response, position): JS (full and top-p), KL both ways, entropies, ranks, "
                                   "top-k overlap, top-5 tokens of each model.")
    _pair_arguments(p, data=False)
    p.add_argument("--responses", required=True, type=Path,
                   help="a .parquet written by `tokenshift sample` or `tokenshift cross-sample`")
    p.add_argument("--eps", type=float, help="for a cross-sample file: score the responses of this eps")
    p.add_argument("--rule", choices=["divergence", "random"], default="divergence",
                   help=f"for a cross-sample file: which rule's responses {DEFAULTS}")
    _settings_arguments(p, "score")
    p.add_argument("--out", required=True, type=Path, help="output .parquet file")

    p = sub.add_parser("cross-sample", help="decode with one model, hand high-divergence steps to the other",
                       description="Cross-sampling: decode with the primary model and take a token from the "
                                   "other wherever their JS divergence exceeds eps (forward: primary = base; "
                                   "reverse: primary = tuned); with each eps a random-position control at the same "
                                   "budget. One row per (eps, rule, response).")
    _pair_arguments(p)
    _settings_arguments(p, "cross-sample")
    p.add_argument("--direction", choices=["forward", "reverse"], default="forward",
                   help=f"forward: base decodes, the tuned model intervenes; reverse: the other way {DEFAULTS}")
    p.add_argument("--eps", type=float, nargs="+", default=[math.inf, 0.1, 0.03, 0.01, 0.0],
                   help=f"thresholds to sweep; inf never intervenes {DEFAULTS}")
    p.add_argument("--cap", type=int, nargs="*", default=[], metavar="M",
                   help="also run the divergence rule limited to each response's first M handovers, per M")
    p.add_argument("--engine-memory", type=float, default=None,
                   help="with --engine vllm or --method engine: the share of each GPU's memory (on a CPU, of RAM) "
                        "each engine may take; the rest holds the suite's models and their caches (default: 0.3 of "
                        "a GPU for a drafting engine, 0.45 each for two; on a CPU, what the engine needs)")
    p.add_argument("--out", required=True, type=Path, help="output .parquet file")

    p = sub.add_parser("summarise", help="print the paper's summaries of a scored or cross-sampled file",
                       description="For a scored file: sparsity, position profile, re-allocation at high-JS "
                                   "positions, entropy as a locator (AUROC), token identity and categories; with "
                                   "--checkpoints, the evolution over training. For a cross-sample file: accuracy "
                                   "and budget per eps and rule.")
    p.add_argument("file", type=Path, help="a .parquet from `tokenshift score` or `tokenshift cross-sample`")
    p.add_argument("--checkpoints", nargs="+", default=[], metavar="STEP=FILE",
                   help="scored files of training checkpoints against the base on the same responses as FILE "
                        "(the final model's), e.g. 0=base.parquet 50=step50.parquet; FILE is the last point")
    p.add_argument("--high", type=float, default=0.1, help=f"high-divergence threshold {DEFAULTS}")
    p.add_argument("--js", choices=["js_top_p", "js"], default="js_top_p", help=f"which JS {DEFAULTS}")

    p = sub.add_parser("view", help="write the HTML token viewer for a scored file",
                       description="A self-contained HTML page: tokens shaded by JS, hover for both models' "
                                   "top-5, a correct/incorrect filter, intervened tokens marked.")
    p.add_argument("file", type=Path, help="a .parquet from `tokenshift score`")
    p.add_argument("--tokenizer", required=True, help="the pair's tokenizer (usually the base model)")
    p.add_argument("--data", help="the problems file, to show each problem above its response")
    p.add_argument("--problem-field", default="problem", help=DEFAULTS)
    p.add_argument("--answer-field", default="answer", help=DEFAULTS)
    p.add_argument("--max-responses", type=int, default=100, help=DEFAULTS)
    p.add_argument("--title", default="Token viewer", help=DEFAULTS)
    p.add_argument("--out", required=True, type=Path, help="output .html file")

    p = sub.add_parser("run-notebooks", help="run the numbered notebooks for a profile with papermill",
                       description="Same as `python -m tokenshift.suite.runner`.")
    _profile_arguments(p, "run only")

    p = sub.add_parser("prepare", help="compute a profile's tables into the cache, for its notebooks to read",
                       description="Every table the profile's notebooks (00-04) read, computed into the artifact "
                                   "cache with their parameters; under torchrun the ranks share each table's "
                                   "work units. Then `run-notebooks` reads them instead of computing them in one "
                                   "process. Notebook 05's RL runs are not prepared.")
    _profile_arguments(p, "prepare only for")

    p = sub.add_parser("plan", help="a profile's runs and their estimated GPU-hours, without loading a model",
                       description="Every run the profile's notebooks need (sampling, scoring, cross-sampling), its "
                                   "responses and new tokens, and GPU-hours per GPU kind (upper: every response at "
                                   "the cap; expected: at --mean-tokens), from the cost model in docs/plan.md.")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--profile", help="a profile of real checkpoints (name or .yaml path)")
    target.add_argument("--registry", type=Path, help="the atlas's registry: what each pair costs (e.g. "
                                                      "registry/pairs.yaml)")
    p.add_argument("--mean-tokens", type=int, default=None,
                   help="mean response length for the expected cost (default: the paper's ~3,600, or the cap)")

    p = sub.add_parser("atlas", help="the shift analyses over a registry of pairs, into one comparison table",
                       description="Sparsity, position, top-k overlap and entropy as a locator for each pair of a "
                                   "registry (registry/pairs.yaml: its shifts section states the budget), "
                                   "one pair after another, each prompted, stopped and graded as its entry says; "
                                   "writes OUT_DIR/atlas.parquet and OUT_DIR/atlas.png. A finished pair is kept in "
                                   "OUT_DIR/pairs/, so a rerun resumes. Runs under torchrun, or with the engine.")
    p.add_argument("--registry", type=Path, default=REPO / "registry" / "pairs.yaml",
                   help="the registry of pairs (default: registry/pairs.yaml)")
    p.add_argument("--pairs", nargs="*", help="only these pairs of the registry (default: all)")
    p.add_argument("--out-dir", required=True, type=Path, help="output folder")

    p = sub.add_parser("cache", help="check or tidy the artifact cache",
                       description="List the cache's entries; --verify hashes every file of every entry against "
                                   "its manifest (reading an entry only compares sizes and dates); --clean removes "
                                   "the temporary directories of builds that were killed.")
    p.add_argument("--verify", action="store_true", help="hash every file of every entry")
    p.add_argument("--clean", action="store_true", help="remove temporary directories of killed builds")
    p.add_argument("--root", type=Path, help="the cache's directory (default: $TOKENSHIFT_CACHE or .cache/)")
    return top


def _check_args(args) -> None:
    """Refuse bad values by name before anything is loaded."""
    from ..core import validate

    options = {name: f"--{name.replace('_', '-')}" for name in validate.RULES} | SETTINGS.get(args.command, {})
    for name, option in options.items():
        value = getattr(args, name, None)
        if value is not None and name in validate.RULES:
            validate.check(name, value, option)
    if getattr(args, "cross_drafter", None) not in (None, "suite") and getattr(args, "cross_method", None) not in (
            None, "draft"):
        raise ValueError(f"--engine {args.cross_drafter} drafts for draft and verify; --method {args.cross_method} "
                         "decodes with the models themselves or in engines of their own: drop one of the two")
    for name, label in (("responses", "--responses"), ("file", "input file")):
        path = getattr(args, name, None)
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"{label} {path} does not exist")
    out = getattr(args, "out", None)
    if out is not None and out.is_dir():
        raise ValueError(f"--out {out} is a directory; give a file name")


def _setup(args):
    """The command's settings: its --preset with each option given over it, checked as a profile's are."""
    from .profiles import preset, with_overrides

    given = {name: getattr(args, name) for name in SETTINGS[args.command] if getattr(args, name) is not None}
    setup = with_overrides(preset(args.preset), given, where=f"--preset {args.preset} with the options given")
    if args.command != "score" and setup.max_new_tokens < 1:
        raise ValueError(f"--preset {args.preset} leaves the response length to the pair (max_new_tokens 0): give "
                         "--max-new-tokens N")
    if args.command == "cross-sample" and setup.cross_method == "engine" and setup.js_top_p >= 1.0:
        raise ValueError("--method engine decides on top-p JS: --js-top-p must be below 1 (full-vocabulary JS runs "
                         "with --method draft)")
    if args.command == "cross-sample" and setup.js_top_p != setup.top_p:
        print(f"warning: sampling with top-p {setup.top_p} but switching on top-p {setup.js_top_p} JS; the paper "
              "uses the same p for both", file=sys.stderr)
    return setup


def _placement(args):
    from ..models.loading import Placement

    return Placement(args.dtype, args.gpus_per_rank, getattr(args, "engine_memory", None))


def _problems(args, seed: int):
    from .pairs import math_problems

    source = {"dataset": args.data, "files": args.data_files, "revision": args.data_revision} \
        if args.data_files or args.data_revision else args.data
    make = math_problems(args.base, {"tuned": args.tuned}, {"data": source}, template_from=args.template_from,
                         problem_field=args.problem_field, answer_field=args.answer_field, prompt=args.prompt,
                         system=args.system, answer_format=args.answer_format, grader=args.grader, frozen=args.frozen,
                         where="arguments")
    return make(args.limit, seed, None)


MAX_RESPONSES = 10_000_000  # per run: past this the response list alone outgrows a machine's memory


def _check_budget(args, setup, problems) -> None:
    """Refuse, before any model loads, a run whose responses cannot fit: a prompt plus the new tokens past a
    model's positions, or more responses than a machine holds."""
    from ..models.loading import max_positions

    longest = max(map(len, problems.prompts))
    for source in dict.fromkeys((args.base, args.tuned)):
        positions = max_positions(source)
        if positions is not None and longest + setup.max_new_tokens > positions:
            raise ValueError(f"--max-new-tokens {setup.max_new_tokens}: the longest prompt ({longest} tokens) plus "
                             f"the new tokens pass the {positions} positions of {source}: give at most "
                             f"{max(positions - longest, 0)} new tokens, or shorter prompts")
    if len(problems.prompts) * setup.samples_per_problem > MAX_RESPONSES:
        raise ValueError(f"--samples {setup.samples_per_problem} x {len(problems.prompts)} problems is more than "
                         f"{MAX_RESPONSES:,} responses in one run: lower --samples or --limit, or split the problems "
                         "over several runs")


OWN_DECODER = "tokenshift (its own decoding loop)"


def _engine_version() -> str:
    from ..models.engine import require_vllm

    return f"vllm {require_vllm().__version__}"


def _write(out: Path, table: pl.DataFrame, args, setup, problems=None, engine: str = OWN_DECODER) -> None:
    """Rank 0 writes ``table`` to ``out`` (complete or not at all) and, beside it, ``<out>.meta.json``: the
    command, its arguments and settings (so a result is never mistaken for one made with others), the versions it
    ran with (the suite's and each stage's behaviour version), the engine that sampled, where each model and the
    problems came from (a hub id at the commit it resolved to, a local file with its digest) and, for sampling
    commands, the first problem's prompt as the models read it (chat template and special tokens included), the
    stop set and how answers were judged, so a reader can see what was asked."""
    import tokenshift
    from ..models.loading import provenance
    from ..problems.data import provenance as data_provenance

    if not _rank0():
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic(out) as tmp:  # the previous output stays until this one is complete
        table.write_parquet(tmp)
    meta = {"command": args.command, "arguments": {k: str(v) for k, v in sorted(vars(args).items())
                                                   if k not in ("command", "func")},
            "preset": args.preset, "settings": {name: getattr(setup, name) for name in SETTINGS[args.command]},
            "versions": tokenshift.versions(), "behaviour": behaviour(args.command), "engine": engine,
            "models": {"base": provenance(args.base), "tuned": provenance(args.tuned)}}
    if problems is not None:
        meta |= {"data": data_provenance(args.data, args.data_files, args.data_revision), **problems.asked()}
    with atomic(out.with_name(out.name + ".meta.json")) as tmp:
        tmp.write_text(json.dumps(meta, indent=1) + "\n")


def behaviour(command: str) -> dict[str, int]:
    """The behaviour versions of the code a command's output comes from (``core.behaviour``): a result made
    before a change that redraws or rescores it names older numbers."""
    from ..core.behaviour import combine

    builder = {"sample": "reference_responses", "score": "shift_scores", "cross-sample": "cross_sampling"}[command]
    return combine(f"tokenshift.analyses.{builder}")["versions"]


def check_made_with(path: Path, where: str) -> None:
    """Warn when the file at ``path`` was written (its ``.meta.json`` says) by code whose behaviour versions
    differ from this suite's: its responses or scores would come out otherwise now, so mixing it with new ones
    mixes two behaviours."""
    meta = path.with_name(path.name + ".meta.json")
    if not meta.is_file():
        return
    made = json.loads(meta.read_text())
    recorded, command = made.get("behaviour"), made.get("command")
    if recorded is None or command not in ("sample", "score", "cross-sample"):
        return
    now = behaviour(command)
    moved = {name: (recorded.get(name), number) for name, number in now.items() if recorded.get(name) != number}
    if moved:
        print(f"warning: {where} was made by `tokenshift {command}` with other behaviour versions than this suite's ("
              + ", ".join(f"{name} {old} -> {new}" for name, (old, new) in sorted(moved.items()))
              + "): made again now it would come out otherwise; do not mix it with results made now",
              file=sys.stderr)


def _rank0() -> bool:
    from ..core.parallel import current

    return current().rank == 0


def cmd_sample(args) -> None:
    from ..analyses import reference_responses
    from .study import sampling_config

    setup = _setup(args)
    problems = _problems(args, setup.seed)
    _check_budget(args, setup, problems)
    source = args.tuned if args.sample_from == "tuned" else args.base
    table = reference_responses.responses(source, problems, sampling_config(setup, setup.max_new_tokens),
                                          placement=_placement(args), show_progress=_rank0())
    _write(args.out, table, args, setup, problems, _engine_version() if setup.engine == "vllm" else OWN_DECODER)
    _report(args.out, lambda f: f"{len(f)} responses, accuracy {f['correct'].mean():.4f}")


def cmd_score(args) -> None:
    from ..analyses import shift_scores, shifts
    from ..models import responses
    from ..models.loading import load_tokenizer, stop_ids
    from .pairs import check_frozen
    from .study import scoring_config

    setup = _setup(args)
    if args.frozen:
        check_frozen({"base": args.base, "tuned": args.tuned}, {}, "arguments")
    refs = responses.read(args.responses, "--responses")
    where = f"--responses {args.responses}"
    check_made_with(args.responses, where)
    if "eps" in refs.columns:  # a cross-sample file: one eps and rule of it
        if args.eps is None:
            raise ValueError(f"--responses {args.responses} is a cross-sample file: choose its responses with --eps "
                             f"(one of {sorted(refs['eps'].unique().to_list())})")
        refs = refs.filter((pl.col("eps") == args.eps) & (pl.col("rule") == args.rule))
        if not len(refs):
            raise ValueError(f"--eps {args.eps} --rule {args.rule}: no such responses in {args.responses}")
    responses.check(refs, where)
    tokenizers = [load_tokenizer(args.base), load_tokenizer(args.tuned)]
    responses.check_ids(refs, len(tokenizers[0]), where)
    refs, ran_on = responses.cut_at_stops(refs, stop_ids(tokenizers, [args.base, args.tuned]))
    if ran_on:
        print(f"{where}: {ran_on} responses ran on past a stop token (the pair's end of turn or EOS); each is "
              "scored up to it", file=sys.stderr)
    table = shift_scores.scores(args.base, args.tuned, tokenizers[0], refs, scoring_config(setup),
                                placement=_placement(args), show_progress=_rank0())
    _write(args.out, shifts.with_verdicts(table, refs) if "correct" in refs.columns else table, args, setup)
    _report(args.out, lambda f: f"{len(f)} positions of {f['response'].n_unique()} responses")


def cmd_cross_sample(args) -> None:
    from ..analyses.cross_sampling import capped, sweep
    from .study import sweep_config

    setup = _setup(args)
    problems = _problems(args, setup.seed)
    _check_budget(args, setup, problems)
    config = sweep_config(setup, setup.max_new_tokens, args.eps, setup.js_top_p,
                          rules=("divergence", "random", *(capped(m) for m in args.cap)))
    ends = (args.base, args.tuned) if args.direction == "forward" else (args.tuned, args.base)
    table = sweep(*ends, problems, config, placement=_placement(args), show_progress=_rank0())
    engine = f"{_engine_version()}, both models" if config.method == "engine" else \
        f"{_engine_version()} drafting, tokenshift verifying" if config.drafter == "vllm" else OWN_DECODER
    _write(args.out, table, args, setup, problems, engine)
    _report(args.out, lambda f: f"{len(f)} responses over {f['eps'].n_unique()} eps values")


def _report(out: Path, what) -> None:
    if _rank0():
        print(f"wrote {out}: {what(pl.read_parquet(out))}")


def _checkpoint(arg: str):
    from ..models import responses

    step, sep, file = arg.partition("=")
    if not sep or not step.strip().isdigit():
        raise ValueError(f"--checkpoints takes STEP=FILE (e.g. 50=step50.parquet), got {arg!r}")
    check_made_with(Path(file), f"checkpoint file {file}")
    return int(step), responses.read(Path(file), f"checkpoint file {file}")


def _column(summary: dict[str, float]) -> pl.DataFrame:
    return pl.DataFrame({"metric": list(summary), "value": list(summary.values())})


def cmd_summarise(args) -> None:
    from ..analyses import cross_sampling_stats, shift_stats
    from ..models import responses

    frame = responses.read(args.file, "input file")
    check_made_with(args.file, str(args.file))
    with pl.Config(float_precision=4, tbl_rows=-1, tbl_cols=-1, tbl_width_chars=160):
        if "eps" in frame.columns:
            if "correct" not in frame.columns:
                raise ValueError(f"{args.file} has no verdicts (column 'correct'): pass a file from "
                                 "`tokenshift cross-sample`, which judges every response")
            print("accuracy and budget per eps and rule (eps = inf: the primary model alone):")
            print(cross_sampling_stats.summarise(frame))
            return
        if args.js not in frame.columns:
            raise ValueError(f"{args.file} has no column {args.js!r}: pass a file from `tokenshift score` "
                             "or `tokenshift cross-sample`")
        print(f"{frame['response'].n_unique()} responses, {len(frame)} positions, "
              f"accuracy of the responses {frame.group_by('response').agg(pl.col('correct').first())['correct'].mean():.4f}")
        print("\nsparsity:")
        print(_column(shift_stats.sparsity_summary(frame, js=args.js, high=args.high)))
        print(f"\n{args.js} by normalised position:")
        print(shift_stats.position_profile(frame, js=args.js, high=args.high))
        print(f"\nat positions with {args.js} > {args.high}:")
        print(_column(shift_stats.reallocation_summary(frame, js=args.js, high=args.high)))
        if {"entropy_base", "entropy_tuned"} <= set(frame.columns):
            print(f"\nhow well entropy locates {args.js} > {args.high} (AUROC, 95% interval over responses):")
            for v in shift_stats.entropy_verdicts({"tuned": frame}, ["tuned"], js=args.js, high=args.high):
                which = v.statistic.rsplit(".", 1)[1]
                print(f"  {which}: " + (f"{v.value:.3f} [{v.low:.3f}, {v.high:.3f}]" if v.low is not None else v.rule))
        if "token" in frame.columns:
            print(f"\nthe tokens most often at {args.js} > {args.high}, over all their occurrences:")
            print(shift_stats.token_identity(frame, js=args.js, high=args.high))
            print(f"\ntoken categories: share of all positions and of those with {args.js} > {args.high}:")
            print(shift_stats.category_shares(frame, js=args.js, high=args.high))
        if args.checkpoints:
            points = [_checkpoint(arg) for arg in args.checkpoints]
            e = shift_stats.evolution(points, frame, js=args.js, high=args.high)
            print(f"\nevolution over the checkpoints ({args.js}; Jaccard of each high-JS set with FILE's):")
            print(e)
            for v in shift_stats.evolution_verdicts(e, "tuned"):
                print("  " + v.line())


def cmd_view(args) -> None:
    from ..analyses import viewer
    from ..models import responses
    from ..models.loading import load_tokenizer
    from ..problems.data import load_problems

    table = responses.read(args.file, "input file")
    missing = sorted({"response", "position", "token_id", "js", "js_top_p", "base_top_ids", "tuned_top_ids"}
                     - set(table.columns))
    if missing:
        raise ValueError(f"{args.file} lacks the column(s) {missing} of a scored file: pass a file written by "
                         "`tokenshift score`")
    tok = load_tokenizer(args.tokenizer)
    texts = [p.problem for p in load_problems(args.data, args.problem_field, args.answer_field)] if args.data else None
    path = viewer.write(args.out, table, tok, texts, args.title, args.max_responses)
    print(f"wrote {path}")


def cmd_run_notebooks(args) -> int:
    from . import runner

    return runner.main(["--profile", args.profile, *(["--only", *args.only] if args.only else [])])


def cmd_prepare(args) -> None:
    from . import runner, study

    notebooks = {name: runner.parameters(name, params) for name, params in runner.plan(args.profile, args.only)}
    study.for_profile(args.profile, show_progress=_rank0()).prepare(notebooks)
    if _rank0():
        print(f"prepared {', '.join(notebooks)} of {args.profile}: `tokenshift run-notebooks --profile "
              f"{args.profile}` now reads their tables from the cache")


def cmd_plan(args) -> None:
    from . import plan

    if args.mean_tokens is not None and args.mean_tokens < 1:
        raise ValueError(f"--mean-tokens must be at least 1, got {args.mean_tokens}")
    lines = plan.registry_report(args.registry, args.mean_tokens) if args.registry else \
        plan.report(args.profile, args.mean_tokens)
    print("\n".join(lines))


def cmd_atlas(args) -> None:
    from . import atlas

    table = atlas.run(args.registry, args.pairs, args.out_dir, show_progress=_rank0())
    if _rank0():
        print(f"{args.out_dir / 'atlas.parquet'}: {len(table)} rows ({table['pair'].n_unique()} pairs); figure "
              f"{args.out_dir / 'atlas.png'}")


def cmd_cache(args) -> int:
    from ..core.cache import ArtifactCache

    cache = ArtifactCache(args.root)
    if (args.verify or args.clean) and not cache.root.is_dir():
        raise FileNotFoundError(f"cache root {cache.root} does not exist: check --root (or $TOKENSHIFT_CACHE); a "
                                "cache is made by the first run that uses it")
    entries = cache.entries()
    print(f"{len(entries)} entries in {cache.root}")
    if args.clean:
        for tmp in cache.clean():
            print(f"removed {tmp}, left by a killed build")
    if args.verify:
        damaged = cache.verify()
        for entry, problem in damaged.items():
            print(f"damaged: {entry}: {problem} (it is rebuilt on next use)")
        print(f"{len(entries) - len(damaged)} intact, {len(damaged)} damaged")
        return 1 if damaged else 0
    return 0


COMMANDS = {"sample": cmd_sample, "score": cmd_score, "cross-sample": cmd_cross_sample, "summarise": cmd_summarise,
            "view": cmd_view, "run-notebooks": cmd_run_notebooks, "prepare": cmd_prepare, "plan": cmd_plan, "atlas": cmd_atlas,
            "cache": cmd_cache}


def main(argv: list[str] | None = None) -> int:
    from ..models.engine import EngineUnavailable

    args = parser().parse_args(argv)
    try:
        _check_args(args)
        return COMMANDS[args.command](args) or 0
    except (ValueError, FileNotFoundError, ConnectionError, EngineUnavailable) as e:
        print(f"tokenshift {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the disk or file system refused: nothing half-written is left (paths.atomic)
        print(f"tokenshift {args.command}: error: {os_problem(e)}", file=sys.stderr)
        return 2


FIXES = {errno.ENOSPC: "free some space, or write elsewhere (--out, $TOKENSHIFT_CACHE)",
         errno.EROFS: "the file system is read-only: use a writable location (--out, --root, $TOKENSHIFT_CACHE)",
         errno.EACCES: "no permission there: use a location you can write to (--out, --root, $TOKENSHIFT_CACHE)"}


def os_problem(e: OSError) -> str:
    """An operating-system error in one line: what failed, on which file, and the fix."""
    where = f" ({e.filename})" if e.filename else ""
    fix = FIXES.get(e.errno, "check the path and the disk")
    return f"{e.strerror or e}{where}: {fix}; any earlier output is left as it was"


if __name__ == "__main__":
    sys.exit(main())
