"""Hooks of the search-agent task YAMLs (IGPO, issue 3): the IGPO scorer in its evaluation mode
(a malformed transcript scores 0). The prompt is the agent model's (``lm_args.prompt``), as in training."""

from __future__ import annotations

from suite.rewards.igpo import igpo_em, igpo_f1


def _responses(results: list) -> list[str]:
    return results[0] if results and isinstance(results[0], list) else results


def process_search(doc: dict, results: list) -> dict:
    responses = _responses(results)
    n = len(responses)
    return {
        "em": sum(igpo_em(r, doc["answers"], train=False) for r in responses) / n,
        "f1": sum(igpo_f1(r, doc["answers"], train=False) for r in responses) / n,
    }
