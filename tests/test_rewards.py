"""math-verify and QA scorers on tricky answers."""

import pytest

from suite.rewards import get_reward, get_verifier
from suite.rewards.math import is_correct
from suite.rewards.qa import exact_match, extract_answer, f1_score, normalize_answer


@pytest.mark.parametrize("completion,answers,expected", [
    ("So she makes \\boxed{18} dollars.", ["18"], True),
    ("Janet sells 9 eggs.\n#### 18", ["18"], True),             # GSM8K style
    ("#### 1,000", ["1000"], True),                             # thousands separator
    ("The answer is \\boxed{\\$18}.", ["18"], True),             # units inside the box
    ("\\boxed{18.0}", ["18"], True),
    ("First 17, then \\boxed{18}", ["18"], True),                # the boxed answer wins
    ("\\boxed{17}", ["18"], False),
    ("\\boxed{\\dfrac{14}{3}}", ["\\frac{14}{3}"], True),        # dfrac == frac
    ("\\boxed{4.67}", ["\\frac{14}{3}"], False),                 # a rounded value is wrong
    ("\\boxed{(3, \\pi/2)}", ["\\left( 3, \\frac{\\pi}{2} \\right)"], True),
    ("I don't know.", ["18"], False),
    ("", ["18"], False),
])
def test_math_verify(completion, answers, expected):
    assert is_correct(completion, answers) is expected


@pytest.mark.parametrize("completion,answers,expected", [
    # Restating the question is not an answer: math-verify alone parses the uncomputed sum and verifies it.
    ("I think 95 + 87 is hard.", ["182"], False),
    ("What is 95 + 87? \\boxed{95 + 87}", ["182"], False),
    ("I got 12 * 3", ["36"], False),
    ("33 - 75", ["-42"], False),
    ("\\boxed{\\frac{1}{2} + \\frac{1}{3}}", ["\\frac{5}{6}"], False),
    # ... while computed values, fractions, negatives and symbolic answers still count.
    ("95 + 87 = 182", ["182"], True),
    ("The answer is -42.", ["-42"], True),
    ("\\boxed{-\\frac{1}{2}}", ["-\\frac{1}{2}"], True),
    ("\\boxed{3/4}", ["\\frac{3}{4}"], True),
    ("\\boxed{1 + \\sqrt{2}}", ["1+\\sqrt{2}"], True),
    ("\\boxed{3 \\times 10^{5}}", ["300000"], True),
    ("\\boxed{2\\pi}", ["2\\pi"], True),
    ("\\boxed{x + 1}", ["x+1"], True),
])
def test_a_restated_computation_is_not_an_answer(completion, answers, expected):
    assert is_correct(completion, answers) is expected


def test_math_any_alias():
    assert is_correct("\\boxed{0.5}", ["2", "\\frac{1}{2}"])


@pytest.mark.parametrize("text,expected", [
    ("The Eiffel Tower!", "eiffel tower"),
    ("  An   apple a day ", "apple day"),
    ("U.S.A.", "usa"),
])
def test_normalize(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match_over_aliases_and_articles():
    assert exact_match("the Jane Austen", ["Austen", "Jane Austen"]) == 1.0
    assert exact_match("Jane", ["Jane Austen"]) == 0.0


def test_f1_partial_and_aliases():
    # pred tokens {jane}, gold {jane, austen}: p = 1, r = 1/2 -> f1 = 2/3
    assert f1_score("Jane", ["Jane Austen"]) == pytest.approx(2 / 3)
    assert f1_score("Jane", ["Charlotte Bronte", "Jane Austen"]) == pytest.approx(2 / 3)
    assert f1_score("", ["Paris"]) == 0.0
    assert f1_score("Paris", []) == 0.0


def test_f1_counts_repeated_tokens_once_each():
    # pred "paris paris" vs gold "paris": overlap 1, p = 1/2, r = 1 -> 2/3
    assert f1_score("paris paris", ["Paris"]) == pytest.approx(2 / 3)


@pytest.mark.parametrize("completion,expected", [
    ("<answer>Paris</answer>", "Paris"),
    ("think... <answer>Lyon</answer> then <answer>Paris</answer>", "Paris"),
    ("Answer: Paris\nBecause it is the capital.", "Paris"),
    ("\n\nThe answer is Paris", "Paris"),
    ("", ""),
])
def test_extract_answer(completion, expected):
    assert extract_answer(completion) == expected


def test_registry_lookups_and_errors():
    assert get_reward("qa_f1")("Answer: Jane", ["Jane Austen"]) == pytest.approx(2 / 3)
    assert get_verifier("qa_em")("<answer>paris</answer>", ["Paris"]) is True
    with pytest.raises(ValueError, match="unknown reward 'nope'"):
        get_reward("nope")
