"""IGPO answer scoring against the reference's rules (issue 19, item 9).

Expected values are those of the reference scorer, GuoqingWang1/IGPO
``verl/utils/reward_score/info_gain.py`` (``compute_f1`` with ``check_tags_balance``), worked out by hand:
the response is lowercased before tags are looked for, and the balance check covers ``code``,
``tool_call``, ``think`` and ``answer``. Modes: ``f1`` and ``em`` score a malformed response -2
(``train=True`` here), ``noformatf1`` scores it 0 (``train=False``).
"""

import pytest

from suite.rewards.igpo import MALFORMED, REFERENCE_TAGS, TAGS, extract_answer, igpo_em, igpo_f1, tags_balanced


def scores(text, answers, **kw):
    """(f1, em, noformatf1) in the reference's three modes."""
    return (igpo_f1(text, answers, train=True, **kw), igpo_em(text, answers, train=True, **kw),
            igpo_f1(text, answers, train=False, **kw))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<Answer>Paris</Answer>", (1.0, 1.0, 1.0)),
        ("<ANSWER>Paris</ANSWER>", (1.0, 1.0, 1.0)),
        ("<answer>Paris</ANSWER>", (1.0, 1.0, 1.0)),
        ("<Think>the capital</think>\n<Answer>paris.</Answer>", (1.0, 1.0, 1.0)),
        # lowercasing can also make a response malformed: <THINK> opens a block nobody closes
        ("<THINK>x\n<answer>Paris</answer>", (MALFORMED, MALFORMED, 0.0)),
        ("<Answer>The Paris</Answer>", (pytest.approx(2 / 3), 0.0, pytest.approx(2 / 3))),
    ],
)
def test_tags_are_found_in_the_lowercased_response(text, expected):
    assert scores(text, ["Paris"]) == expected


def test_the_answer_keeps_its_case_and_non_ascii_lowercasing_scores_the_same():
    assert extract_answer("<Answer> Paris </Answer>") == "Paris"
    # 'İ'.lower() is two characters, so positions shift; the content is then the lowercased one
    assert extract_answer("<Answer>İstanbul</Answer>") == "İstanbul".lower()
    assert scores("<Answer>İstanbul</Answer>", ["İstanbul"]) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize(
    "text",
    [
        "<tool_call>{\"name\": \"search\"}\n<answer>Paris</answer>",  # unclosed tool call
        "<code>print(1)\n<answer>Paris</answer>",  # unclosed code block
        "</tool_call><tool_call><answer>Paris</answer>",  # equal counts, closed before opened
        "<Tool_Call>q\n<answer>Paris</answer>",  # found after lowercasing
        "<think>x<answer>Paris</answer>",
        "<answer>Paris",
    ],
)
def test_reference_tags_must_balance(text):
    for tags in (TAGS, REFERENCE_TAGS):
        assert scores(text, ["Paris"], tags=tags) == (MALFORMED, MALFORMED, 0.0), (text, tags)


def test_balanced_reference_tags_score_the_answer():
    text = "<think>a</think><tool_call>q</tool_call><code>1</code>\n<answer>Paris</answer>"
    assert scores(text, ["Paris"]) == (1.0, 1.0, 1.0)


def test_tag_lists_reference_and_suite_search_tag():
    assert REFERENCE_TAGS == ("code", "tool_call", "think", "answer")
    assert set(TAGS) == {*REFERENCE_TAGS, "search"}
    # the reference does not check <search>, the suite agent's tool call; the default does
    text = "<search>q\n<answer>Paris</answer>"
    assert scores(text, ["Paris"], tags=REFERENCE_TAGS) == (1.0, 1.0, 1.0)
    assert scores(text, ["Paris"]) == (MALFORMED, MALFORMED, 0.0)
    assert scores("<search>q</search><answer>Paris</answer>", ["Paris"]) == (1.0, 1.0, 1.0)


def test_tags_balanced_is_case_sensitive_on_its_own_input():
    assert tags_balanced("<think>a</think>")
    assert tags_balanced("<THINK>a")  # not a checked tag until lowercased (extract_answer does)
    assert not tags_balanced("<think>a")
    assert not tags_balanced("</code><code>")
    assert tags_balanced("<search>q", REFERENCE_TAGS) and not tags_balanced("<search>q")
