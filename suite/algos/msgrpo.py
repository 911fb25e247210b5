"""MS-GRPO with absolute-advantage-weighted (AAW) episode sampling.

"Reinforced Language Models for Sequential Decision Making" (Dilkes, Yazdanpanah,
Stein; arXiv 2508.10839). A language agent plays a text game (``suite.envs``);
each decision is one generation from the policy.

Per training step, for each of ``prompts_per_step`` initial states (a seed record
of the game's seed dataset) the policy plays ``group_size`` = G episodes. All
episodes of the step run in lockstep: at every turn the prompts of all unfinished
episodes go to the rollout engine in one batched call.

Credit assignment (episode j of a group, return R_j = sum of its rewards,
format penalties included)::

    A_j = (R_j - mean_k R_k) / (std_k R_k + eps)      (the group's sample std, eps = 1e-6;
                                                       ``scale_rewards: false`` drops the division)

and every step t of episode j is one training row -- prompt = the observation at
t rendered by the game's prompt template (plus, optionally, the last ``history``
actions), completion = the generated text -- whose every token carries A_j.
The loss is the trainer's (clipped surrogate + optional KL to the reference).

AAW: the units (episodes, or steps with ``sample_unit: step``) that enter the
update are drawn, ``update_samples`` of them (0 = all), with probabilities

    softmax:       P_j = exp(|A_j| / T_ep) / sum_k exp(|A_k| / T_ep)
    proportional:  P_j = |A_j| / sum_k |A_k|         (uniform if every A is 0)
    uniform:       P_j = 1 / N                        (the ablation)

without replacement by default (``replacement: true`` draws with replacement).
A step's |A| is its episode's. Without replacement, ``proportional`` draws every
non-zero unit before any zero-advantage one (those carry no policy gradient).

Logged per step (besides the trainer's): success_rate, mean_return,
episode_length, invalid_action_rate, fallback_count, the advantage statistics of
all and of the trained units, and the cumulative episodes / environment steps /
trained rows consumed (the method's resumable state), for sample-efficiency plots.
The trainer's ``reward`` and ``accuracy`` are overridden by the episode-level
mean return and success rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..envs.base import FALLBACKS, PROMPT_STYLES, Episode, LanguageAgentEnv, play_episodes, prefill_ids
from ..envs.registry import GAMES, make_game
from ..rollout import Rollouts, broadcast
from ..trainer import Method
from .grpo import group_advantages

SAMPLINGS = ("softmax", "proportional", "uniform")
UNITS = ("episode", "step")


@dataclass
class Options:
    game: str | None = None  # None: the game each seed record names (metadata.game)
    game_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {max_steps: 10}
    history: int = 0  # last N actions shown in the prompt
    prompt_style: str = "think"  # think | direct
    format_penalty: float = -0.1  # added to a turn's reward when the response names no legal action
    fallback: str = "noop"  # what an invalid turn plays: noop | random
    sampling: str = "softmax"  # softmax (AAW) | proportional | uniform (ablation)
    sample_unit: str = "episode"  # episode | step
    temperature_ep: float = 1.0  # T_ep of the softmax
    update_samples: int = 0  # units drawn per update; 0 = every unit
    replacement: bool = False
    same_dynamics: bool = False  # True: the G episodes of a group share the game's randomness too
    # text every response starts with (e.g. "<action>"), written after the chat template as context: not generated,
    # not trained; the game reads it with the generated text (the game evaluator's override of the same name)
    response_prefill: str = ""

    def __post_init__(self):
        def bad(name, why):
            raise ValueError(f"train.algo.{name} = {getattr(self, name)!r} {why}")

        if self.game is not None and self.game not in GAMES:
            bad("game", f"is not one of {sorted(GAMES)}")
        if not isinstance(self.game_kwargs, dict):
            bad("game_kwargs", "must be a mapping of game constructor arguments")
        if self.game is not None:
            check_game_kwargs(self.game, self.game_kwargs)
        if not isinstance(self.history, int) or self.history < 0:
            bad("history", "must be an integer >= 0")
        if self.prompt_style not in PROMPT_STYLES:
            bad("prompt_style", f"is not one of {list(PROMPT_STYLES)}")
        if self.format_penalty > 0:
            bad("format_penalty", "must be <= 0")
        if self.fallback not in FALLBACKS:
            bad("fallback", f"is not one of {list(FALLBACKS)}")
        if self.sampling not in SAMPLINGS:
            bad("sampling", f"is not one of {list(SAMPLINGS)}")
        if self.sample_unit not in UNITS:
            bad("sample_unit", f"is not one of {list(UNITS)}")
        if not self.temperature_ep > 0:
            bad("temperature_ep", "must be > 0")
        if not isinstance(self.update_samples, int) or self.update_samples < 0:
            bad("update_samples", "must be an integer >= 0 (0 = all)")
        if not isinstance(self.response_prefill, str):
            bad("response_prefill", "must be a string (\"\" for none)")


def check_game_kwargs(game: str, kwargs: dict) -> None:
    try:
        make_game(game, **kwargs)
    except TypeError as err:
        raise ValueError(f"train.algo.game_kwargs = {kwargs!r} do not fit game {game!r}: {err}") from None


# ------------------------------------------------------------- the equations
def episode_advantages(returns: torch.Tensor, scale_by_std: bool = True) -> torch.Tensor:
    """``[initial states, G]`` episode returns -> A_j, normalised within each group."""
    return group_advantages(returns, scale_by_std=scale_by_std)


def sampling_probs(advantages: torch.Tensor, scheme: str, temperature: float = 1.0) -> torch.Tensor:
    """Probability of drawing each unit, from the units' advantages (1-D)."""
    magnitude = advantages.abs().double()
    n = magnitude.numel()
    if scheme == "softmax":
        return torch.softmax(magnitude / temperature, dim=0)
    if scheme == "proportional":
        total = magnitude.sum()
        return magnitude / total if total > 0 else torch.full((n,), 1.0 / n, dtype=torch.double)
    if scheme == "uniform":
        return torch.full((n,), 1.0 / n, dtype=torch.double)
    raise ValueError(f"unknown sampling scheme {scheme!r}; choose one of {SAMPLINGS}")


