"""Supervised fine-tuning as a :class:`~suite.trainer.Method` ("Retaining by Doing", arXiv 2510.18874).

Loss: cross-entropy on the assistant tokens only. For a batch of (prompt x, response y) pairs
and the trainer's ``token-mean`` aggregation,

    L = - (1 / sum_i |y_i|) * sum_i sum_t log pi_theta(y_i,t | x_i, y_i,<t)

i.e. ``token_loss = -log p`` on every response token (prompt tokens and padding carry no loss:
the trainer's loss mask covers completion tokens only). No advantage, no ratio, no sampling in
the loss. With ``kl_coef > 0`` the trainer's KL term to the frozen initial model is added per
token, as in the reference code's CrossEntropyLoss.

Where the responses come from (``train.algo.data``):

- ``expert``: off-policy expert data, one response per prompt from
  :func:`suite.tasks.retaining.expert_response` (a solver's derivation for Countdown, a
  constraint-satisfying answer for IFEval-style prompts, a short rationale and the gold letter
  for MMLU);
- ``self`` (Self-SFT): at the start of training, ``samples_per_prompt`` samples per prompt from
  the initial model at ``sample_temperature``; the correct ones (verifier, and finished with an
  end-of-sequence token) are the data for the whole run;
- ``iterative`` (Iterative-SFT): the same, but redrawn at the start of *every* epoch from the
  current weights, so the data stay approximately on-policy;
- ``rl_traces``: the correct samples an RL run logged (``rbd_grpo`` with
  ``algo.log_correct: true``) in ``<runs>/<traces_from>/correct_samples.jsonl``.

Steps and epochs. Every variant takes ``steps`` optimizer steps of ``prompts_per_step``
examples (the same number of updates for all variants). An epoch is ``epoch_steps`` steps
(default: ceil(P / prompts_per_step) for the P training prompts, i.e. one pass of the expert
data). Within epoch e, step t trains on positions [t B, (t+1) B) of the epoch's example pool
laid out as successive seeded permutations (a pool smaller than an epoch is cycled). A step
whose pool is empty (no correct sample at all) trains one empty row: with no trained token the
trainer skips the optimizer step (weights, AdamW's step count and moments unchanged; the learning-rate
schedule still advances) and the step logs ``pool_size = 0`` and ``update_skipped = 1``.

The training prompts are the first P records of the trainer's epoch-0 order (``prompts``,
0 = all), i.e. the prompts an RL run with the same seed meets first. The pool (record ids and
token ids) is method state, saved in checkpoints, so an interrupted run resumes with the same
data; each generated pool is also written to ``sft_pool/epoch_<e>.jsonl`` for inspection.

The trainer scores tokens with ``logits / train.temperature``; SFT needs the model's own
distribution, so ``train.temperature`` must be 1 (sampling for ``self``/``iterative`` uses
``algo.sample_temperature``).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from typing import Any

import torch

from ..io import read_jsonl, write_jsonl
from ..losses import kl_penalty, masked_mean
from ..prompts import render
from ..rollout import Rollouts, SamplingParams, broadcast, trim_at_eos
from ..trainer import Method

DATA_SOURCES = ("expert", "self", "iterative", "rl_traces")
TRACES_FILE = "correct_samples.jsonl"


def eos_ids(trainer) -> set[int]:
    eos = trainer.policy.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    return ids | {trainer.tokenizer.eos_token_id}


def finished(trainer, completion_ids: list[int]) -> bool:
    """The completion ended on its own (EOS, or stopped before the token budget), not truncated."""
    return len(completion_ids) < trainer.cfg.max_new_tokens or (
        bool(completion_ids) and completion_ids[-1] in eos_ids(trainer))


def sft_token_loss(logp: torch.Tensor) -> torch.Tensor:
    """Per-token cross-entropy of the observed tokens: ``-log p``."""
    return -logp


class SFT(Method):
    # cross-entropy averaged over all response tokens of the batch (the reference's CrossEntropyLoss)
    defaults = {"loss_agg": "token-mean"}

    @dataclass
    class Options:
        data: str = "expert"  # expert | self | iterative | rl_traces
        prompts: int = 0  # training prompts (first N of the epoch-0 order); 0 = the whole train split
        samples_per_prompt: int = 4  # self / iterative: samples drawn per prompt
        sample_temperature: float = 0.8  # self / iterative: sampling temperature (the RL runs' 0.8)
        epoch_steps: int = 0  # steps per epoch; 0 = ceil(prompts / prompts_per_step)
        traces_from: str = ""  # rl_traces: the RL experiment (a sibling run directory) that logged them

        def __post_init__(self):
            if self.data not in DATA_SOURCES:
                raise ValueError(f"algo.data = {self.data!r} is not one of {list(DATA_SOURCES)}")
            for key in ("prompts", "epoch_steps"):
                if getattr(self, key) < 0:
                    raise ValueError(f"algo.{key} = {getattr(self, key)} must be >= 0")
            if self.samples_per_prompt < 1:
                raise ValueError(f"algo.samples_per_prompt = {self.samples_per_prompt} must be >= 1")
            if not self.sample_temperature > 0:
                raise ValueError(f"algo.sample_temperature = {self.sample_temperature} must be > 0")
            if (self.data == "rl_traces") != bool(self.traces_from):
                raise ValueError(f"algo.traces_from = {self.traces_from!r}: name the RL experiment exactly when "
                                 f"algo.data is 'rl_traces' (algo.data = {self.data!r})")

    @classmethod
    def batch_description(cls, cfg) -> str:
        opt = cls.Options(**cfg.algo)
        pool = {"expert": "expert responses", "rl_traces": f"correct samples of {opt.traces_from}",
                "self": f"initial model's correct samples, {opt.samples_per_prompt} per prompt",
                "iterative": f"current model's correct samples, {opt.samples_per_prompt} per prompt, each epoch"}
        prompts = f"{opt.prompts} prompts" if opt.prompts else "all prompts"
        return f"{cfg.prompts_per_step} examples ({pool[opt.data]}; {prompts})"

    def __init__(self, trainer):
        super().__init__(trainer)
        cfg, opt = self.cfg, self.options
        if cfg.temperature != 1.0:
            raise ValueError(f"experiment {cfg.experiment!r}: method 'sft' scores tokens at train.temperature, which "
                             f"must be 1.0 (got {cfg.temperature}); set algo.sample_temperature for sampling")
        n = len(trainer.records)
        count = n if opt.prompts == 0 else opt.prompts
        if count > n:
            raise ValueError(f"experiment {cfg.experiment!r}: algo.prompts = {count} exceeds the "
                             f"{n} records of {cfg.train_dataset}/{cfg.train_split}")
        self.count = count
        self.records: list[dict] = []  # the first `count` records of the trainer's epoch-0 order (set on first use)
        self.by_id = {rec["id"]: rec for rec in trainer.records}
        self.epoch_len = opt.epoch_steps or math.ceil(count / cfg.prompts_per_step)
        self.pool: list[tuple[str, list[int]]] = []  # (record id, response token ids)
        self.pool_epoch = -1
        self.pool_stats: dict[str, float] = {}
        self._perms: dict[tuple[int, int], list[int]] = {}

    # -- the data ------------------------------------------------------------
    def collect(self, step: int) -> Rollouts:
        t, cfg = self.trainer, self.cfg
        epoch, local = divmod(step, self.epoch_len)
        if not self.records:
            self.records = t.records_for_step(0, self.count)
        if self.pool_epoch < 0 or (self.options.data == "iterative" and epoch != self.pool_epoch):
            self._build_pool(epoch)
        size = cfg.prompts_per_step
        if self.pool:
            chosen = [self.pool[self._position(epoch, i)] for i in range(local * size, (local + 1) * size)]
        else:  # nothing correct to learn from: one empty row (no trained token), so the trainer takes no optimizer step
            chosen = [(self.records[0]["id"], [])]
        records = [self.by_id[rid] for rid, _ in chosen]
        completions = [list(ids) for _, ids in chosen]
        n = len(chosen)
        return Rollouts(
            prompt_ids=[t.prompt_ids(rec) for rec in records], completion_ids=completions,
            loss_mask=[[1] * len(c) for c in completions], advantages=broadcast([0.0] * n, completions),
            rewards=[1.0 if self.pool else 0.0] * n, correct=[bool(self.pool)] * n, group=list(range(n)),
            texts=t.decode(completions), prompts=[rec["prompt"] for rec in records],
            metrics={"sft_epoch": epoch, "pool_size": len(self.pool), **self.pool_stats},
        )

    def _position(self, epoch: int, i: int) -> int:
        """Index into the pool of position ``i`` of an epoch: successive seeded permutations."""
        lap, pos = divmod(i, len(self.pool))
        key = (epoch, lap)
        if key not in self._perms:
            perm = list(range(len(self.pool)))
            random.Random(f"{self.cfg.seed}-sft-{epoch}-{lap}").shuffle(perm)
            self._perms = {key: perm}
        return self._perms[key][pos]

    def _build_pool(self, epoch: int) -> None:
        data = self.options.data
        if data == "expert":
            pool, stats = self._expert_pool()
        elif data == "rl_traces":
            pool, stats = self._traces_pool()
        else:
            pool, stats = self._sampled_pool(epoch)
        self.pool, self.pool_epoch, self.pool_stats, self._perms = pool, epoch, stats, {}

    def _expert_pool(self) -> tuple[list, dict]:
        from ..tasks.retaining import expert_response

        pool, too_long = [], 0
        for rec in self.records:
            ids = self.response_ids(rec, expert_response(rec))
            if len(ids) > self.cfg.max_new_tokens:  # as the reference drops over-long examples
                too_long += 1
                continue
            pool.append((rec["id"], ids))
        return pool, {"pool_dropped_too_long": too_long}

    def _sampled_pool(self, epoch: int) -> tuple[list, dict]:
        """Sample from the current weights (the engine is synced after every update); keep correct,
        finished, distinct samples."""
        t, opt = self.trainer, self.options
        params = SamplingParams(max_new_tokens=self.cfg.max_new_tokens, temperature=opt.sample_temperature,
                                top_p=self.cfg.top_p, n=opt.samples_per_prompt)
        # through the trainer: split by prompt over ranks (and seeded per prompt) when there are several
        completions = t.generate([t.prompt_ids(rec) for rec in self.records], opt.samples_per_prompt, params=params)
        texts = t.decode(completions)
        pool, seen, n_correct, rows = [], set(), 0, []
        for j, (ids, text) in enumerate(zip(completions, texts)):
            rec = self.records[j // opt.samples_per_prompt]
            ok = bool(t.verifier(text, rec["answers"])) and finished(t, ids)
            n_correct += ok
            if ok and (rec["id"], tuple(ids)) not in seen:
                seen.add((rec["id"], tuple(ids)))
                pool.append((rec["id"], list(ids)))
                rows.append({"id": rec["id"], "completion": text})
        write_jsonl(t.out / "sft_pool" / f"epoch_{epoch}.jsonl", rows)
        return pool, {"pool_sample_accuracy": n_correct / max(len(completions), 1)}

    def _traces_pool(self) -> tuple[list, dict]:
        run = self.trainer.out.parent / self.options.traces_from
        path = run / TRACES_FILE
        if not path.is_file():
            raise FileNotFoundError(f"experiment {self.cfg.experiment!r}: {path} does not exist; run the RL experiment "
                                    f"{self.options.traces_from!r} with algo.log_correct: true first")
        done = run / "done.json"
        if done.is_file():
            source = json.loads(done.read_text())["config"]
            for key in ("model", "train_dataset", "train_split", "prompt_template"):
                if source[key] != getattr(self.cfg, key):
                    raise ValueError(f"experiment {self.cfg.experiment!r}: RL traces in {run} were made with "
                                     f"{key} = {source[key]!r}, this run has {getattr(self.cfg, key)!r}")
        pool, seen = [], set()
        for row in read_jsonl(path):
            if row["id"] not in self.by_id:
                raise ValueError(f"{path}: record {row['id']!r} is not in {self.cfg.train_dataset}/{self.cfg.train_split}")
            key = (row["id"], tuple(row["completion_ids"]))
            if key not in seen:
                seen.add(key)
                pool.append((row["id"], list(row["completion_ids"])))
        return pool, {}

    def response_ids(self, record: dict, response: str) -> list[int]:
        """Token ids of an assistant turn as the chat template writes it after the generation prompt,
        cut after its first end-of-sequence token (what the model must learn to emit to stop)."""
        tok = self.trainer.tokenizer
        user = [{"role": "user", "content": render(self.cfg.prompt_template, record["prompt"])}]
        prompt = tok.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template(user + [{"role": "assistant", "content": response}], tokenize=False)
        tail = full[len(prompt):] if full.startswith(prompt) else response + tok.eos_token
        ids = tok(tail, add_special_tokens=False)["input_ids"]
        eos = eos_ids(self.trainer)
        ids = trim_at_eos(ids, eos, None)
        return ids if ids and ids[-1] in eos else ids + [tok.eos_token_id]

    # -- the loss ------------------------------------------------------------
    def token_loss(self, batch, logp, old_logp, ref_logp) -> tuple[torch.Tensor, dict[str, float]]:
        loss = sft_token_loss(logp)
        stats = {"nll": masked_mean(loss, batch.loss_mask)}
        if ref_logp is not None:
            kl = kl_penalty(logp, ref_logp, self.cfg.kl_estimator)
            loss = loss + self.cfg.kl_coef * kl
            stats["kl"] = masked_mean(kl, batch.loss_mask)
        return loss, stats

    # -- state ---------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"pool": [(rid, list(ids)) for rid, ids in self.pool], "pool_epoch": self.pool_epoch,
                "pool_stats": dict(self.pool_stats)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pool = [(rid, list(ids)) for rid, ids in state["pool"]]
        self.pool_epoch, self.pool_stats, self._perms = state["pool_epoch"], dict(state["pool_stats"]), {}
