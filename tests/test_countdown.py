"""Countdown generator, solver, checker and expert derivations."""

import re

import pytest

from suite.tasks import countdown

NUMBERS = [2, 3, 5, 7]  # 3 * 7 + 5 - 2 = 24
TARGET = 24


def boxed(expression: str) -> str:
    return f"Some reasoning first.\n\\boxed{{{expression}}}"


def test_generated_puzzles_always_solvable_over_many_seeds():
    for seed in range(20):
        for record in countdown.generate(50, seed):
            meta = record["metadata"]
            numbers, target = meta["numbers"], meta["target"]
            assert 3 <= len(numbers) <= 4
            assert all(1 <= number <= 99 for number in numbers)
            assert 1 <= target <= 99
            assert record["answers"] == [str(target)]
            assert countdown.check(boxed(meta["solution"]), numbers, target), record
            solved = countdown.solve(numbers, target)
            assert solved is not None and countdown.check(boxed(solved), numbers, target)


def test_generated_solutions_use_positive_integer_steps():
    for record in countdown.generate(200, seed=1):
        text = countdown.expert_solution(record)
        steps = re.findall(r"^\S+ [-+*/] \S+ = (\S+)$", text, re.MULTILINE)
        assert len(steps) == len(record["metadata"]["numbers"]) - 1, text
        assert all(value.isdigit() and int(value) > 0 for value in steps), steps


def test_generate_is_deterministic_and_seed_dependent():
    assert countdown.generate(10, seed=5) == countdown.generate(10, seed=5)
    assert countdown.generate(10, seed=5) != countdown.generate(10, seed=6)


def test_generate_record_fields_and_prompt():
    record = countdown.generate(1, seed=3, n_numbers=4, max_number=20, max_target=50)[0]
    meta = record["metadata"]
    assert record["id"] == "countdown-3-0"
    assert len(meta["numbers"]) == 4 and max(meta["numbers"]) <= 20 and meta["target"] <= 50
    assert record["prompt"] == countdown.format_prompt(meta["numbers"], meta["target"])
    assert ", ".join(map(str, meta["numbers"])) in record["prompt"]
    assert f"equals {meta['target']}." in record["prompt"] and "\\boxed{}" in record["prompt"]


def test_generate_supports_larger_fixed_counts():
    records = countdown.generate(10, seed=0, n_numbers=5)
    assert {len(r["metadata"]["numbers"]) for r in records} == {5}
    assert all(countdown.solve(r["metadata"]["numbers"], r["metadata"]["target"]) for r in records)


@pytest.mark.parametrize(
    "options",
    [{"n_numbers": 1}, {"n_numbers": (4, 3)}, {"n_numbers": (1, 2)}, {"max_target": 0},
     {"max_number": 0}],
)
def test_generate_rejects_bad_options(options):
    with pytest.raises(ValueError):
        countdown.generate(1, seed=0, **options)


def test_check_accepts_correct_expression():
    assert countdown.check(boxed("3*7 + 5 - 2"), NUMBERS, TARGET)
    assert countdown.check(boxed("(5 - 2) + 7 * 3"), NUMBERS, TARGET)
    assert countdown.check(boxed("3*7 + 5 - 2"), NUMBERS, "24")


@pytest.mark.parametrize(
    "expression, reason",
    [
        ("5*5 - 3 + 2", "reuses 5, omits 7"),
        ("(7 + 5) * 2", "omits 3"),
        ("3*7 + 5 - 2 + 1 - 1", "extra numbers"),
        ("3*7 + 5 + 2", "wrong value (28)"),
        ("3*7 + 5 - 2 = 24", "equation instead of expression"),
    ],
)
def test_check_rejects_wrong_number_use_or_value(expression, reason):
    assert not countdown.check(boxed(expression), NUMBERS, TARGET), reason


def test_check_counts_repeated_given_numbers_as_a_multiset():
    assert countdown.check(boxed("5 + 2 + 5"), [5, 5, 2], 12)
    assert not countdown.check(boxed("5*2 + 2"), [5, 5, 2], 12)
    assert not countdown.check(boxed("5 + 5 + 2"), [5, 2], 12)


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('echo pwned')",
        "3*7 +",
        "",
        "x + 3*7 + 5 - 2",
        "abs(3*7 + 5 - 2)",
        "-2 + 3*7 + 5",
        "2**3 + 7 + 5 + 3",
        "3.0*7 + 5 - 2",
        "True + 3*7 + 5 - 2",
        "[3*7 + 5 - 2][0]",
        "lambda: 24",
    ],
)
def test_check_rejects_malformed_or_unsafe_expressions(expression):
    assert not countdown.check(boxed(expression), NUMBERS, TARGET)


