"""Build a text game by name; its reference policies; seeds of training and held-out episodes.

=======================  ==============================================
``frozen_lake``          FrozenLake, deterministic moves
``frozen_lake_slippery`` FrozenLake, slippery ice (gymnasium dynamics)
``snake``                Snake, apples give +1
``snake_poison_apple``   Snake, apples give -1 (PoisonApple variant)
=======================  ==============================================

Keyword arguments go to the game's constructor (e.g. ``max_steps``,
``desc``, ``num_enemies``).

Reference policies (``REFERENCES``): ``random`` (uniform legal action) and
``planner`` (FrozenLake: first move of a BFS shortest safe path, optimal on
the deterministic map; Snake: the BFS-to-apple heuristic that avoids deaths).

Seeds (:func:`game_seeds`): an episode starts from a seed that fixes the
initial state (the map, the board).  Held-out (``test``) seeds are
``0, 1, ...``; training seeds start at ``TRAIN_SEED_OFFSET``, so the two sets
never share a seed.

Demonstrations (:func:`game_demos`): every decision of reference-policy
episodes from training seeds, as supervised records (the prompt the agent
sees, the tagged action as the response), for a format warm start before RL
(``method: sft`` with ``algo.data: expert``; docs/claims.md, MS-GRPO).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from suite.envs.base import PROMPT_STYLES, LanguageAgentEnv, RandomPolicy, TextGame
from suite.envs.frozen_lake import FrozenLake, planner_policy
from suite.envs.snake import SnakeGame, heuristic_policy

GAMES: dict[str, Callable[..., TextGame]] = {
    "frozen_lake": lambda **kwargs: FrozenLake(is_slippery=False, **kwargs),
    "frozen_lake_slippery": lambda **kwargs: FrozenLake(is_slippery=True, **kwargs),
    "snake": lambda **kwargs: SnakeGame(poison_apple=False, **kwargs),
    "snake_poison_apple": lambda **kwargs: SnakeGame(poison_apple=True, **kwargs),
}

_PLANNERS = {"frozen_lake": planner_policy, "frozen_lake_slippery": planner_policy,
             "snake": heuristic_policy, "snake_poison_apple": heuristic_policy}
REFERENCES = ("random", "planner")
TRAIN_SEED_OFFSET = 1_000_000


def make_game(name: str, **kwargs) -> TextGame:
    """Instantiate the game registered as ``name``."""
    if name not in GAMES:
        raise ValueError(f"unknown game {name!r}; valid names: {', '.join(sorted(GAMES))}")
    return GAMES[name](**kwargs)


def reference_policy(kind: str, game: str, seed: int) -> Callable[[TextGame], str]:
    """The ``random`` (seeded by ``seed``) or ``planner`` policy for ``game``."""
    if game not in GAMES:
        raise ValueError(f"unknown game {game!r}; valid names: {', '.join(sorted(GAMES))}")
    if kind == "random":
        return RandomPolicy(random.Random(f"random-policy:{game}:{seed}").getrandbits(32))
    if kind == "planner":
        return _PLANNERS[game]
    raise ValueError(f"unknown reference policy {kind!r}; choose one of {REFERENCES}")


def game_seeds(game: str, split: str, n: int) -> list[dict]:
    """``n`` episode seeds of ``game`` as dataset records (the prompt is the game's own).

    ``{"id", "prompt": "", "answers": [], "metadata": {"game", "seed"}}``; ``test``
    seeds are ``0..n-1``, ``train`` seeds ``TRAIN_SEED_OFFSET + 0..n-1``.
    """
    if game not in GAMES:
        raise ValueError(f"unknown game {game!r}; valid names: {', '.join(sorted(GAMES))}")
    offsets = {"test": 0, "train": TRAIN_SEED_OFFSET}
    if split not in offsets:
        raise ValueError(f"split must be one of {sorted(offsets)}, got {split!r}")
    if not 1 <= n <= TRAIN_SEED_OFFSET:
        raise ValueError(f"n = {n} must be in [1, {TRAIN_SEED_OFFSET}] (train and test seeds must not overlap)")
    return [{"id": f"{game}-{split}-{seed}", "prompt": "", "answers": [], "metadata": {"game": game, "seed": seed}}
            for seed in range(offsets[split], offsets[split] + n)]


def game_demos(game: str, split: str, n: int, policy: str = "random", game_kwargs: dict | None = None,
               style: str = "direct") -> list[dict]:
    """Every decision of ``n`` episodes of the reference ``policy`` from the first ``n`` seeds of ``split``.

    One record per decision: ``{"id", "prompt", "answers", "metadata": {"game", "seed", "turn", "action",
    "response", "task": "game_demo"}}``, where ``prompt`` is the agent's prompt at that turn in ``style`` (what
    MS-GRPO's agent reads: :meth:`LanguageAgentEnv.prompt`), ``response`` is ``<action>ACTION</action>`` (the
    demonstration an SFT run trains on, :func:`suite.tasks.retaining.expert_response`) and ``answers`` are the
    legal actions. The ``random`` policy (uniform legal moves) teaches the answer format and no skill: its
    episodes win no more often than chance. Seeds as :func:`game_seeds` (``train`` seeds never meet ``test``).
    """
    if style not in PROMPT_STYLES:
        raise ValueError(f"style must be one of {PROMPT_STYLES}, got {style!r}")
    kwargs = dict(game_kwargs or {})
    records = []
    for seed_rec in game_seeds(game, split, n):
        seed = int(seed_rec["metadata"]["seed"])
        env = LanguageAgentEnv(make_game(game, **kwargs), seed=seed)
        env.reset(seed)
        act = reference_policy(policy, game, seed)
        for turn in range(10_000):
            prompt, action = env.prompt(style=style), act(env.game)
            response = f"<action>{action}</action>"
            records.append({"id": f"{seed_rec['id']}-t{turn}", "prompt": prompt, "answers": env.game.legal_actions(),
                            "metadata": {"game": game, "seed": seed, "turn": turn, "action": action,
                                         "response": response, "task": "game_demo"}})
            if env.step(response).done:
                break
        else:
            raise RuntimeError(f"{game} seed {seed}: the episode did not end; does the game cap its length?")
    return records
