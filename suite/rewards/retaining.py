"""Rewards and verifiers of the three "Retaining by Doing" target tasks.

A reward sees ``(completion, answers)``; the records of :mod:`suite.tasks.retaining` put what
the check needs into ``answers``:

* ``countdown``: ``answers[0]`` is ``{"numbers": [...], "target": t}`` (JSON); 1 when the last
  ``\\boxed{}`` (or, without one, the whole completion) holds an expression that uses every number
  exactly once and equals the target, judged as the authors' checker judges it
  (:func:`suite.tasks.countdown.check`); an optional ``"rules"`` object in the spec passes that
  function's options (e.g. ``suite.tasks.countdown.SUITE_RULES``);
* ``ifeval_like``: ``answers[0]`` is ``{"instruction_id_list": [...], "kwargs": [...]}`` (JSON);
  1 when the completion follows every instruction (prompt-level strict,
  :func:`suite.tasks.ifeval_like.prompt_level_strict`);
* ``mmlu_choice``: ``answers`` holds the gold option letter; 1 when the last
  "The answer is: X" names it (:func:`suite.tasks.mmlu.is_correct`).

Rewards are binary, so each verifier is its reward read as a bool.
"""

from __future__ import annotations

import json
from functools import lru_cache

from ..tasks import countdown, ifeval_like, mmlu


@lru_cache(maxsize=65536)
def _spec(answer: str) -> dict:
    try:
        spec = json.loads(answer)
    except (TypeError, ValueError):
        spec = None
    if not isinstance(spec, dict):
        raise ValueError(f"expected a JSON object in answers[0] (see suite/tasks/retaining.py), got {answer!r}")
    return spec


def countdown_correct(completion: str, answers: list[str]) -> bool:
    spec = _spec(answers[0])
    return countdown.check(completion, spec["numbers"], spec["target"], **spec.get("rules", {}))


def ifeval_like_correct(completion: str, answers: list[str]) -> bool:
    spec = _spec(answers[0])
    return ifeval_like.prompt_level_strict(completion, spec["instruction_id_list"], spec["kwargs"])


def ifeval_like_instructions(completion: str, answers: list[str]) -> list[bool]:
    """Which of the prompt's instructions the completion follows (for instruction-level accuracy)."""
    spec = _spec(answers[0])
    return ifeval_like.check_instructions(completion, spec["instruction_id_list"], spec["kwargs"])


def mmlu_choice_correct(completion: str, answers: list[str]) -> bool:
    return mmlu.is_correct(completion, answers)


def countdown_reward(completion: str, answers: list[str], **_) -> float:
    return float(countdown_correct(completion, answers))


def ifeval_like_reward(completion: str, answers: list[str], **_) -> float:
    return float(ifeval_like_correct(completion, answers))


def mmlu_choice_reward(completion: str, answers: list[str], **_) -> float:
    return float(mmlu_choice_correct(completion, answers))
