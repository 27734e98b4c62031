"""Re-check the peers' columns of grading_table.py by running the peers themselves; never imported by the
tests (the peers' graders are not installed with the suite). In a scratch folder, DAPO's (it ships in verl):

    pip download verl==0.9.1 --no-deps && python -m zipfile -e verl-0.9.1-py3-none-any.whl verl-wheel
    .venv/bin/python tests/peer_verdicts.py dapo verl-wheel/verl/utils/reward_score/math_dapo.py

and Qwen2.5-Math's (its repository's evaluation/ folder, in an environment of its own, since it needs SymPy's
LaTeX parser with antlr 4.11 where math-verify needs 4.13):

    python3.11 -m venv qwen-env && qwen-env/bin/pip install "sympy==1.12" "antlr4-python3-runtime==4.11.1" \\
        word2number regex && qwen-env/bin/pip install Qwen2.5-Math/evaluation/latex2sympy
    qwen-env/bin/python tests/peer_verdicts.py qwen Qwen2.5-Math/evaluation

Each prints every case where a recorded verdict differs from the peer's, and exits 1 if any does. The qwen run
also writes qwen_corpus.json: Qwen2.5-Math's verdicts on answer pairs built from its own copies of OlympiadBench's
and AIME 2024's answers (each answer against itself written seven ways, and against another answer), which

    .venv/bin/python tests/peer_verdicts.py agree qwen_corpus.json

sets beside the suite's qwen-math mode, printing the share of pairs where they agree and those where not."""

import importlib.util
import json
import random
import signal
import sys
from pathlib import Path

from grading_table import CASES


def dapo_verdicts(math_dapo: str) -> dict:
    from math_verify import parse, verify

    spec = importlib.util.spec_from_file_location("math_dapo", math_dapo)
    dapo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dapo)  # the file imports only re and typing: no need to import verl
    return {"math_verify": lambda c: bool(verify(parse(f"${c.reference}$"), parse(c.response))),
            "dapo": lambda c: bool(dapo.compute_score(c.response, c.reference)["acc"])}


def qwen_verdicts(evaluation: str) -> dict:
    sys.path.insert(0, evaluation)
    from grader import math_equal
    from parser import extract_answer, strip_string

    def verdict(case):  # as its evaluate.py: 3 seconds per comparison, an error or a timeout is wrong
        signal.alarm(3)
        try:
            prediction = strip_string(extract_answer(case.response, "aime24"))  # its run_execute strips again
            return bool(math_equal(prediction, strip_string(case.reference)))
        except Exception:
            return False
        finally:
            signal.alarm(0)

    signal.signal(signal.SIGALRM, timed_out)
    pairs = corpus(Path(evaluation) / "data")
    verdicts = [verdict(Case(p["reference"], p["response"])) for p in pairs]
    Path("qwen_corpus.json").write_text(json.dumps([{**p, "qwen": v} for p, v in zip(pairs, verdicts)]))
    return {"qwen": verdict}


class Case:  # the two fields a peer reads
    def __init__(self, reference: str, response: str):
        self.reference, self.response = reference, response


WRITTEN = ("So \\boxed{{{}}}.", "The answer is ${}$.", "Answer: {}", "\\boxed{{x = {}}}", "\\boxed{{{} \\text{{ cm}}}}",
           "Final Answer: The final answer is ${}$. I hope it is correct.")


def corpus(data: Path) -> list[dict]:
    answers = [a.strip().strip("$") for line in (data / "olympiadbench/test.jsonl").open()
               for a in json.loads(line)["final_answer"]]
    answers += [str(json.loads(line)["answer"]) for line in (data / "aime24/test.jsonl").open()]
    rng, pairs = random.Random(0), []
    for answer in answers:
        written = [w.format(answer) for w in WRITTEN] + [f"\\boxed{{{answer.replace('frac', 'dfrac')}}}"]
        other = rng.choice(WRITTEN).format(rng.choice(answers))
        pairs += [{"reference": answer, "response": r} for r in (*written, other)]
    return pairs


def agree(path: str) -> int:
    from tokenshift.problems import qwen_math_grader

    pairs = json.loads(Path(path).read_text())
    differ = [p for p in pairs if qwen_math_grader.is_correct(p["reference"], p["response"]) != p["qwen"]]
    for p in differ:
        print(f"Qwen2.5-Math says {p['qwen']} for {p['reference']!r} vs {p['response']!r}")
    print(f"{len(pairs)} pairs: the qwen-math mode agrees on {1 - len(differ) / len(pairs):.2%} ({len(differ)} differ)")
    return 0


def timed_out(*_):
    raise TimeoutError


def main(peer: str, where: str) -> int:
    if peer == "agree":
        return agree(where)
    peers = {"dapo": dapo_verdicts, "qwen": qwen_verdicts}[peer](where)
    wrong = 0
    for case in CASES:
        for name, verdict in peers.items():
            if getattr(case, name) != verdict(case):
                wrong += 1
                print(f"{name} says {not getattr(case, name)} for {case.reference!r} vs {case.response!r}")
    print(f"{len(CASES)} cases, {wrong} recorded verdicts differ from the peers'")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
