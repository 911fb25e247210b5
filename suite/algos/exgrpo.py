"""ExGRPO (Zhan et al., 2025, arXiv 2510.02245): GRPO with a replay buffer of its own successes.

What differs from GRPO (the buffer itself is :mod:`suite.replay`):

- **Collection.** For every group of K rollouts of a question with k correct: 0 < k < K puts the
  question in bucket k and stores its correct trajectories (deduplicated) with their token
  log-probs under the rollout policy; k = K retires it (out of the buffer, out of replay and out
  of the fresh questions drawn later). As in the reference code, a group counts its replayed
  trajectory among the K, and trajectories are stored only once replay has started
  (``collect_before_start`` stores them from step one); retirement always applies.
- **Mixed batches.** Once replay is on, ``floor(rho * prompts_per_step)`` questions (fewer if the
  buffer holds fewer) are drawn from the buffer; each forms a group of 1 replayed trajectory +
  (K - 1) fresh rollouts; the other questions are fresh groups of K. Every step trains on
  ``prompts_per_step * K`` trajectories, as on-policy GRPO does.
- **Trajectory selection.** The replayed trajectory is the stored one with the lowest mean token
  entropy under the current policy (option: random).
- **Delayed start.** Replay starts at the step after the first one whose batch accuracy (pass@1
  over all of its rollouts) is strictly above ``start_threshold`` (0.35).
- **Loss.** Advantage A_i = r_i - mean(r) over the group (``scale_rewards: false``, the method's default). Fresh tokens:
  -A * w with w = pi_theta / pi_old, unclipped once replay has started (clipped PPO surrogate with
  the trainer's epsilons before). Replayed tokens: -A * f(w*), w* = pi_theta / pi_recorded (the
  log-probs stored with the trajectory), f(w) = w / (w + gamma), gamma = 0.1 (policy shaping;
  ``shaping: false`` uses w* itself). Aggregation (``loss_agg: seq-mean-token-sum-norm``, the method's default):
  sum over tokens divided by the maximum response length, mean over trajectories. No KL.

Per step it logs (``metrics.jsonl``): buffer size (questions, trajectories), retired questions,
questions per bucket, replay on/off, replayed groups, accuracy of the fresh rollouts, and the mean
token entropy (under the policy being updated) of replayed and of fresh trajectories.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..losses import clipped_surrogate, kl_penalty, masked_mean
from ..replay import SELECTIONS, WEIGHTINGS, ReplayBuffer, Trajectory
from ..rollout import Batch, Rollouts, broadcast, collate
from ..trainer import Method
from .grpo import group_advantages


@dataclass
class ExGRPOOptions:
    replay_ratio: float = 0.5  # rho: share of a step's questions drawn from the buffer
    # bucket weights: gaussian N(k; K/2, sigma) over the count (reference code) | gaussian_accuracy N(k/K; 0.5, sigma)
    # over the accuracy (the paper's formula; nearly uniform at sigma 1) | linear k/K | uniform
    question_weighting: str = "gaussian"
    bucket_sigma: float = 1.0  # sigma of the Gaussian: in correct rollouts (gaussian), in accuracy (gaussian_accuracy)
    trajectory_selection: str = "min_entropy"  # min_entropy | random
    delayed_start: bool = True  # replay only once batch pass@1 > start_threshold
    start_threshold: float = 0.35
    shaping: bool = True  # replayed tokens: f(w) = w / (w + shaping_gamma); false: w
    shaping_gamma: float = 0.1
    unclipped_after_start: bool = True  # fresh tokens: plain ratio once replay has started
    collect_before_start: bool = False  # store trajectories before replay starts (reference: no)
    retire_from_training: bool = True  # retired questions are also skipped as fresh questions

    def __post_init__(self):
        if not 0 <= self.replay_ratio < 1:
            raise ValueError(f"algo.replay_ratio = {self.replay_ratio!r} must be in [0, 1)")
        if self.question_weighting not in WEIGHTINGS:
            raise ValueError(f"algo.question_weighting = {self.question_weighting!r} is not one of {list(WEIGHTINGS)}")
        if not self.bucket_sigma > 0:
            raise ValueError(f"algo.bucket_sigma = {self.bucket_sigma!r} must be > 0")
        if self.trajectory_selection not in SELECTIONS:
            raise ValueError(f"algo.trajectory_selection = {self.trajectory_selection!r} is not one of {list(SELECTIONS)}")
        if not 0 <= self.start_threshold < 1:
            raise ValueError(f"algo.start_threshold = {self.start_threshold!r} must be in [0, 1)")
        if not self.shaping_gamma > 0:
            raise ValueError(f"algo.shaping_gamma = {self.shaping_gamma!r} must be > 0")
        for key in ("delayed_start", "shaping", "unclipped_after_start", "collect_before_start", "retire_from_training"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"algo.{key} = {getattr(self, key)!r} must be true or false")


def shaped_replay_loss(logp: torch.Tensor, recorded_logp: torch.Tensor, advantages: torch.Tensor,
                       gamma: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token loss of replayed tokens, ``-A f(w)`` with ``w = exp(logp - recorded_logp)`` and
    ``f(w) = w / (w + gamma)`` (``gamma=None``: ``f(w) = w``). Returns the loss and ``f(w)``."""
    w = torch.exp(logp - recorded_logp)
    f = w / (w + gamma) if gamma is not None else w
    return -advantages * f, f