def sample_units(probs: torch.Tensor, k: int, replacement: bool = False,
                 generator: torch.Generator | None = None) -> list[int]:
    """Draw ``k`` unit indices with ``probs`` (``k`` = 0: all units, in order).

    Without replacement, units of probability 0 come only after every positive
    one has been drawn (then uniformly among them)."""
    n = probs.numel()
    if k == 0 or (k >= n and not replacement):
        return list(range(n))
    if replacement:
        return torch.multinomial(probs.float(), k, replacement=True, generator=generator).tolist()
    positive = int((probs > 0).sum())
    first = torch.multinomial(probs.float(), min(k, positive), replacement=False, generator=generator).tolist()
    if len(first) == k:
        return first
    zeros = torch.nonzero(probs <= 0).flatten()
    order = torch.randperm(zeros.numel(), generator=generator)[:k - len(first)]
    return first + zeros[order].tolist()


def step_advantages(advantages: list[float], lengths: list[int]) -> list[float]:
    """Episode -> step broadcast: episode j's A_j for each of its ``lengths[j]`` steps."""
    return [a for a, n in zip(advantages, lengths) for _ in range(n)]


# ---------------------------------------------------------------- the method
class MSGRPO(Method):
    # the paper's J = (1/G) sum_j (1/T_j) sum_t L_CLIP(j, t): per step a mean over its tokens, per episode a mean
    # over its steps, then a mean over episodes
    defaults = {"loss_agg": "episode-step-token-mean", "scale_rewards": True}
    Options = Options

    @classmethod
    def batch_description(cls, cfg) -> str:
        o = Options(**cfg.algo)
        kept = f"{o.update_samples} {o.sample_unit}s" if o.update_samples else f"every {o.sample_unit}"
        return f"{cfg.prompts_per_step} seeds × {cfg.group_size} episodes ({o.sampling} sampling keeps {kept})"

    def __init__(self, trainer):
        super().__init__(trainer)
        games = {self.options.game} if self.options.game else {rec["metadata"]["game"] for rec in trainer.records}
        for game in sorted(games):
            check_game_kwargs(game, self.options.game_kwargs)
        self.totals = {"episodes": 0, "env_steps": 0, "trained_rows": 0}

    def advantages(self, rewards: torch.Tensor) -> torch.Tensor:
        return episode_advantages(rewards, scale_by_std=self.cfg.scale_rewards)

    def play(self, step: int) -> list[Episode]:
        """The step's episodes: G per initial state, generated in lockstep (group-major order)."""
        t, cfg, o = self.trainer, self.cfg, self.options
        records = t.records_for_step(step, cfg.prompts_per_step)
        envs, seeds, dynamics = [], [], []
        for rec in records:
            seed = int(rec["metadata"]["seed"])
            for j in range(cfg.group_size):
                game = make_game(o.game or rec["metadata"]["game"], **o.game_kwargs)
                envs.append(LanguageAgentEnv(game, format_penalty=o.format_penalty, fallback=o.fallback, seed=seed))
                seeds.append(seed)
                dynamics.append(None if o.same_dynamics else (step * cfg.group_size + j) * 1_000_003 + cfg.seed)

        prefill = prefill_ids(t.tokenizer, o.response_prefill)

        def act(_envs, prompts):
            prompt_ids = [t.chat_ids([{"role": "user", "content": p}]) + prefill for p in prompts]
            completions = t.generate(prompt_ids, 1)
            texts = t.decode(completions)
            return [(o.response_prefill + text, (p, c)) for text, p, c in zip(texts, prompt_ids, completions)]

        return play_episodes(envs, seeds, act, history=o.history, style=o.prompt_style, dynamics_seeds=dynamics)

    def collect(self, step: int) -> Rollouts:
        cfg, o = self.cfg, self.options
        episodes = self.play(step)
        returns = torch.tensor([ep.ret for ep in episodes], dtype=torch.float).view(-1, cfg.group_size)
        adv = self.advantages(returns).flatten()
        lengths = [ep.length for ep in episodes]

        # the units an update may draw, and which (episode, turn) rows each one trains
        if o.sample_unit == "episode":
            units = [[(e, t) for t in range(n)] for e, n in enumerate(lengths)]
            unit_adv = adv
        else:
            units = [[(e, t)] for e, n in enumerate(lengths) for t in range(n)]
            unit_adv = torch.tensor(step_advantages(adv.tolist(), lengths))
        probs = sampling_probs(unit_adv, o.sampling, o.temperature_ep)
        generator = torch.Generator().manual_seed((cfg.seed * 1_000_003 + step) % 2**31)
        chosen = sample_units(probs, o.update_samples, o.replacement, generator)
        rows = [row for u in chosen for row in units[u]]
        # the episode each row is a step of, for the per-episode mean (loss_agg episode-step-token-mean): a drawn
        # episode unit is one episode (drawn twice with replacement: two), steps drawn one by one join their episode
        if o.sample_unit == "episode":
            row_episode = [d for d, u in enumerate(chosen) for _ in units[u]]
        else:
            row_episode = [e for e, _ in rows]

        prompt_ids, completion_ids, row_adv, rewards, correct, group, texts, prompts = ([] for _ in range(8))
        for e, t in rows:
            turn, ep = episodes[e].turns[t], episodes[e]
            prompt_ids.append(turn.payload[0])
            completion_ids.append(turn.payload[1])
            row_adv.append(float(adv[e]))
            rewards.append(ep.ret)
            correct.append(ep.success)
            group.append(e // cfg.group_size)
            texts.append(turn.response)
            prompts.append(turn.prompt)

        turns = sum(lengths)
        invalid = sum(ep.invalid for ep in episodes)
        self.totals["episodes"] += len(episodes)
        self.totals["env_steps"] += turns
        self.totals["trained_rows"] += len(rows)
        success = float(np.mean([ep.success for ep in episodes]))
        mean_return = float(returns.mean())
        metrics = {
            # the trainer's reward / accuracy / reward_std, per episode rather than per trained row
            "reward": mean_return, "accuracy": success, "reward_std": float(returns.std(unbiased=False)),
            "success_rate": success, "mean_return": mean_return, "return_std": float(returns.std(unbiased=False)),
            "episode_length": turns / len(episodes), "invalid_action_rate": invalid / turns, "fallback_count": invalid,
            "adv_abs_mean": float(adv.abs().mean()),
            "adv_abs_mean_trained": float(np.mean([abs(a) for a in row_adv])),
            "zero_adv_groups": float((returns.std(dim=1) == 0).float().mean()) if cfg.group_size > 1 else 1.0,
            "trained_units": len(chosen), "trained_episodes": len({e for e, _ in rows}), "trained_rows": len(rows),
            "prompt_tokens": float(np.mean([len(p) for p in prompt_ids])),
            "episodes_consumed": self.totals["episodes"], "env_steps_consumed": self.totals["env_steps"],
            "trained_rows_consumed": self.totals["trained_rows"],
        }
        return Rollouts(prompt_ids=prompt_ids, completion_ids=completion_ids,
                        loss_mask=[[1] * len(c) for c in completion_ids],
                        advantages=broadcast(row_adv, completion_ids), rewards=rewards, correct=correct,
                        group=group, texts=texts, prompts=prompts, metrics=metrics, episode=row_episode)

    def state_dict(self) -> dict[str, Any]:
        return {"totals": dict(self.totals)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.totals = dict(state.get("totals", self.totals))
