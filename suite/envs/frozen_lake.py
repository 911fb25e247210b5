"""Frozen Lake as a text game, wrapping gymnasium's ``FrozenLake-v1``.

Rules
-----
* The map is a square grid of ``S`` (start), ``F`` (frozen, safe), ``H``
  (hole) and ``G`` (goal).  The agent starts on ``S``.
* Actions are ``LEFT``, ``DOWN``, ``RIGHT``, ``UP`` (gymnasium's ids 0-3, also
  accepted as aliases).  Moving into the edge of the grid leaves the agent in
  place.
* Deterministic variant: the agent moves as asked.  Slippery variant
  (gymnasium's ``is_slippery=True``): it moves in the intended direction with
  probability 1/3 and in each perpendicular direction with probability 1/3.
* Reward 1 on reaching ``G``, 0 otherwise.  The episode ends on ``G``, in a
  hole, or after ``max_steps`` turns (default 20: five times the 6-move
  shortest path of a 4x4 map, leaving room for slips).

Maps
----
With a fixed ``desc`` every episode uses it.  Otherwise each ``reset(seed)``
draws ``generate_random_map(size, frozen_prob, seed=seed)`` (4x4, 80% frozen
by default), which always contains a safe path; the same seed gives the same
map.  Slips are drawn from an independent stream derived from the same seed,
so a seed fixes the whole episode given the actions; ``reset(seed,
dynamics_seed=k)`` keeps the map of ``seed`` and draws the slips from a
stream of ``(seed, k)`` (independent episodes from one initial state).

The no-op turn (fallback for invalid model output) leaves the agent where it
is and consumes one turn of ``max_steps``.

References
----------
:func:`bfs_optimal_actions` gives a shortest safe path; :func:`planner_policy`
follows it from the current cell (optimal on the deterministic variant,
a replanning heuristic on the slippery one).  ``RandomPolicy`` from
:mod:`suite.envs.base` is the random reference.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import gymnasium
import numpy as np
from gymnasium.envs.toy_text.frozen_lake import generate_random_map

from suite.envs.base import StepResult, TextGame

ACTIONS = ("LEFT", "DOWN", "RIGHT", "UP")  # index == gymnasium action id
ACTION_ALIASES = {str(index): action for index, action in enumerate(ACTIONS)}
DELTAS = {"LEFT": (0, -1), "DOWN": (1, 0), "RIGHT": (0, 1), "UP": (-1, 0)}
AGENT = "P"
LEGEND = "Legend: P = you, S = start, F = frozen ice (safe), H = hole, G = goal."

Cell = tuple[int, int]


class FrozenLake(TextGame):
    """Frozen Lake (deterministic or slippery) with a text observation."""

    action_aliases = ACTION_ALIASES
    supports_noop = True

    def __init__(
        self,
        desc: Sequence[str] | None = None,
        is_slippery: bool = False,
        size: int = 4,
        frozen_prob: float = 0.8,
        max_steps: int = 20,
    ):
        self.name = "frozen_lake_slippery" if is_slippery else "frozen_lake"
        self.fixed_desc = list(desc) if desc is not None else None
        self.is_slippery = is_slippery
        self.size = size
        self.frozen_prob = frozen_prob
        self.max_steps = max_steps
        self.desc: list[str] = []
        self.position: Cell = (0, 0)
        self.turn = 0
        self.done = True
        self._env = None

    @property
    def rules(self) -> str:
        slip = (
            " The ice is slippery: you move in the intended direction with probability 1/3"
            " and in each of the two perpendicular directions with probability 1/3."
            if self.is_slippery
            else " The ice is not slippery: you always move in the chosen direction."
        )
        return (
            "You are crossing a frozen lake drawn as a grid. Reach the goal G without"
            " falling into a hole H. Each action moves you one cell LEFT, DOWN, RIGHT or UP;"
            " moving into the edge of the grid leaves you in place." + slip +
            f" Reaching G gives reward 1, anything else 0. The game ends at G, in a hole,"
            f" or after {self.max_steps} moves."
        )

    def reset(self, seed: int | None = None, dynamics_seed: int | None = None) -> str:
        desc = self.fixed_desc or generate_random_map(self.size, self.frozen_prob, seed=seed)
        if desc != self.desc:
            self._env = gymnasium.make(
                "FrozenLake-v1",
                desc=desc,
                is_slippery=self.is_slippery,
                max_episode_steps=self.max_steps,
                disable_env_checker=True,
            )
            self.desc = desc
        state, _ = self._env.reset(seed=_slip_seed(seed, dynamics_seed))
        self.position = divmod(int(state), len(desc[0]))
        self.turn = 0
        self.done = False
        return self.render()

    def legal_actions(self) -> list[str]:
        return list(ACTIONS)

    def step(self, action: str) -> StepResult:
        self._require_running()
        if action not in ACTIONS:
            raise ValueError(f"illegal action {action!r}; expected one of {ACTIONS}")
        state, reward, terminated, _, _ = self._env.step(ACTIONS.index(action))
        self.position = divmod(int(state), len(self.desc[0]))
        return self._finish_turn(float(reward), terminated)

    def noop(self) -> StepResult:
        self._require_running()
        return self._finish_turn(0.0, terminated=False)

    @property
    def tile(self) -> str:
        row, col = self.position
        return self.desc[row][col]

    def render(self) -> str:
        kind = "slippery" if self.is_slippery else "non-slippery"
        rows = [
            " ".join(AGENT if (r, c) == self.position else tile for c, tile in enumerate(line))
            for r, line in enumerate(self.desc)
        ]
        row, col = self.position
        lines = [
            f"Frozen Lake {len(self.desc)}x{len(self.desc[0])}, {kind} ice."
            f" Move {self.turn} of {self.max_steps}.",
            *rows,
            LEGEND,
            f"You are at row {row}, column {col} (0-indexed, row 0 is the top), on tile {self.tile}.",
        ]
        status = self._status()
        return "\n".join(lines + ([status] if status else []))

    def _status(self) -> str:
        if self.tile == "G":
            return "You reached the goal!"
        if self.tile == "H":
            return "You fell into a hole. Game over."
        return "You ran out of moves. Game over." if self.done else ""

    def _finish_turn(self, reward: float, terminated: bool) -> StepResult:
        self.turn += 1
        truncated = not terminated and self.turn >= self.max_steps
        self.done = terminated or truncated
        info = {
            "position": self.position,
            "success": self.tile == "G",
            "fell_in_hole": self.tile == "H",
            "truncated": truncated,
            "turn": self.turn,
        }
        return StepResult(self.render(), reward, self.done, info)

    def _require_running(self) -> None:
        if self.done:
            raise RuntimeError("episode is over; call reset() first")


def _slip_seed(seed: int | None, dynamics_seed: int | None = None) -> int | None:
    """Seed for slips, independent of the map stream that uses ``seed`` itself."""
    if seed is None:
        return None
    entropy = [seed, 1] if dynamics_seed is None else [seed, 2, dynamics_seed]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def bfs_optimal_actions(desc: Sequence[str], start: Cell | None = None) -> list[str] | None:
    """Shortest hole-free action sequence from ``start`` (default ``S``) to ``G``.

    Assumes deterministic moves.  Returns ``[]`` when already on ``G`` and
    ``None`` when no safe path exists.
    """
    start = start or _find(desc, "S")
    parents: dict[Cell, tuple[Cell, str] | None] = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if desc[cell[0]][cell[1]] == "G":
            return _path_to(cell, parents)
        if desc[cell[0]][cell[1]] == "H":
            continue
        for action in ACTIONS:
            nxt = (cell[0] + DELTAS[action][0], cell[1] + DELTAS[action][1])
            if _inside(desc, nxt) and nxt not in parents:
                parents[nxt] = (cell, action)
                queue.append(nxt)
    return None


def planner_policy(game: FrozenLake) -> str:
    """First move of a shortest safe path from the agent's cell (``LEFT`` if none)."""
    path = bfs_optimal_actions(game.desc, game.position)
    return path[0] if path else ACTIONS[0]


def _path_to(cell: Cell, parents: dict[Cell, tuple[Cell, str] | None]) -> list[str]:
    actions = []
    while parents[cell] is not None:
        cell, action = parents[cell]
        actions.append(action)
    return actions[::-1]


def _find(desc: Sequence[str], tile: str) -> Cell:
    return next((r, line.index(tile)) for r, line in enumerate(desc) if tile in line)


def _inside(desc: Sequence[str], cell: Cell) -> bool:
    return 0 <= cell[0] < len(desc) and 0 <= cell[1] < len(desc[0])
