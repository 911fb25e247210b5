"""Rewards and verifiers, looked up by name.

A *reward* ``(completion, answers) -> float`` is what the policy optimises; a
*verifier* ``(completion, answers) -> bool`` says whether the answer is right.
They are kept apart so a learned reward (Cooper) can be compared with the truth.
"""

from __future__ import annotations

from typing import Callable

from .math import is_correct, math_reward
from .qa import qa_em_reward, qa_f1_reward
from .retaining import (countdown_correct, countdown_reward, ifeval_like_correct, ifeval_like_reward,  # Retaining by Doing
                        mmlu_choice_correct, mmlu_choice_reward)

REWARDS: dict[str, Callable[..., float]] = {
    "math_verify": math_reward,
    "qa_em": qa_em_reward,
    "qa_f1": qa_f1_reward,
    # --- Retaining by Doing (issue 7) ---
    "countdown": countdown_reward,
    "ifeval_like": ifeval_like_reward,
    "mmlu_choice": mmlu_choice_reward,
}

VERIFIERS: dict[str, Callable[..., bool]] = {
    "math_verify": is_correct,
    "qa_em": lambda completion, answers: bool(qa_em_reward(completion, answers)),
    # --- Retaining by Doing (issue 7) ---
    "countdown": countdown_correct,
    "ifeval_like": ifeval_like_correct,
    "mmlu_choice": mmlu_choice_correct,
}


def get_reward(name: str) -> Callable[..., float]:
    try:
        return REWARDS[name]
    except KeyError:
        raise ValueError(f"unknown reward {name!r}; choose one of {sorted(REWARDS)}") from None


def get_verifier(name: str) -> Callable[..., bool]:
    try:
        return VERIFIERS[name]
    except KeyError:
        raise ValueError(f"unknown verifier {name!r}; choose one of {sorted(VERIFIERS)}") from None
