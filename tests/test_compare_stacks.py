"""scripts/compare_stacks.py's JSON comparison: numbers within the tolerance at any depth, structure exactly."""

from __future__ import annotations

from helpers import load_script

compare_stacks = load_script("scripts/compare_stacks.py", "compare_stacks")


def differences(a, b):
    return compare_stacks.json_differences(a, b, 1e-5, "m")


def test_numbers_inside_lists_of_records_agree_within_the_tolerance():
    grid = [{"rank": 10, "validation": 0.8802818601109477}, {"rank": 30, "validation": float("nan")}]
    close = [{"rank": 10, "validation": 0.8802818601109446}, {"rank": 30, "validation": float("nan")}]
    assert differences({"grid": grid}, {"grid": close}) == []


def test_a_number_past_the_tolerance_a_missing_entry_or_another_value_is_named_with_its_path():
    assert differences({"grid": [{"v": 0.5}]}, {"grid": [{"v": 0.50002}]}) == ["m.grid[0].v: 0.5 vs 0.50002"]
    assert differences({"grid": [1, 2]}, {"grid": [1]}) == ["m.grid: 2 entries vs 1"]
    assert differences({"grid": [{"rank": 10}]}, {"grid": [{"rank": 11}]}) == ["m.grid[0].rank: 10 vs 11"]
    assert differences({"chosen": "rank=10"}, {"chosen": "rank=30"}) == ["m.chosen: 'rank=10' vs 'rank=30'"]
