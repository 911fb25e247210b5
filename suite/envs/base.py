"""Text-mediated games and the model-free parts of a language agent policy.

The MS-GRPO paper ("Reinforced Language Models for Sequential Decision
Making") formalises its environments as *Text-Mediated Stochastic Games*: a
game whose states reach the agent only as text and whose actions are chosen
from a finite set of words.  :class:`TextGame` is that protocol.

A *Language Agent Policy* turns a model's generated text into a game action.
The parts of it that need no model live here:

* :func:`prompt_template` renders rules + observation + legal actions and asks
  for the answer inside ``<action>...</action>`` tags.
* :class:`ActionExtractor` maps messy generated text to a legal action, or
  ``None`` when it names none.
* :class:`LanguageAgentEnv` plays a game from generated text and applies the
  fallback policy for invalid or missing actions:

  - ``format_penalty`` (default ``-0.1``) is added to the step reward.  It is
    one tenth of a goal / apple reward: clearly felt over an episode (a
    FrozenLake policy that never answers ends at -2, below the best return
    of 1) without dominating the task reward of a single good step.
  - ``fallback="noop"`` plays the game's no-op turn (:meth:`TextGame.noop`);
    ``fallback="random"`` plays a uniformly random legal action drawn from a
    seeded generator.
  - ``info["valid_action"]`` flags the step, ``info["invalid_actions"]``
    counts invalid steps since the last reset, ``info["action"]`` is what was
    played (``"noop"`` for a no-op) and ``info["game_reward"]`` is the reward
    before the penalty, for metrics.

* :func:`play_episodes` runs many episodes in lockstep: at each turn the
  prompts of every unfinished episode go to one ``act`` call (one batched
  generation for a model), so generation is batched across episodes.
  Training (:mod:`suite.algos.msgrpo`) and evaluation
  (:mod:`suite.envs.evaluate_games`) both play through it.
"""

from __future__ import annotations

import random
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

FALLBACKS = ("noop", "random")
PROMPT_STYLES = ("think", "direct", "direct_no_example")
DEFAULT_FORMAT_PENALTY = -0.1

