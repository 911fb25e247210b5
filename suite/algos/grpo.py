"""GRPO (Shao et al., 2024): group-normalised outcome advantages.

For the G completions of one prompt with rewards r_1..r_G,

    A_i = (r_i - mean(r)) / (std(r) + eps)      (scale_rewards=True)
    A_i =  r_i - mean(r)                        (scale_rewards=False, Dr. GRPO)

and every token of completion i gets A_i. ``std`` is the sample standard
deviation (Bessel-corrected, as TRL and verl compute it; a group of one gets advantage 0). The loss is the trainer's default:
token-level clipped surrogate with separate low/high epsilon, plus beta * KL(k3)
to the frozen reference when beta > 0.
"""

from __future__ import annotations

import torch

from ..trainer import Method

EPS = 1e-6


def group_advantages(rewards: torch.Tensor, scale_by_std: bool = True, eps: float = EPS) -> torch.Tensor:
    """``[prompts, G]`` rewards -> advantages, normalised within each row (group)."""
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if scale_by_std:
        if rewards.shape[1] < 2:
            return torch.zeros_like(rewards)
        centred = centred / (rewards.std(dim=1, keepdim=True) + eps)
    return centred


class GRPO(Method):
    # loss keys a profile leaves unset (TrainConfig.fill_method_defaults): token-mean over the batch, std-scaled
    defaults = {"loss_agg": "token-mean", "scale_rewards": True}

    def advantages(self, rewards: torch.Tensor) -> torch.Tensor:
        return group_advantages(rewards, scale_by_std=self.cfg.scale_rewards)
