"""The one validator of settings: its rules, the page that documents them, and the command line and profiles
that both use it."""

import math
import re
from pathlib import Path

import pytest
from tokenshift.core import validate
from tokenshift.suite import profiles

PAGE = Path(__file__).parents[1] / "docs" / "input-rules.md"


def test_the_input_rules_page_is_the_validators_own():
    assert PAGE.read_text() == validate.rules_page(), \
        "docs/input-rules.md is stale: python -m tokenshift.core.validate > docs/input-rules.md"


@pytest.mark.parametrize("name", sorted(validate.RULES))
def test_every_documented_rule_refuses_nan_and_text_and_takes_its_lower_bound(name):
    rule = validate.RULES[name]
    for bad in (math.nan, "1", None, True):
        with pytest.raises(ValueError, match=re.escape(f"--{name} must be {rule.describe()}")):
            validate.check(name, bad, f"--{name}")
    if rule.low is not None:
        edge = rule.kind(rule.low)
        if rule.low_open:
            with pytest.raises(ValueError):
                validate.check(name, edge, name)
        else:
            validate.check(name, edge, name)
    if not rule.inf:
        with pytest.raises(ValueError):
            validate.check(name, math.inf, name)


def test_the_command_line_and_a_profile_give_the_same_refusal(tmp_path, capsys):
    from tokenshift.suite import cli

    assert cli.main(["cross-sample", "--base", "b", "--tuned", "t", "--data", "d.jsonl", "--top-p", "1.5",
                     "--out", str(tmp_path / "x.parquet")]) == 2
    assert "--top-p must be a number in (0, 1], got 1.5" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"shifts\.top_p must be a number in \(0, 1\], got 1\.5"):
        profiles.with_overrides(profiles.ShiftSetup(), {"top_p": 1.5}, "p.yaml: shifts")
    with pytest.raises(ValueError, match=r"shifts\.max_new_tokens must be an integer >= 0, got -1"):
        profiles.with_overrides(profiles.ShiftSetup(), {"max_new_tokens": -1}, "p.yaml: shifts")
