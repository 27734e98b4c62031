import pytest
from tokenshift.core import parallel, seeding


def test_seeds_are_stable_and_apart():
    assert seeding.derive(0, "unit", 3) == seeding.derive(0, "unit", 3)
    seeds = {seeding.derive(s, label, i) for s in range(3) for label in ("unit", "random-control") for i in range(50)}
    assert len(seeds) == 300 and all(0 <= s < 2**63 for s in seeds)
    # what an arithmetic scheme got wrong: seed + 1 made one stream another's
    assert seeding.derive(1, "unit", 0) != seeding.derive(0, "unit", 1)


def test_responses_are_numbered_by_problem_and_slot_whatever_the_unit():
    assert parallel.responses_of([3, 4], 2) == [6, 7, 8, 9]
    assert parallel.responses_of([0, 1, 2, 3, 4], 2)[6:] == parallel.responses_of([3, 4], 2)


def test_a_known_value_pins_the_derivation_across_machines():
    assert seeding.derive(0, "unit", 0) == 4130811557364183845


@pytest.mark.parametrize("bad", [1.5, "0", True, None])
def test_seeds_and_labels_have_plain_types(bad):
    with pytest.raises(TypeError):
        seeding.derive(bad, "x")
    with pytest.raises(TypeError):
        seeding.derive(0, bad if bad != "0" else 1.5)
