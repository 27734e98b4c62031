"""A profile may extend another: the other's sections where it gives none of its own."""

import pytest
import yaml
from tokenshift.analyses.cross_sampling import METHODS
from tokenshift.suite import profiles


def test_a_profile_takes_the_sections_it_does_not_give_from_the_one_it_extends(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text(yaml.safe_dump({"extends": "paper", "shifts": {"samples_per_problem": 2}}))
    spec, paper = profiles.load(str(child)), profiles.load("paper")
    assert spec["pairs"] == paper["pairs"] and spec["notebooks"] == paper["notebooks"]
    assert spec["shifts"] == {"samples_per_problem": 2}
    assert profiles.load("paper-table")["pairs"] == paper["pairs"]


def test_extending_itself_or_nothing_is_refused(tmp_path):
    loop = tmp_path / "loop.yaml"
    loop.write_text(yaml.safe_dump({"extends": str(loop)}))
    with pytest.raises(ValueError, match="extends names another profile"):
        profiles.load(str(loop))
    loop.write_text(yaml.safe_dump({"extends": "no-such-profile"}))
    with pytest.raises(ValueError, match="unknown profile 'no-such-profile'"):
        profiles.load(str(loop))


def test_the_profiles_cross_sampling_methods_are_the_libraries():
    assert profiles.CROSS_METHODS == METHODS
    with pytest.raises(ValueError, match="cross_method one of"):
        profiles.ShiftSetup(cross_method="telepathy")