def test_check_rejects_division_by_zero():
    assert not countdown.check(boxed("3 / (2 - 2)"), [2, 2, 3], 3)
    assert not countdown.check(boxed("3 // (2 - 2)"), [2, 2, 3], 3)


def test_check_uses_the_last_complete_box_or_the_whole_response():
    assert countdown.check("3*7 + 5 - 2", NUMBERS, TARGET)  # no box: the whole response
    assert not countdown.check("\\boxed{3*7 + 5 - 2", NUMBERS, TARGET)
    assert countdown.check("\\boxed{1 + 1} then \\boxed{3*7 + 5 - 2}", NUMBERS, TARGET)
    assert not countdown.check("\\boxed{3*7 + 5 - 2} then \\boxed{1 + 1}", NUMBERS, TARGET)
    assert countdown.extract_expression("a \\boxed{ {1} } b \\boxed{x}") == "x"
    assert countdown.extract_expression("a \\boxed{\\frac{1}{2}} b") == "\\frac{1}{2}"
    # braces two levels deep are beyond the authors' pattern: no box, so the whole response
    assert countdown.extract_expression("\\boxed{{{1}}}") == "\\boxed{{{1}}}"
    assert countdown.extract_expression("no box", require_box=True) is None


def test_last_boxed_handles_nested_braces():
    assert countdown.last_boxed("a \\boxed{\\frac{1}{2}} b") == "\\frac{1}{2}"
    assert countdown.last_boxed("no box here") is None


def test_solve_finds_valid_expression_or_none():
    expression = countdown.solve(NUMBERS, TARGET)
    assert countdown.check(boxed(expression), NUMBERS, TARGET)
    assert countdown.solve([1, 1, 1], 100) is None
    assert countdown.solve([4], 4) == "4"


def test_expert_solution_derivation_and_box():
    record = countdown.generate(1, seed=11)[0]
    meta = record["metadata"]
    text = countdown.expert_solution(record)
    assert text.endswith(f"\\boxed{{{meta['solution']}}}")
    assert f"So {meta['solution']} = {meta['target']}." in text
    steps = re.findall(r"^\d+ [-+*/] \d+ = \d+$", text, re.MULTILINE)
    assert len(steps) == len(meta["numbers"]) - 1
    assert countdown.check(text, meta["numbers"], meta["target"])


def test_expert_solution_solves_records_without_a_solution():
    record = {"id": "external", "metadata": {"numbers": NUMBERS, "target": TARGET}}
    assert countdown.check(countdown.expert_solution(record), NUMBERS, TARGET)
    record["metadata"] = {"numbers": [1, 1, 1], "target": 100}
    with pytest.raises(ValueError, match="external"):
        countdown.expert_solution(record)


# --------------------------------------------------------------------------- the authors' checker
# Hand-written responses with the verdict of the Retaining by Doing reference checker
# (princeton-pli/retaining-by-doing, core/data.py: CountdownDataset.parse_output_text + validate_expression),
# worked out by hand from its rules: last \boxed{} (else the whole response), integer arithmetic with exact
# division only, + - * / //, integer literals only, final value == target and in 0..99, numbers as a multiset.

REFERENCE_CASES = [
    # (response, numbers, target, reference verdict, why)
    ("3*7 + 5 - 2", NUMBERS, TARGET, True, "no box: the whole response is the expression"),
    ("  3*7 + 5 - 2\n", NUMBERS, TARGET, True, "no box: the whole response, stripped"),
    ("The answer is 3*7 + 5 - 2", NUMBERS, TARGET, False, "no box: prose around it does not parse"),
    ("\\boxed{3*7 + 5 - 2", NUMBERS, TARGET, False, "unclosed box: the whole response, which does not parse"),
    ("\\boxed{1 + 1} then \\boxed{3*7 + 5 - 2", NUMBERS, TARGET, False, "the last *complete* box is 1 + 1"),
    ("\\boxed{ 3*7 + 5 - 2 }", NUMBERS, TARGET, True, "box content is stripped"),
    ("\\boxed{(3/2)*4}", [2, 3, 4], 6, False, "3/2 is not an integer"),
    ("\\boxed{(3*4)/2}", [2, 3, 4], 6, True, "12/2 is exact"),
    ("\\boxed{6 / (1 - 3/4)}", [1, 3, 4, 6], 24, False, "3/4 is not an integer"),
    ("\\boxed{(3*7 + 5 - 2) // 1}", [1, 2, 3, 5, 7], 24, True, "// is exact division"),
    ("\\boxed{7 // 2 * 8}", [2, 7, 8], 24, False, "7 // 2 is not exact"),
    ("\\boxed{3 \\times 7 + 5 - 2}", NUMBERS, TARGET, False, "\\times is not Python"),
    ("\\boxed{3 × 7 + 5 - 2}", NUMBERS, TARGET, False, "× is not Python"),
    ("\\boxed{3 \\cdot 7 + 5 - 2}", NUMBERS, TARGET, False, "\\cdot is not Python"),
    ("\\boxed{50 + 50}", [50, 50], 100, False, "100 is outside 0..99"),
    ("\\boxed{99 + 1}", [99, 1], 100, False, "100 is outside 0..99"),
    ("\\boxed{9 - 9}", [9, 9], 0, True, "0 is inside 0..99"),
    ("\\boxed{2 - 7 + 29}", [2, 7, 29], 24, True, "negative intermediates are fine"),
    ("\\boxed{True * 2 * 3 * 4}", [1, 2, 3, 4], 24, True, "True is the Python integer 1"),
    ("\\boxed{-2 + 3*7 + 5}", [-2, 3, 5, 7], 24, False, "unary minus is not a BinOp"),
    ("\\boxed{2 % 3 + 23}", [2, 3, 23], 25, False, "% is not allowed"),
    ("\\boxed{3*7 + 5 - 2 = 24}", NUMBERS, TARGET, False, "an equation does not parse"),
    ("\\boxed{\\frac{1}{2}}", [1, 2], 0, False, "LaTeX does not parse"),
]