# Markdown / quoting characters and trailing punctuation ignored around an answer.
_DECORATION = "*_`'\"“”‘’.,;:!?()[]{} \t\n"
_TAG_SLOT = re.compile(r"<action>(.*?)</action>", re.IGNORECASE | re.DOTALL)
_LABEL_SLOT = re.compile(r"\baction\s*[:=]\s*([^\n<]*)", re.IGNORECASE)
_THINKING = re.compile(r"<think>.*?(?:</think>|$)", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class StepResult:
    """Outcome of one game turn."""

    observation: str
    reward: float
    done: bool
    info: dict = field(default_factory=dict)


class TextGame(ABC):
    """A game whose states are text and whose actions are words.

    Subclasses set ``name`` (registry name of the variant), ``rules`` (a
    plain-language description for the prompt) and, optionally,
    ``action_aliases`` (e.g. ``{"0": "LEFT"}``) accepted by the extractor.
    """

    name: str
    rules: str = ""
    action_aliases: Mapping[str, str] = {}
    supports_noop: bool = False

    @abstractmethod
    def reset(self, seed: int | None = None, dynamics_seed: int | None = None) -> str:
        """Start a new episode and return its first observation.

        ``seed`` fixes the initial state and, by default, the game's own
        randomness; a ``dynamics_seed`` redraws that randomness (slips, enemy
        moves, apple respawns) while keeping the initial state of ``seed``.
        """

    @abstractmethod
    def legal_actions(self) -> list[str]:
        """Actions accepted by :meth:`step` in the current state."""

    @abstractmethod
    def step(self, action: str) -> StepResult:
        """Play ``action`` (one of :meth:`legal_actions`)."""

    def noop(self) -> StepResult:
        """Play a turn without an agent decision (only if ``supports_noop``)."""
        raise NotImplementedError(f"{type(self).__name__} has no no-op turn")


Policy = Callable[[TextGame], str]


class RandomPolicy:
    """Uniformly random legal action from a seeded generator (lower reference)."""

    def __init__(self, seed: int | None = None):
        self._rng = random.Random(seed)

    def __call__(self, game: TextGame) -> str:
        return self._rng.choice(game.legal_actions())


def prompt_template(observation: str, legal_actions: Sequence[str], rules: str = "",
                    history: Sequence[str] = (), style: str = "think") -> str:
    """Render the user prompt for one decision.

    ``history``: the actions played so far in this episode (the caller passes
    the last few; empty = no history line).  ``style``: ``"think"`` allows
    reasoning before the tagged answer, ``"direct"`` asks for the tagged
    answer alone (for small models and short generation budgets), and
    ``"direct_no_example"`` does too without the example answer, which names
    the first legal action (a small model copies it: docs/claims.md).
    """
    if style not in PROMPT_STYLES:
        raise ValueError(f"prompt style must be one of {PROMPT_STYLES}, got {style!r}")
    example = f"<action>{legal_actions[0]}</action>"
    if style == "think":
        ask = ("Think about your move if you wish, then give exactly one legal action "
               f"inside tags as your final answer, for example {example}.")
    elif style == "direct":
        ask = f"Reply with exactly one legal action inside tags and nothing else, for example {example}."
    else:
        ask = "Reply with exactly one legal action inside <action></action> tags and nothing else."
    instruction = f"Legal actions: {', '.join(legal_actions)}.\n{ask}"
    past = f"Your previous actions, oldest first: {', '.join(history)}." if history else ""
    return "\n\n".join(part.strip() for part in (rules, observation, past, instruction) if part.strip())


def prefill_ids(tokenizer, prefill: str) -> list[int]:
    """Token ids of a response prefill (e.g. ``"<action>"``), appended after the chat-templated prompt: tokenised on
    its own, so the trainer (``suite/algos/msgrpo.py``) and the game evaluator give the model the same tokens."""
    return tokenizer(prefill, add_special_tokens=False)["input_ids"] if prefill else []


class ActionExtractor:
    """Map generated text to one of ``actions`` (or ``None``).

    Rules, applied to the text with ``<think>...</think>`` blocks removed:

    1. *Answer slots* are ``<action>X</action>`` tags and ``Action: X`` labels
       (to the end of the line).  If any exist, only the last slot counts: its
       content, stripped of markdown and punctuation, is an alias or contains
       an action word (the last one wins); otherwise the answer is ``None``.
    2. Without a slot, a text that is just an alias (e.g. ``"2"``) maps to it;
       otherwise the last action word anywhere in the text wins.

    Matching is case-insensitive and on whole words ("UPPER" is not "UP").
    Aliases only count as a whole answer, never inside prose, so that numbers
    such as "row 3" are not read as actions.
    """

    def __init__(self, actions: Sequence[str], aliases: Mapping[str, str] | None = None):
        self._actions = {action.lower(): action for action in actions}
        self._aliases = {
            alias.lower(): action
            for alias, action in (aliases or {}).items()
            if action.lower() in self._actions
        }
        words = "|".join(re.escape(action) for action in sorted(self._actions, key=len, reverse=True))
        self._word = re.compile(rf"(?<![\w-])({words})(?![\w-])", re.IGNORECASE)

    def extract(self, text: str) -> str | None:
        text = _THINKING.sub(" ", text)
        slots = [match for pattern in (_TAG_SLOT, _LABEL_SLOT) for match in pattern.finditer(text)]
        if slots:
            return self._resolve(max(slots, key=lambda match: match.start()).group(1))
        return self._resolve(text)

    def _resolve(self, answer: str) -> str | None:
        alias = self._aliases.get(answer.strip(_DECORATION).lower())
        if alias is not None:
            return alias
        mentions = self._word.findall(answer)
        return self._actions[mentions[-1].lower()] if mentions else None


class LanguageAgentEnv:
    """Play a :class:`TextGame` from generated text, with the fallback policy."""

    def __init__(
        self,
        game: TextGame,
        format_penalty: float = DEFAULT_FORMAT_PENALTY,
        fallback: str = "noop",
        seed: int | None = None,
    ):
        if fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {FALLBACKS}, got {fallback!r}")
        if fallback == "noop" and not game.supports_noop:
            raise ValueError(f"{game.name} has no no-op turn; use fallback='random'")
        self.game = game
        self.format_penalty = format_penalty
        self.fallback = fallback
        self._rng = _fallback_rng(seed)
        self.observation = ""
        self.invalid_actions = 0
        self.actions: list[str] = []  # played this episode ("noop" for a no-op)

    def reset(self, seed: int | None = None, dynamics_seed: int | None = None) -> str:
        if seed is not None:
            self._rng = _fallback_rng(seed if dynamics_seed is None else f"{seed}:{dynamics_seed}")
        self.invalid_actions = 0
        self.actions = []
        if dynamics_seed is None:
            self.observation = self.game.reset(seed)
        else:
            self.observation = self.game.reset(seed, dynamics_seed=dynamics_seed)
        return self.observation

    def prompt(self, history: int = 0, style: str = "think") -> str:
        """The prompt for the next decision, with the last ``history`` actions."""
        past = self.actions[-history:] if history > 0 else []
        return prompt_template(self.observation, self.game.legal_actions(), self.game.rules,
                               history=past, style=style)

    def step(self, generated_text: str) -> StepResult:
        legal = self.game.legal_actions()
        action = ActionExtractor(legal, self.game.action_aliases).extract(generated_text)
        valid = action is not None
        if valid:
            result = self.game.step(action)
        else:
            self.invalid_actions += 1
            result, action = self._play_fallback(legal)
        reward = result.reward + (0.0 if valid else self.format_penalty)
        info = {
            **result.info,
            "action": action,
            "valid_action": valid,
            "invalid_actions": self.invalid_actions,
            "game_reward": result.reward,
        }
        self.observation = result.observation
        self.actions.append(action)
        return StepResult(result.observation, reward, result.done, info)

    def _play_fallback(self, legal: list[str]) -> tuple[StepResult, str]:
        if self.fallback == "noop":
            return self.game.noop(), "noop"
        action = self._rng.choice(legal)
        return self.game.step(action), action


def _fallback_rng(seed: int | str | None) -> random.Random:
    # A string seed keeps this stream independent of games seeded with the same int.
    return random.Random(None if seed is None else f"fallback:{seed}")


# ------------------------------------------------------------------ episodes
@dataclass
class Turn:
    """One decision: what the agent saw and said, and what happened."""

    prompt: str
    response: str
    action: str  # what was played ("noop" for the no-op fallback)
    valid: bool  # the response named a legal action
    reward: float  # game reward plus the format penalty when invalid
    payload: Any = None  # whatever ``act`` attached (e.g. token ids for training)


@dataclass
class Episode:
    """A finished episode of one game from one seed."""

    game: str
    seed: int
    turns: list[Turn] = field(default_factory=list)
    success: bool = False  # the game's ``info["success"]`` at the last turn

    @property
    def ret(self) -> float:
        """Return R = sum of the turn rewards (penalties included)."""
        return float(sum(turn.reward for turn in self.turns))

    @property
    def length(self) -> int:
        return len(self.turns)

    @property
    def invalid(self) -> int:
        """Turns whose response named no legal action (each played the fallback)."""
        return sum(not turn.valid for turn in self.turns)


# act(envs, prompts) -> one (response text, payload) per unfinished episode
Act = Callable[[list[LanguageAgentEnv], list[str]], list[tuple[str, Any]]]


def play_episodes(envs: Sequence[LanguageAgentEnv], seeds: Sequence[int], act: Act, *, history: int = 0,
                  style: str = "think", dynamics_seeds: Sequence[int | None] | None = None,
                  max_turns: int = 10_000) -> list[Episode]:
    """Play one episode per env from ``seeds`` in lockstep and return them in order.

    Each turn calls ``act`` once with the envs that are still running and
    their prompts, so a model generates for all of them in one batch.
    """
    dynamics_seeds = dynamics_seeds or [None] * len(envs)
    episodes = []
    for env, seed, dynamics in zip(envs, seeds, dynamics_seeds):
        env.reset(seed, dynamics_seed=dynamics)
        episodes.append(Episode(game=env.game.name, seed=seed))
    active = list(range(len(envs)))
    for _ in range(max_turns):
        if not active:
            return episodes
        prompts = [envs[i].prompt(history=history, style=style) for i in active]
        outputs = act([envs[i] for i in active], prompts)
        if len(outputs) != len(active):
            raise ValueError(f"act returned {len(outputs)} responses for {len(active)} prompts")
        still = []
        for i, prompt, (text, payload) in zip(active, prompts, outputs):
            result = envs[i].step(text)
            info = result.info
            episodes[i].turns.append(Turn(prompt, text, info["action"], info["valid_action"], result.reward, payload))
            if result.done:
                episodes[i].success = bool(info.get("success", False))
            else:
                still.append(i)
        active = still
    raise RuntimeError(f"episodes still running after {max_turns} turns: does the game cap its length?")