class ExGRPO(Method):
    Options = ExGRPOOptions
    # the paper and reference script: advantage r - mean (no std), token sum / max response length per trajectory
    defaults = {"loss_agg": "seq-mean-token-sum-norm", "scale_rewards": False}

    def __init__(self, trainer):
        super().__init__(trainer)
        o, cfg = self.options, self.cfg
        self.buffer = ReplayBuffer(cfg.group_size, o.question_weighting, o.bucket_sigma)
        self.started = not o.delayed_start  # replay (and, by default, collection) on
        self.cursor = 0  # position in the trainer's stream of records (fresh questions)
        self.mixed = self.started  # this step's loss: mixed-policy (unclipped) or not
        self._by_id = {rec["id"]: rec for rec in trainer.records}
        self._sums: dict[str, float] = {}

    # -- the rollouts of one step --------------------------------------------
    def collect(self, step: int) -> Rollouts:
        t, cfg, o = self.trainer, self.cfg, self.options
        K, B = cfg.group_size, cfg.prompts_per_step
        rng = np.random.default_rng([cfg.seed, step, 5])
        self.mixed = self.started
        replay_q = self.buffer.sample(int(B * o.replay_ratio), rng) if self.started else []
        replayed = self._select(replay_q, rng)  # (record, Trajectory) per replayed group
        fresh = self._fresh_records(B - len(replayed))
        groups = [rec for rec, _ in replayed] + fresh
        sizes = [K - 1] * len(replayed) + [K] * len(fresh)  # fresh rollouts per group

        prompt_ids = [t.prompt_ids(rec) for rec in groups]
        generated = t.generate([p for p, n in zip(prompt_ids, sizes) for _ in range(n)], 1)
        completions, off_policy, old_logp, group, owner = [], [], [], [], []
        pos = 0
        for g, (rec, n) in enumerate(zip(groups, sizes)):
            if g < len(replayed):  # the replayed trajectory first, then the group's K - 1 fresh rollouts
                traj = replayed[g][1]
                completions.append(list(traj.completion_ids))
                off_policy.append(True)
                old_logp.append(list(traj.logp))
                group.append(g)
                owner.append(rec)
            completions.extend(generated[pos:pos + n])
            off_policy.extend([False] * n)
            old_logp.extend([None] * n)
            group.extend([g] * n)
            owner.extend([rec] * n)
            pos += n
        texts = t.decode(completions)
        rewards = [t.reward_fn(text, rec["answers"]) for text, rec in zip(texts, owner)]
        correct = [bool(t.verifier(text, rec["answers"])) for text, rec in zip(texts, owner)]
        advantages = self.advantages(torch.tensor(rewards, dtype=torch.float).view(len(groups), K)).flatten().tolist()
        rows = [[p] * K for p in prompt_ids]
        rollouts = Rollouts(
            prompt_ids=[p for ps in rows for p in ps], completion_ids=completions,
            loss_mask=[[1] * len(c) for c in completions], advantages=broadcast(advantages, completions),
            rewards=rewards, correct=correct, group=group, old_logp=old_logp if any(off_policy) else None,
            texts=texts, prompts=[rec["prompt"] for rec in owner], off_policy=off_policy,
        )
        pass_at_1 = float(np.mean(correct))
        self._update_buffer(rollouts, groups, step)
        if not self.started and pass_at_1 > o.start_threshold:
            self.started = True  # replay from the next step on
        fresh_rows = [c for c, off in zip(correct, off_policy) if not off]
        rollouts.metrics = {"replay_active": float(self.mixed), "replayed_groups": float(len(replayed)),
                            "accuracy_fresh": float(np.mean(fresh_rows)) if fresh_rows else 0.0,
                            **self.buffer.stats()}
        return rollouts

    def advantages(self, rewards: torch.Tensor) -> torch.Tensor:
        return group_advantages(rewards, scale_by_std=self.cfg.scale_rewards)

    def _fresh_records(self, n: int) -> list[dict]:
        """The next ``n`` records of the trainer's per-epoch permutations, skipping retired questions."""
        out, skipped = [], 0
        while len(out) < n:
            rec = self.trainer.records_for_step(self.cursor, 1)[0]
            self.cursor += 1
            if self.options.retire_from_training and rec["id"] in self.buffer.retired:
                skipped += 1
                if skipped > 2 * len(self.trainer.records):
                    raise RuntimeError("every training question is retired (solved K/K); nothing left to train on")
                continue
            out.append(rec)
        return out

    def _select(self, qids: list[str], rng: np.random.Generator) -> list[tuple[dict, Trajectory]]:
        if not qids:
            return []
        entropies: dict[str, list[float]] = {}
        if self.options.trajectory_selection == "min_entropy":
            rows = [(qid, traj) for qid in qids for traj in self.buffer.trajectories[qid]]
            _, means = self.score([self.trainer.prompt_ids(self._by_id[q]) for q, _ in rows],
                                  [traj.completion_ids for _, traj in rows])
            for (qid, _), h in zip(rows, means):
                entropies.setdefault(qid, []).append(h)
        out = []
        for qid in qids:
            i = self.buffer.select(qid, self.options.trajectory_selection, rng, entropies.get(qid))
            out.append((self._by_id[qid], self.buffer.trajectories[qid][i]))
        return out

    def _update_buffer(self, r: Rollouts, groups: list[dict], step: int) -> None:
        K = self.cfg.group_size
        collecting = self.started or self.options.collect_before_start
        store = []  # (group, row) of correct fresh rollouts to record
        ks = []
        for g, rec in enumerate(groups):
            members = [i for i in range(len(r)) if r.group[i] == g]
            k = sum(r.correct[i] for i in members)
            ks.append(k)
            if collecting and 0 < k < K:
                store.extend((g, i) for i in members if r.correct[i] and not r.off_policy[i])
        logps, _ = self.score([r.prompt_ids[i] for _, i in store], [r.completion_ids[i] for _, i in store])
        new: dict[int, list[Trajectory]] = {}
        for (g, i), lp in zip(store, logps):
            new.setdefault(g, []).append(Trajectory(list(r.completion_ids[i]), lp, step + 1))
        for g, (rec, k) in enumerate(zip(groups, ks)):
            if k == K or (collecting and 0 < k < K):  # retirement applies before replay starts too
                self.buffer.update(rec["id"], k, new.get(g, []))

    @torch.no_grad()
    def score(self, prompt_ids: list[list[int]], completions: list[list[int]]) -> tuple[list[list[float]], list[float]]:
        """Token log-probs and mean token entropy of each completion under the current policy."""
        if not completions:
            return [], []
        t = self.trainer
        r = Rollouts(prompt_ids=prompt_ids, completion_ids=completions, loss_mask=[[1] * len(c) for c in completions],
                     advantages=[[0.0] * len(c) for c in completions], rewards=[0.0] * len(completions),
                     correct=[False] * len(completions), group=list(range(len(completions))))
        logps: list[list[float]] = [[] for _ in completions]
        means = [0.0] * len(completions)
        for rows in t.micro_batches(r):
            batch = collate(r, rows, t.tokenizer.pad_token_id).to(t.device)
            logp, entropy = t.completion_logprobs(t.policy, batch)
            for j, i in enumerate(rows):
                n = len(completions[i])
                logps[i] = logp[j, :n].tolist()
                means[i] = float(entropy[j, :n].mean()) if n else 0.0
        return logps, means

    # -- the loss -------------------------------------------------------------
    def token_loss(self, batch: Batch, logp, old_logp, ref_logp) -> tuple[torch.Tensor, dict[str, float]]:
        cfg, o = self.cfg, self.options
        off = batch.off_policy if batch.off_policy is not None else torch.zeros(len(logp), dtype=torch.bool)
        off = off.to(logp.device)[:, None]
        if self.mixed and o.unclipped_after_start:
            fresh_loss = -batch.advantages * torch.exp(logp - old_logp)
            clipped = torch.zeros_like(logp)
        else:
            fresh_loss, clipped = clipped_surrogate(logp, old_logp, batch.advantages, cfg.clip_eps_low, cfg.clip_eps_high)
        replay_loss, weight = shaped_replay_loss(logp, old_logp, batch.advantages, o.shaping_gamma if o.shaping else None)
        loss = torch.where(off, replay_loss, fresh_loss)
        mask = batch.loss_mask
        fresh_mask, replay_mask = mask * (~off), mask * off
        stats = {"clip_frac": masked_mean(clipped * fresh_mask, mask)}
        if ref_logp is not None:
            kl = kl_penalty(logp, ref_logp, cfg.kl_estimator)
            loss = loss + cfg.kl_coef * kl
            stats["kl"] = masked_mean(kl, mask)
        self._accumulate("replay_weight", weight.detach(), replay_mask)
        if batch.entropy is not None:
            self._accumulate("entropy_replayed", batch.entropy, replay_mask)
            self._accumulate("entropy_fresh", batch.entropy, fresh_mask)
        return loss, stats

    def _accumulate(self, name: str, values: torch.Tensor, mask: torch.Tensor) -> None:
        self._sums[name] = self._sums.get(name, 0.0) + float((values * mask).sum())
        self._sums[name + "/n"] = self._sums.get(name + "/n", 0.0) + float(mask.sum())

    def after_update(self, rollouts: Rollouts, step: int) -> dict[str, float | None]:
        """Token means of what ``token_loss`` saw (first PPO epoch's entropies included in every epoch)."""
        out = {}
        sums = self.trainer.world.sum_dict(self._sums)  # several ranks: each saw its own groups' tokens
        for name in ("entropy_replayed", "entropy_fresh", "replay_weight"):
            n = sums.get(name + "/n", 0.0)
            out[name] = sums.get(name, 0.0) / n if n else None  # None: no such token this step
        self._sums = {}
        return out

    # -- checkpoints ----------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"buffer": self.buffer.state_dict(), "started": self.started, "cursor": self.cursor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"])
        self.started, self.cursor = bool(state["started"]), int(state["cursor"])
