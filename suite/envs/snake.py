"""Snake with random enemy snakes, as a text game (no gym dependency).

Board and pieces
----------------
* A ``size`` x ``size`` board (default 7x7) surrounded by walls; cells are
  ``(row, col)`` with row 0 at the top.  Snakes are lists of cells, head
  first; every snake starts with length 2 (head and neck) at a seeded random
  place, enemies at Manhattan distance >= 3 from the agent's head when the
  board allows it.
* ``num_apples`` apples (default 2, for a denser reward on a small board) lie
  on free cells; an eaten apple is replaced at once on a random free cell.

A turn
------
1. The agent's head moves one cell ``UP``/``DOWN``/``LEFT``/``RIGHT`` and the
   body follows; its tail cell is vacated in the same move, so following your
   own tail is safe.  The agent dies (``death_reward``, default -1, episode
   over, the board is left as it was before the fatal move) if the new head
   cell is a wall, its own body, or an enemy snake.  Turning straight back onto
   the neck counts as a self collision, whatever the length.
2. Eating an apple gives ``+1`` and grows the snake by one cell.  In the
   PoisonApple variant (``poison_apple=True``) apples are harmful: eating one
   gives ``-1`` instead; everything else, growth included, is unchanged, so
   only the sign of the apple reward differs between the two variants.
3. Each enemy, in order, moves uniformly at random among its non-lethal moves
   (the board as it stands after the agent's move), eating and growing like
   the agent.  An enemy with no safe move dies and a new length-2 enemy spawns
   at once (placed as at reset, moving from the next turn), so the number of
   enemies stays constant.  Enemies never
   kill the agent by moving: a snake only dies by moving its own head.
4. After ``max_steps`` turns (default 50) the episode ends (truncated).

The displayed score (``info["score"]``) sums apple rewards only; the episode
return is the score plus the death reward if the agent died.

The no-op turn (fallback for invalid model output) keeps the agent's current
heading, as in classic Snake when no key is pressed: the board cannot pause
because enemies keep moving.

The game is deterministic given the seed and the agent's actions: one
``random.Random(seed)`` drives placement, apple respawns and enemy moves.
``reset(seed, dynamics_seed=k)`` places the pieces as ``seed`` does, then
draws respawns and enemy moves from a stream of ``(seed, k)``.

Success (``info["success"]``, for success rates): the agent survived to the
turn cap.  Apples show in the return, not in success, so the definition is
the same for both variants.

References
----------
:func:`heuristic_policy` (BFS to the nearest apple, or avoiding apples in the
poison variant, among safe moves) is the upper reference; ``RandomPolicy``
from :mod:`suite.envs.base` is the random one.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from suite.envs.base import StepResult, TextGame

ACTIONS = ("UP", "DOWN", "LEFT", "RIGHT")
DELTAS = {"UP": (-1, 0), "DOWN": (1, 0), "LEFT": (0, -1), "RIGHT": (0, 1)}
START_LENGTH = 2
ENEMY_MIN_DISTANCE = 3

Cell = tuple[int, int]


def _shift(cell: Cell, action: str) -> Cell:
    return cell[0] + DELTAS[action][0], cell[1] + DELTAS[action][1]


def _neighbours(cell: Cell) -> list[Cell]:
    return [_shift(cell, action) for action in ACTIONS]


@dataclass
class Snake:
    body: list[Cell]  # head first

    @property
    def head(self) -> Cell:
        return self.body[0]

    @property
    def heading(self) -> str:
        """Direction of the last move (from neck to head)."""
        return next(a for a in ACTIONS if _shift(self.body[1], a) == self.head)


class SnakeGame(TextGame):
    """Snake on a small board with random enemy snakes."""

    supports_noop = True

    def __init__(
        self,
        size: int = 7,
        num_enemies: int = 1,
        num_apples: int = 2,
        max_steps: int = 50,
        death_reward: float = -1.0,
        poison_apple: bool = False,
    ):
        self.name = "snake_poison_apple" if poison_apple else "snake"
        self.size = size
        self.num_enemies = num_enemies
        self.num_apples = num_apples
        self.max_steps = max_steps
        self.death_reward = death_reward
        self.poison_apple = poison_apple
        self.apple_reward = -1.0 if poison_apple else 1.0
        self.rng = random.Random()
        self.agent = Snake([])
        self.enemies: list[Snake] = []
        self.apples: list[Cell] = []
        self.turn = 0
        self.score = 0.0
        self.done = True

    @property
    def rules(self) -> str:
        apple = (
            "Apples are poisoned: eating one costs 1 point (and still makes you longer)."
            if self.poison_apple
            else "Eating an apple gives 1 point and makes you one cell longer."
        )
        return (
            f"You control a snake on a {self.size}x{self.size} board surrounded by walls."
            " Each turn your head moves one cell UP (row - 1), DOWN (row + 1), LEFT (column - 1)"
            f" or RIGHT (column + 1) and your body follows. {apple} You die"
            f" (reward {self.death_reward:g}, game over) if you move into a wall, into your own body"
            " (turning straight back counts), or into an enemy snake. Enemy snakes move at random"
            f" after you. The game lasts at most {self.max_steps} turns."
        )

    # ----------------------------------------------------------------- episode
    def reset(self, seed: int | None = None, dynamics_seed: int | None = None) -> str:
        self.rng = random.Random(seed)
        self.agent, self.enemies, self.apples = Snake([]), [], []  # empty board to spawn on
        self.agent = Snake(self._spawn_body(far_from=None))
        for _ in range(self.num_enemies):
            self._add_enemy()
        for _ in range(self.num_apples):
            self._spawn_apple()
        if dynamics_seed is not None:
            self.rng = random.Random(f"{seed}:dynamics:{dynamics_seed}")
        self._start()
        return self.render()

    def load_state(
        self,
        agent: Sequence[Cell],
        enemies: Iterable[Sequence[Cell]] = (),
        apples: Iterable[Cell] = (),
    ) -> str:
        """Replace the board with a hand-built one (keeps the current rng)."""
        self.agent = Snake([tuple(cell) for cell in agent])
        self.enemies = [Snake([tuple(cell) for cell in enemy]) for enemy in enemies]
        self.apples = [tuple(cell) for cell in apples]
        self._validate()
        self._start()
        return self.render()

    def legal_actions(self) -> list[str]:
        return list(ACTIONS)

    def step(self, action: str) -> StepResult:
        if action not in ACTIONS:
            raise ValueError(f"illegal action {action!r}; expected one of {ACTIONS}")
        return self._play(action)

    def noop(self) -> StepResult:
        return self._play(self.agent.heading)

    # ------------------------------------------------------------------ queries
    def collision(self, action: str, snake: Snake | None = None) -> str | None:
        """What ``snake`` (default: the agent) would hit: "wall", "self", "enemy" or None."""
        if snake is None:
            snake = self.agent
        target = _shift(snake.head, action)
        if not self.in_bounds(target):
            return "wall"
        if target == snake.body[1] or target in snake.body[:-1]:
            return "self"
        if any(target in other.body for other in self._snakes() if other is not snake):
            return "enemy"
        return None

    def in_bounds(self, cell: Cell) -> bool:
        return 0 <= cell[0] < self.size and 0 <= cell[1] < self.size

    def occupied(self) -> set[Cell]:
        return {cell for snake in self._snakes() for cell in snake.body}

    def render(self) -> str:
        grid = [["."] * self.size for _ in range(self.size)]
        for cell in self.apples:
            grid[cell[0]][cell[1]] = "A"
        for enemy in self.enemies:
            self._draw(grid, enemy, head="E", body="e")
        self._draw(grid, self.agent, head="H", body="S")
        wall = " ".join("#" * (self.size + 2))
        apple = "poison apple (-1 point)" if self.poison_apple else "apple (+1 point)"
        lines = [
            f"Snake {self.size}x{self.size}. Turn {self.turn} of {self.max_steps}."
            f" Score: {self.score:g}. Your length: {len(self.agent.body)}.",
            wall,
            *("# " + " ".join(row) + " #" for row in grid),
            wall,
            "Legend: # = wall, H = your head, S = your body, E = enemy head, e = enemy body,"
            f" A = {apple}, . = empty.",
            f"Your head is at {_fmt(self.agent.head)}, moving {self.agent.heading}"
            " (cells are (row, column), 0-indexed, row 0 is the top).",
            f"Apples: {', '.join(map(_fmt, self.apples)) or 'none'}.",
            f"Enemy heads: {', '.join(_fmt(enemy.head) for enemy in self.enemies) or 'none'}.",
        ]
        return "\n".join(lines)

    # ----------------------------------------------------------------- dynamics
    def _play(self, action: str) -> StepResult:
        if self.done:
            raise RuntimeError("episode is over; call reset() first")
        self.turn += 1
        death = self.collision(action)
        if death:
            self.done = True
            observation = f"{self.render()}\nYou died: you hit {_DEATH_TEXT[death]}. Game over."
            return StepResult(observation, self.death_reward, True, self._info(action, death, False, 0))
        ate = self._advance(self.agent, action)
        reward = self.apple_reward if ate else 0.0
        self.score += reward
        enemy_deaths = self._move_enemies()
        self.done = self.turn >= self.max_steps
        observation = self.render() + ("\nOut of turns. Game over." if self.done else "")
        return StepResult(observation, reward, self.done, self._info(action, None, ate, enemy_deaths))

    def _advance(self, snake: Snake, action: str) -> bool:
        """Move ``snake`` (known to survive); return whether it ate an apple."""
        target = _shift(snake.head, action)
        snake.body.insert(0, target)
        if target not in self.apples:
            snake.body.pop()
            return False
        self.apples.remove(target)
        self._spawn_apple()
        return True

    def _move_enemies(self) -> int:
        """Move every enemy at random among safe moves; return how many died."""
        deaths = 0
        for enemy in list(self.enemies):
            safe = [action for action in ACTIONS if self.collision(action, enemy) is None]
            if safe:
                self._advance(enemy, self.rng.choice(safe))
                continue
            deaths += 1
            self.enemies.remove(enemy)
            self._add_enemy()
        return deaths

    # ---------------------------------------------------------------- placement
    def _free_cells(self) -> list[Cell]:
        taken = self.occupied() | set(self.apples)
        return [(r, c) for r in range(self.size) for c in range(self.size) if (r, c) not in taken]

    def _spawn_body(self, far_from: Cell | None) -> list[Cell]:
        """A random length-2 body on free cells, away from ``far_from`` if possible."""
        free = set(self._free_cells())
        heads = [cell for cell in sorted(free) if any(n in free for n in _neighbours(cell))]
        if far_from is not None:
            far = [cell for cell in heads if _distance(cell, far_from) >= ENEMY_MIN_DISTANCE]
            heads = far or heads
        if not heads:
            return []
        head = self.rng.choice(heads)
        neck = self.rng.choice([n for n in _neighbours(head) if n in free])
        return [head, neck]

    def _add_enemy(self) -> None:
        body = self._spawn_body(far_from=self.agent.head)
        if body:  # otherwise the board has no room left
            self.enemies.append(Snake(body))

    def _spawn_apple(self) -> None:
        free = self._free_cells()
        if free:
            self.apples.append(self.rng.choice(free))

    # ------------------------------------------------------------------ helpers
    def _snakes(self) -> list[Snake]:
        return [self.agent, *self.enemies]

    def _start(self) -> None:
        self.turn = 0
        self.score = 0.0
        self.done = False

    def _validate(self) -> None:
        cells = [cell for snake in self._snakes() for cell in snake.body] + self.apples
        if len(set(cells)) != len(cells) or not all(map(self.in_bounds, cells)):
            raise ValueError("pieces overlap or lie outside the board")
        if any(len(snake.body) < START_LENGTH for snake in self._snakes()):
            raise ValueError(f"snakes need at least {START_LENGTH} cells")
        for snake in self._snakes():
            if any(_distance(a, b) != 1 for a, b in zip(snake.body, snake.body[1:])):
                raise ValueError(f"snake {snake.body} is not a connected chain")

    def _draw(self, grid: list[list[str]], snake: Snake, head: str, body: str) -> None:
        for index, (row, col) in enumerate(snake.body):
            grid[row][col] = head if index == 0 else body

    def _info(self, action: str, death: str | None, ate: bool, enemy_deaths: int) -> dict:
        return {
            "move": action,
            "death": death,
            "ate_apple": ate,
            "score": self.score,
            "length": len(self.agent.body),
            "enemy_deaths": enemy_deaths,
            "truncated": self.done and death is None,
            "success": self.done and death is None,  # survived to the turn cap
            "turn": self.turn,
        }


_DEATH_TEXT = {"wall": "a wall", "self": "your own body", "enemy": "an enemy snake"}


def _distance(a: Cell, b: Cell) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


def _fmt(cell: Cell) -> str:
    return f"({cell[0]}, {cell[1]})"


# --------------------------------------------------------------------- policies
def heuristic_policy(game: SnakeGame) -> str:
    """Greedy reference among non-lethal moves: first step of a BFS path to the
    nearest apple (poison variant: any move that avoids apples), otherwise the
    move into the largest open area."""
    safe = [action for action in ACTIONS if game.collision(action) is None]
    if not safe:
        return game.agent.heading
    if not game.poison_apple:
        first = _first_step_to_apple(game)
        if first in safe:
            return first
    else:
        safe = [a for a in safe if _shift(game.agent.head, a) not in game.apples] or safe
    return max(safe, key=lambda action: _open_space(game, _shift(game.agent.head, action)))


def _first_step_to_apple(game: SnakeGame) -> str | None:
    blocked = game.occupied()
    start = game.agent.head
    first_move: dict[Cell, str | None] = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell in game.apples:
            return first_move[cell]
        for action in ACTIONS:
            nxt = _shift(cell, action)
            if game.in_bounds(nxt) and nxt not in blocked and nxt not in first_move:
                first_move[nxt] = first_move[cell] or action
                queue.append(nxt)
    return None


def _open_space(game: SnakeGame, start: Cell) -> int:
    """Number of free cells reachable from ``start`` (flood fill)."""
    blocked = game.occupied()
    seen = {start}
    queue = deque([start])
    while queue:
        for nxt in _neighbours(queue.popleft()):
            if game.in_bounds(nxt) and nxt not in blocked and nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return len(seen)
