"""The IGPO answer scorer: word-set F1 / exact match of the ``<answer>`` of a search agent.

It follows the reference implementation of IGPO (``verl/utils/reward_score/info_gain.py``) and
differs from the SQuAD-style scorer in :mod:`suite.rewards.qa` in these ways:

* normalisation: lowercase, every punctuation character becomes a space, whitespace collapses;
  articles are *kept* ("the Beatles" vs "Beatles" is F1 = 2/3, not 1);
* F1 is over token *sets* (a repeated word counts once), precision = |P ∩ G| / |P|,
  recall = |P ∩ G| / |G|, maximised over the gold aliases; an empty prediction or an empty
  alias scores 0;
* case: the transcript is lowercased before the tags are looked for, so ``<Answer>Paris</Answer>``
  is an answer (F1 1.0), as in the reference;
* the answer is the *first* complete ``<answer>...</answer>`` of the agent's own text;
* format: the agent's text must have balanced tags (as many opening as closing tags, each closed
  after it opens) and contain an answer; otherwise the score is ``MALFORMED = -2`` in training and 0
  in evaluation. The tags checked (:data:`TAGS`) are the reference's ``code``, ``tool_call``,
  ``think``, ``answer`` plus ``search``, the suite agent's tool call (the reference agent calls its
  tool with ``<tool_call>``); ``tags=REFERENCE_TAGS`` checks the reference's list alone.

The ``<information>`` blocks the environment inserted are removed before anything is checked:
retrieved passages are not the agent's text.
"""

from __future__ import annotations

import re
import string

MALFORMED = -2.0
REFERENCE_TAGS = ("code", "tool_call", "think", "answer")  # check_tags_balance of info_gain.py
TAGS = (*REFERENCE_TAGS, "search")  # + the suite agent's tool-call tag
_INFORMATION = re.compile(r"<information>.*?</information>", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_PUNCT_TO_SPACE = str.maketrans({c: " " for c in string.punctuation})


def normalize(text: str) -> str:
    """Lowercase, punctuation to spaces, collapsed whitespace."""
    return " ".join(text.lower().translate(_PUNCT_TO_SPACE).split())


def agent_text(transcript: str) -> str:
    """The agent's own text: the transcript without the environment's ``<information>`` blocks."""
    return _INFORMATION.sub(" ", transcript)


def tags_balanced(text: str, tags: tuple[str, ...] = TAGS) -> bool:
    """Every ``<tag>`` of ``tags`` is closed by a later ``</tag>``, with equal counts (case-sensitive:
    :func:`extract_answer` lowercases first)."""
    for tag in tags:
        opening, closing = f"<{tag}>", f"</{tag}>"
        if text.count(opening) != text.count(closing):
            return False
        pos = 0
        while (start := text.find(opening, pos)) != -1:
            end = text.find(closing, start)
            if end == -1:
                return False
            pos = end
    return True


def extract_answer(transcript: str, tags: tuple[str, ...] = TAGS) -> str | None:
    """The content of the first complete ``<answer>`` of the agent's text, or None when malformed.

    Tags are found in the lowercased text (so ``<Answer>`` is ``<answer>``); the content keeps its
    case where lowercasing kept every position (it always does for ASCII), else it is lowercased
    too. Either way its score is the same, since scoring lowercases."""
    text = agent_text(transcript)
    lowered = text.lower()
    if not tags_balanced(lowered, tags):
        return None
    match = _ANSWER.search(lowered)
    if match is None:
        return None
    content = text[match.start(1):match.end(1)] if len(lowered) == len(text) else match.group(1)
    return content.strip()


def set_f1(prediction: str, gold: str) -> float:
    pred, ref = set(normalize(prediction).split()), set(normalize(gold).split())
    common = len(pred & ref)
    if not pred or not ref or common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def answer_f1(prediction: str, answers: list[str]) -> float:
    return max((set_f1(prediction, a) for a in answers), default=0.0)


def answer_em(prediction: str, answers: list[str]) -> float:
    pred = normalize(prediction)
    return float(any(pred == normalize(a) for a in answers))


def igpo_f1(transcript: str, answers: list[str], train: bool = True, tags: tuple[str, ...] = TAGS) -> float:
    """F1 of the transcript's answer; ``MALFORMED`` (training) or 0 (evaluation) without a well-formed one."""
    answer = extract_answer(transcript, tags)
    if answer is None:
        return MALFORMED if train else 0.0
    return answer_f1(answer, answers)


def igpo_em(transcript: str, answers: list[str], train: bool = False, tags: tuple[str, ...] = TAGS) -> float:
    answer = extract_answer(transcript, tags)
    if answer is None:
        return MALFORMED if train else 0.0
    return answer_em(answer, answers)
