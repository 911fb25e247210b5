"""Scoring hooks of the "Retaining by Doing" task YAMLs (``!function rbd_utils.<name>``).

Each scores a completion with the training reward's own checker (suite/rewards/retaining.py),
so a target task is evaluated exactly as RL rewards it. ``results`` holds the filtered responses
of one document (one per repeat; the paper decodes greedily, so one).
"""

from __future__ import annotations

from suite.rewards.retaining import countdown_correct, ifeval_like_instructions, mmlu_choice_correct


def _responses(results: list) -> list[str]:
    return results[0] if results and isinstance(results[0], list) else results


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def process_countdown(doc: dict, results: list) -> dict:
    """acc: the boxed expression uses each number once and equals the target."""
    return {"acc": _mean(countdown_correct(r, doc["answers"]) for r in _responses(results))}


def process_choice(doc: dict, results: list) -> dict:
    """acc: the last "The answer is: X" names the gold option (MMLU, ARC-Challenge)."""
    return {"acc": _mean(mmlu_choice_correct(r, doc["answers"]) for r in _responses(results))}


def process_instructions(doc: dict, results: list) -> dict:
    """acc: prompt-level strict (every instruction followed); inst_acc: the fraction of this prompt's
    instructions followed (averaged over prompts, not pooled over instructions as IFEval's
    instruction-level accuracy is)."""
    followed = [ifeval_like_instructions(r, doc["answers"]) for r in _responses(results)]
    return {"acc": _mean(all(f) for f in followed), "inst_acc": _mean(_mean(f) for f in followed)}
