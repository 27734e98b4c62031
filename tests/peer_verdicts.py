"""Re-check the peers' columns of grading_table.py by running the peers themselves; never imported by the
tests (DAPO's grader ships in verl, which the suite does not install). In a scratch folder:

    pip download verl==0.9.1 --no-deps && python -m zipfile -e verl-0.9.1-py3-none-any.whl verl-wheel
    .venv/bin/python tests/peer_verdicts.py verl-wheel/verl/utils/reward_score/math_dapo.py

prints each case where a recorded verdict differs from the peer's, and exits 1 if any does."""

import importlib.util
import sys

from grading_table import CASES
from math_verify import parse, verify


def main(math_dapo: str) -> int:
    spec = importlib.util.spec_from_file_location("math_dapo", math_dapo)
    dapo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dapo)  # the file imports only re and typing: no need to import verl
    wrong = 0
    for case in CASES:
        found = {"math_verify": bool(verify(parse(f"${case.reference}$"), parse(case.response))),
                 "dapo": bool(dapo.compute_score(case.response, case.reference)["acc"])}
        for peer, verdict in found.items():
            if getattr(case, peer) != verdict:
                wrong += 1
                print(f"{peer} says {verdict} for {case.reference!r} vs {case.response!r}")
    print(f"{len(CASES)} cases, {wrong} recorded verdicts differ from the peers'")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
