"""The RL method of "Retaining by Doing" (arXiv 2510.18874): GRPO as in the reference code.

Per prompt, G samples at temperature T (paper: G = 5, T = 0.8); outcome rewards r_i, set to 0
for a completion cut off at the token budget (``zero_truncated``, as the reference multiplies
rewards by "ends with EOS"); group-normalised advantages

    A_i = (r_i - mean(r)) / (std(r) + eps)            (sample std, GRPO's)

and per generated token, with each batch used for one update (ratio rho = 1, so clipping never
acts: the trainer's surrogate -min(rho A, clip(rho) A) has value -A and gradient -A grad log p,
the gradient of the reference's -A log p),

    loss_t = -A_i + beta * 0.5 * (log pi_theta(y_t) - log pi_ref(y_t))^2        (k2 estimator)

averaged over each sequence's tokens, then over sequences (``loss_agg: seq-mean-token-mean``).
The profile sets the paper's values: ``kl_coef: 0.05`` (0 for the ablation), ``kl_estimator: k2``,
``temperature: 0.8``, ``group_size: 5``, ``lr: 5e-6``, ``ppo_epochs: 1``.

With ``log_correct: true`` every correct, finished completion is appended to
``<run>/correct_samples.jsonl`` (record id, step, text and token ids): the data of SFT on RL traces
(``sft`` with ``algo.data: rl_traces``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..io import append_jsonl, read_jsonl, write_jsonl
from ..rollout import Rollouts, broadcast
from .grpo import GRPO
from .sft import TRACES_FILE, finished


class RBDGRPO(GRPO):
    # the reference's GRPOLoss: mean over each sequence's tokens, then over sequences; std-normalised advantages
    defaults = {"loss_agg": "seq-mean-token-mean", "scale_rewards": True}

    @dataclass
    class Options:
        zero_truncated: bool = True  # reward 0 for completions cut at max_new_tokens
        log_correct: bool = False  # log correct, finished samples for SFT on RL traces

    def __init__(self, trainer):
        super().__init__(trainer)
        self._log_checked = False

    def collect(self, step: int) -> Rollouts:
        r = super().collect(step)
        done = [finished(self.trainer, ids) for ids in r.completion_ids]
        if self.options.zero_truncated:
            r.rewards = [reward if ok else 0.0 for reward, ok in zip(r.rewards, done)]
            grouped = torch.tensor(r.rewards, dtype=torch.float).view(-1, self.cfg.group_size)
            r.advantages = broadcast(self.advantages(grouped).flatten().tolist(), r.completion_ids)
        if self.options.log_correct and self.trainer.world.is_main:  # every rank holds all rollouts; rank 0 writes
            self._log(step, r, done)
        return r

    def _log(self, step: int, r: Rollouts, done: list[bool]) -> None:
        path = self.trainer.out / TRACES_FILE
        if not self._log_checked:  # a resumed run drops what it logged past its checkpoint; the file always exists
            write_jsonl(path, [row for row in read_jsonl(path) if row["step"] <= step] if path.is_file() else [])
            self._log_checked = True
        records = self.trainer.records_for_step(step, self.cfg.prompts_per_step)
        for i, (ok, correct) in enumerate(zip(done, r.correct)):
            if ok and correct:
                append_jsonl(path, {"step": step + 1, "id": records[r.group[i]]["id"], "completion": r.texts[i],
                                    "completion_ids": r.completion_ids[i]})
