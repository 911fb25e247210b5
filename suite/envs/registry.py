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
"""

from __future__ import annotations

import random
from collections.abc import Callable

from suite.envs.base import RandomPolicy, TextGame
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