@pytest.mark.parametrize("response, numbers, target, verdict, why", REFERENCE_CASES,
                         ids=[case[-1] for case in REFERENCE_CASES])
def test_check_matches_the_reference_checker(response, numbers, target, verdict, why):
    assert countdown.check(response, numbers, target) is verdict, why


def test_reward_follows_the_reference_checker_and_spec_rules():
    import json

    from suite.rewards.retaining import countdown_correct, countdown_reward

    spec = json.dumps({"numbers": [2, 3, 4], "target": 6})
    assert countdown_reward("(3*4)/2", [spec]) == 1.0  # no box: the whole response
    assert countdown_reward("\\boxed{(3/2)*4}", [spec]) == 0.0
    lenient = json.dumps({"numbers": [2, 3, 4], "target": 6, "rules": countdown.SUITE_RULES})
    assert countdown_correct("\\boxed{(3/2)*4}", [lenient])
    assert not countdown_correct("(3*4)/2", [lenient])


@pytest.mark.parametrize(
    "response, numbers, target, option, reference, with_option",
    [
        ("3*7 + 5 - 2", NUMBERS, TARGET, {"require_box": True}, True, False),
        ("\\boxed{(3/2)*4}", [2, 3, 4], 6, {"exact_fractions": True}, False, True),
        ("\\boxed{6 / (1 - 3/4)}", [1, 3, 4, 6], 24, {"exact_fractions": True}, False, True),
        ("\\boxed{6 / (2 - 2)}", [2, 2, 6], 0, {"exact_fractions": True}, False, False),
        ("\\boxed{24 // 1}", [1, 24], 24, {"floor_division": False}, True, False),
        ("\\boxed{3 \\times 7 + 5 - 2}", NUMBERS, TARGET, {"latex_operators": True}, False, True),
        ("\\boxed{12 \\div 3 \\cdot 6}", [3, 6, 12], 24, {"latex_operators": True}, False, True),
        ("\\boxed{50 + 50}", [50, 50], 100, {"value_range": None}, False, True),
        ("\\boxed{50 + 50}", [50, 50], 100, {"value_range": (0, 1000)}, False, True),
        ("\\boxed{9 - 9}", [9, 9], 0, {"value_range": (1, 99)}, True, False),
    ],
)
def test_each_departure_from_the_reference_is_an_option(response, numbers, target, option, reference,
                                                        with_option):
    assert countdown.check(response, numbers, target) is reference
    assert countdown.check(response, numbers, target, **option) is with_option


def test_suite_rules_are_the_former_permissive_checker():
    rules = countdown.SUITE_RULES
    assert countdown.check(boxed("6 / (1 - 3/4)"), [1, 3, 4, 6], 24, **rules)
    assert countdown.check(boxed("3 \\times 7 + 5 - 2"), NUMBERS, TARGET, **rules)
    assert countdown.check(boxed("50 + 50"), [50, 50], 100, **rules)
    assert not countdown.check("3*7 + 5 - 2", NUMBERS, TARGET, **rules)
    assert not countdown.check(boxed("(3*7 + 5 - 2) // 1"), [1, 2, 3, 5, 7], TARGET, **rules)


def test_check_survives_pathological_responses():
    assert not countdown.check("(" * 5000 + "1" + ")" * 5000, [1], 1)
    assert not countdown.check("+".join(["1"] * 20000), [1] * 20000, 20000)
    assert not countdown.check("3*7 + 5 - 2\x00", NUMBERS, TARGET)
    assert not countdown.check("", NUMBERS, TARGET)
