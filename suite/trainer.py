"""The one training loop every method runs through.

Per step: ``method.collect`` samples prompts, generates a group of completions
per prompt, scores them and turns scores into per-token advantages; ``update``
computes token log-probs under the policy, the method's per-token loss (clipped
surrogate + optional KL to a frozen reference by default), aggregates it, and
takes one AdamW step per PPO epoch; ``method.after_update`` runs any extra
model's update. Metrics go to ``metrics.jsonl``, a few completions to
``samples.jsonl``, checkpoints to ``checkpoints/step_N`` (HF checkpoint plus
optimizer, scheduler, RNG and method state) and the end result to ``final/``.

Determinism: every step reseeds the RNGs from (seed, step) and picks its prompts
from a per-epoch permutation seeded by (seed, epoch), so a run interrupted and
resumed from a checkpoint ends with the same weights as an uninterrupted one (CPU).

Several ranks (torchrun; suite/distributed.py): generation is split by prompt group and gathered, the update by
group with the whole batch's normalisers, the policy and reference sharded by FSDP2; rank 0 writes. N ranks take
the updates of one process over the same batch, and a checkpoint resumes on any number of ranks.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import math
import os
import random
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import TrainConfig
from .data import load_records
from .io import append_jsonl, read_jsonl, replace_dir, write_json, write_jsonl
from .losses import aggregate, clipped_surrogate, kl_penalty, masked_mean, selected_logprobs_and_entropy
from .models import attention, cpu_attention, load_model, resolve_model
from .precision import precision_line, resolve_bf16
from .prompts import render
from .rewards import get_reward, get_verifier
from . import distributed, tracking
from .rollout import (Batch, Rollouts, SamplingParams, autocast, broadcast, collate, engine_kind, make_engine,
                      mask_positions)

STATE_FILE = "trainer_state.pt"
LOCK_FILE = ".lock"


def VLLMEngineType() -> type:
    """The colocated vLLM engine class (its module imports vLLM only when an engine is built)."""
    from .vllm_engine import VLLMEngine

    return VLLMEngine


def _subset(r: Rollouts, rows: list[int]) -> Rollouts:
    """The rows ``rows`` of ``r`` (prompt and completion ids only: what :meth:`Trainer.micro_batches` orders by)."""
    return Rollouts(prompt_ids=[r.prompt_ids[i] for i in rows], completion_ids=[r.completion_ids[i] for i in rows],
                    loss_mask=[], advantages=[], rewards=[], correct=[], group=[])


def group_seed(seed: int, step: int, prompt: tuple, occurrence: int) -> int:
    """The sampling seed of one prompt group: from the run's seed, the step, the prompt's tokens and which
    occurrence of that prompt in the call it is; independent of the rank that samples it."""
    digest = hashlib.sha256(f"{seed}|{step}|{occurrence}|{','.join(map(str, prompt))}".encode()).digest()
    return int.from_bytes(digest[:4], "little") % 2**31


class CheckpointError(RuntimeError):
    pass


class RunLockedError(RuntimeError):
    pass


@contextlib.contextmanager
def run_lock(out_dir: Path):
    """Hold ``out_dir/.lock`` (an OS file lock, released when the process ends however it ends) while a run
    writes ``out_dir``; a second run on the same directory fails at once naming the PID that holds it."""
    import fcntl

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_FILE
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise RunLockedError(f"{out_dir} is being written by another training process (PID {holder}, lock "
                             f"{path}); wait for it to finish or stop it, then rerun") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.seek(0)
        handle.truncate()
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


class Method:
    """Single-turn RL over groups of completions per prompt; subclasses define advantages.

    Override ``advantages`` (most methods), ``collect`` (agents, replay), ``token_loss``
    (shaped or unclipped objectives), ``after_update`` (a co-trained reward model) or ``setup``
    (one-off work before the first step, kept out of the per-step timings).
    """

    Options = None  # a dataclass of method-specific options (TrainConfig.algo)

    def __init__(self, trainer: "Trainer"):
        self.trainer, self.cfg = trainer, trainer.cfg
        self.options = self.Options(**self.cfg.algo) if self.Options else None

    @classmethod
    def batch_description(cls, cfg: TrainConfig) -> str:
        """What one training step learns from, for the report's settings table."""
        return f"{cfg.prompts_per_step} prompts × {cfg.group_size} samples"

    def collect(self, step: int) -> Rollouts:
        t, cfg = self.trainer, self.cfg
        records = t.records_for_step(step, cfg.prompts_per_step)
        prompt_ids = [t.prompt_ids(rec) for rec in records]
        completions = t.generate(prompt_ids, cfg.group_size)
        expanded = [rec for rec in records for _ in range(cfg.group_size)]
        texts = t.decode(completions)
        rewards = [t.reward_fn(text, rec["answers"]) for text, rec in zip(texts, expanded)]
        correct = [t.verifier(text, rec["answers"]) for text, rec in zip(texts, expanded)]
        grouped = torch.tensor(rewards, dtype=torch.float).view(len(records), cfg.group_size)
        advantages = self.advantages(grouped).flatten().tolist()
        return Rollouts(
            prompt_ids=[p for p in prompt_ids for _ in range(cfg.group_size)], completion_ids=completions,
            loss_mask=[[1] * len(c) for c in completions], advantages=broadcast(advantages, completions),
            rewards=rewards, correct=correct, group=[i // cfg.group_size for i in range(len(completions))],
            texts=texts, prompts=[rec["prompt"] for rec in expanded],
        )

    def advantages(self, rewards: torch.Tensor) -> torch.Tensor:
        """``[prompts, group]`` rewards -> advantages of the same shape."""
        raise NotImplementedError

    def token_loss(self, batch: Batch, logp, old_logp, ref_logp) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.cfg
        loss, clipped = clipped_surrogate(logp, old_logp, batch.advantages, cfg.clip_eps_low, cfg.clip_eps_high)
        stats = {"clip_frac": masked_mean(clipped, batch.loss_mask)}
        if ref_logp is not None:
            kl = kl_penalty(logp, ref_logp, cfg.kl_estimator)
            loss = loss + cfg.kl_coef * kl
            stats["kl"] = masked_mean(kl, batch.loss_mask)
        return loss, stats

    def setup(self) -> None:
        """Called once before the first step this process runs (after a resume has loaded state)."""

    def after_update(self, rollouts: Rollouts, step: int) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class Trainer:
    def __init__(self, cfg: TrainConfig, out_dir: str | Path, resume: bool = False):
        from .algos import get_method

        self.cfg, self.out = cfg, Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.world = distributed.setup()  # one process, or the torchrun world (suite/distributed.py)
        self.device = (distributed.device_for(self.world) if self.world.distributed
                       else torch.device("cuda" if torch.cuda.is_available() else "cpu"))
        self.bf16 = resolve_bf16(cfg.bf16, self.device)  # bf16: auto -> native on this device or not
        if self.world.is_main:
            tqdm.write(precision_line(cfg.bf16, self.device), file=sys.stderr)
        self.sharded = cfg.fsdp is True or (cfg.fsdp == "auto" and self.world.distributed)
        # sampling seeded per prompt group: always with several ranks, and with vLLM (its requests take a seed each,
        # so a resumed GPU run repeats its samples); one process with HF generation keeps torch's per-step stream
        self.group_seeding = cfg.generation_seed == "group" or (
            cfg.generation_seed == "auto" and (self.world.distributed or engine_kind(cfg.engine) == "vllm"))
        self._check_world()
        # the live-metric sinks (train.report_to), checked before any model loads: a missing package stops here
        self.sinks = tracking.resolve(cfg.report_to, cfg.experiment)
        self.start_step = 0
        self._step = 0
        checkpoint, state, loaded = self._resumable_checkpoint() if resume else (None, None, None)
        start = self.start_model()
        self.policy, self.tokenizer = loaded or load_model(start)
        self.policy.to(self.device).train()
        self.policy.config.use_cache = False
        if cfg.gradient_checkpointing:
            self.policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.tokenizer.padding_side = "left"
        model_path = str(checkpoint) if checkpoint else resolve_model(start)
        kind = engine_kind(cfg.engine)
        # the model HF generation samples from: the policy itself, or (sharded) an unsharded copy refreshed from
        # the gathered weights after each update (generate() on shards would need every rank in every step)
        self.gen_model = None
        if self.sharded and kind == "hf":
            self.gen_model = copy.deepcopy(self.policy).to(torch.bfloat16 if self.bf16 else torch.float32)
            self.gen_model.eval().requires_grad_(False)
            if cfg.gradient_checkpointing:
                self.gen_model.gradient_checkpointing_disable()
        if self.sharded and kind == "vllm":  # vLLM first (sleeping), before the optimizer state takes the memory
            self.engine = self._make_engine(kind, model_path)
        if self.sharded:
            distributed.shard(self.policy, bf16=self.bf16 and self.device.type == "cuda", offload=cfg.fsdp_cpu_offload)
        self.ref = None
        if cfg.kl_coef > 0:
            self.ref, _ = load_model(start)
            self.ref.to(self.device).eval().requires_grad_(False)
            if self.sharded:
                distributed.shard(self.ref, bf16=self.bf16 and self.device.type == "cuda", offload=cfg.fsdp_cpu_offload)
        # fused: one kernel, not a loop over tensors (an unsharded model; FSDP's DTensor shards take the default)
        self.optimizer = torch.optim.AdamW(self.policy.parameters(), lr=cfg.lr, betas=cfg.adam_betas,
                                           weight_decay=cfg.weight_decay, **({} if self.sharded else {"fused": True}))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        if not (self.sharded and kind == "vllm"):
            self.engine = self._make_engine(kind, model_path)
        self.reward_fn, self.verifier = get_reward(cfg.reward), get_verifier(cfg.verifier)
        self.records = load_records(cfg.train_dataset, cfg.train_split, cfg.data_dir)
        self.method = get_method(cfg.method)(self)
        self._prompt_cache: dict[str, list[int]] = {}
        self._perms: dict[int, list[int]] = {}
        if state is not None:
            self._load_state(state)

    def start_model(self) -> str:
        """What training starts from (and the KL term's reference): ``train.model``, or with ``train.init_from`` the
        final weights of that sibling run (``<runs>/<init_from>/final``, written when it finished)."""
        cfg = self.cfg
        if not cfg.init_from:
            return cfg.model
        final = self.out.parent / cfg.init_from / "final"
        if not (final / "config.json").is_file():
            raise FileNotFoundError(f"experiment {cfg.experiment!r}: train.init_from = {cfg.init_from!r}, but "
                                    f"{final} holds no finished model; train {cfg.init_from!r} first (the workflow "
                                    "orders the two runs)")
        return str(final)

    def _make_engine(self, kind: str, model_path: str):
        cfg = self.cfg
        vllm = dict(gpu_memory_utilization=cfg.vllm_gpu_memory_utilization, max_model_len=cfg.vllm_max_model_len,
                    tensor_parallel_size=cfg.vllm_tensor_parallel_size, enable_sleep_mode=cfg.vllm_enable_sleep_mode)
        return make_engine(kind, self.gen_model if self.gen_model is not None else self.policy, self.tokenizer,
                           model_path, batch_size=cfg.generation_batch_size, bf16=self.bf16 and self.gen_model is None,
                           seed=cfg.seed, vllm_options=vllm)

    def _check_world(self) -> None:
        """Refuse what N > 1 ranks cannot run (suite/distributed.py; README, distributed training)."""
        from .algos import get_method

        if not self.world.distributed:
            return
        cfg = self.cfg
        refused = getattr(get_method(cfg.method), "distributed_refusal", None)
        if refused:
            raise ValueError(f"method {cfg.method!r} does not run on {self.world.size} ranks yet: {refused}; "
                             "train it with one process")
        if not self.sharded:
            raise ValueError(f"train.fsdp = false with {self.world.size} ranks: several ranks train through FSDP2; "
                             "set fsdp: auto (or true)")
        if self.world.size % cfg.vllm_tensor_parallel_size:
            raise ValueError(f"train.vllm_tensor_parallel_size = {cfg.vllm_tensor_parallel_size} does not divide the "
                             f"{self.world.size} ranks")
        if cfg.prompts_per_step < self.world.size:
            raise ValueError(f"train.prompts_per_step = {cfg.prompts_per_step} with {self.world.size} ranks: each rank "
                             "trains whole prompt groups, so it needs at least one; raise prompts_per_step or use "
                             "fewer ranks")
        if not self.group_seeding:
            raise ValueError(f"train.generation_seed = {cfg.generation_seed!r} with {self.world.size} ranks: each rank "
                             "samples its own prompt groups, seeded per group; set generation_seed: auto (or group)")

    # -- data and generation -------------------------------------------------
    def records_for_step(self, step: int, n: int) -> list[dict]:
        """The ``n`` records of ``step``: consecutive slices of per-epoch permutations."""
        out = []
        for i in range(step * n, (step + 1) * n):
            epoch, pos = divmod(i, len(self.records))
            if epoch not in self._perms:
                perm = list(range(len(self.records)))
                random.Random(f"{self.cfg.seed}-epoch-{epoch}").shuffle(perm)
                self._perms = {epoch: perm}
            out.append(self.records[self._perms[epoch][pos]])
        return out

    def prompt_ids(self, record: dict, template: str | None = None) -> list[int]:
        key = f"{template}|{record['id']}"
        if key not in self._prompt_cache:
            content = render(template or self.cfg.prompt_template, record["prompt"])
            self._prompt_cache[key] = self.chat_ids([{"role": "user", "content": content}])
        return self._prompt_cache[key]

    def chat_ids(self, messages: list[dict]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids[-self.cfg.max_prompt_tokens:]

    def generate(self, prompt_ids: list[list[int]], n: int, max_new_tokens: int | None = None,
                 params: SamplingParams | None = None) -> list[list[int]]:
        """``n`` completions per prompt, prompt-major. With ``generation_seed: group`` (always with several ranks)
        each run of identical consecutive prompts (a prompt group) is sampled with its own seed, from (seed, step,
        the prompt's tokens, which run of that prompt it is): the same samples whichever rank draws them. Several
        ranks share the runs (whole groups each) and gather the completions, so every rank returns all of them.
        ``params``: a method's own sampling settings (then ``n`` and ``max_new_tokens`` are its)."""
        if params is None:
            params = SamplingParams(max_new_tokens=max_new_tokens or self.cfg.max_new_tokens,
                                    temperature=self.cfg.temperature, top_p=self.cfg.top_p, n=n)
        if not self.group_seeding:
            return self.engine.generate(prompt_ids, params)
        runs: list[tuple[int, int, int]] = []  # (start, end, seed)
        seen: dict[tuple, int] = {}
        start = 0
        for i in range(1, len(prompt_ids) + 1):
            if i == len(prompt_ids) or prompt_ids[i] != prompt_ids[start]:
                key = tuple(prompt_ids[start])
                seen[key] = seen.get(key, -1) + 1
                runs.append((start, i, group_seed(self.cfg.seed, self._step, key, seen[key])))
                start = i
        mine: list[list[int]] = []
        devices = [self.device] if self.device.type == "cuda" else []
        tp = self.cfg.vllm_tensor_parallel_size if isinstance(self.engine, VLLMEngineType()) else 1
        share = [runs[k] for k in distributed.generation_share(len(runs), self.world, tp)]
        if hasattr(self.engine, "generate_runs"):  # vLLM: every group's seeded requests in one call
            for part in self.engine.generate_runs([(prompt_ids[b:e], seed) for b, e, seed in share], params):
                mine.extend(part)
        else:  # HF: one call per group, torch's stream seeded by the group (and restored after)
            for begin, end, seed in share:
                with torch.random.fork_rng(devices=devices):
                    torch.manual_seed(seed)
                    mine.extend(self.engine.generate(prompt_ids[begin:end], dataclasses.replace(params, seed=seed)))
        parts = self.world.all_gather_object(mine)
        return [c for rank, part in enumerate(parts) if rank % tp == 0 for c in part]  # one copy per vLLM engine

    def decode(self, completions: list[list[int]]) -> list[str]:
        return self.tokenizer.batch_decode(completions, skip_special_tokens=True)

    # -- the update ----------------------------------------------------------
    def completion_logprobs(self, model, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token log-probs (and entropies) of the batch's completions under ``model``.

        Rows that answer the same prompt (a GRPO group) share one pass over it: the prompt's keys and values
        are computed once per distinct prompt and gathered for its rows, gradients included, so the prompt
        costs 1/G of the compute. Same numbers as one pass over each row's full sequence (tests/test_trainer.py).
        """
        width = batch.completion_ids.shape[1]
        with autocast(self.device, self.bf16), attention(model, cpu_attention(self.device, batch.input_ids.shape[1])):
            if batch.prompt_of_row is None:
                logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                               position_ids=batch.position_ids, use_cache=False, logits_to_keep=width + 1).logits
            else:
                prompt_width = batch.distinct_prompts.shape[1]
                prompt = model(input_ids=batch.distinct_prompts, attention_mask=batch.distinct_prompt_mask,
                               position_ids=mask_positions(batch.distinct_prompt_mask),
                               use_cache=True, logits_to_keep=1)
                cache = prompt.past_key_values
                cache.reorder_cache(batch.prompt_of_row)  # index_select per layer: one copy per row, differentiable
                rest = model(input_ids=batch.completion_ids, attention_mask=batch.attention_mask,
                             position_ids=batch.position_ids[:, prompt_width:], past_key_values=cache,
                             use_cache=True, logits_to_keep=width)
                logits = torch.cat([prompt.logits[batch.prompt_of_row], rest.logits], dim=1)
        return selected_logprobs_and_entropy(logits[:, :-1] / self.cfg.temperature, batch.completion_ids)

    def micro_batches(self, r: Rollouts) -> list[list[int]]:
        """Rows chunked in an order that keeps the rows of one prompt together (their prompt is computed once,
        :meth:`completion_logprobs`) and puts prompts of similar length side by side (little padding): by the
        prompt's longest row, then the prompt, then completion length."""
        longest: dict[tuple, int] = {}
        for p, c in zip(r.prompt_ids, r.completion_ids):
            longest[tuple(p)] = max(longest.get(tuple(p), 0), len(p) + len(c))
        order = sorted(range(len(r)), key=lambda i: (longest[tuple(r.prompt_ids[i])], r.prompt_ids[i],
                                                     len(r.completion_ids[i])))
        size = self.cfg.micro_batch_size
        return [order[i:i + size] for i in range(0, len(order), size)]

    def local_rows(self, r: Rollouts) -> list[int]:
        """This rank's rows: the rows of its contiguous share of the step's groups (all rows with one process)."""
        if not self.world.distributed:
            return list(range(len(r)))
        groups = list(dict.fromkeys(r.group))
        mine = {groups[k] for k in self.world.share(len(groups))}
        return [i for i in range(len(r)) if r.group[i] in mine]

    def _rank_micro_batches(self, r: Rollouts, rows: list[int]) -> list[tuple[list[int], bool]]:
        """(rows, real) per micro-batch of ``rows``. Under FSDP every forward and backward is a collective, so a rank
        with fewer micro-batches than another runs extra ones over its first rows that contribute nothing."""
        if len(rows) == len(r):
            sub = self.micro_batches(r)
        else:
            sub = [[rows[i] for i in mb] for mb in self.micro_batches(_subset(r, rows))]
        out = [(mb, True) for mb in sub]
        if self.sharded:
            most = self.world.max_int(len(out))
            stand_in = out[0][0] if out else (rows[:1] or [0])  # a rank without rows borrows row 0 (adds nothing)
            out += [(stand_in, False)] * (most - len(out))
        return out

    @torch.no_grad()
    def fill_old_logprobs(self, r: Rollouts, rows: list[int] | None = None) -> None:
        """Record log-probs under the current policy for rows without them (ppo_epochs > 1)."""
        old = r.old_logp or [None] * len(r)
        for mb, real in self._rank_micro_batches(r, list(range(len(r))) if rows is None else rows):
            missing = [i for i in mb if old[i] is None] if real else []
            if missing or self.sharded:  # sharded: every rank runs the forward, needed or not (a collective)
                batch = collate(r, missing or mb, self.tokenizer.pad_token_id).to(self.device)
                logp, _ = self.completion_logprobs(self.policy, batch)
                for j, i in enumerate(missing):
                    old[i] = logp[j, :len(r.completion_ids[i])].tolist()
        r.old_logp = old

    def update(self, r: Rollouts) -> dict[str, float]:
        """One update over the step's rollouts. Every rank holds all of them (:meth:`generate` gathers), trains on its
        groups' rows (:meth:`local_rows`), and normalises by the whole batch's counts: the sum over ranks of their
        losses is the one-process loss, and FSDP sums the gradients."""
        cfg = self.cfg
        total_tokens = float(sum(sum(m) for m in r.loss_mask))  # the whole batch's, on every rank
        if total_tokens == 0:  # nothing to learn from (SFT without a correct sample): no optimizer step at all, so
            self.scheduler.step()  # AdamW's step count, moments and weights (decay included) stay as they were
            return {"loss": 0.0, "grad_norm": 0.0, "update_skipped": 1.0}
        rows = self.local_rows(r)
        if cfg.ppo_epochs > 1:
            self.fill_old_logprobs(r, rows)
        sums: dict[str, float] = {}
        grad_norm = 0.0
        for _ in range(cfg.ppo_epochs):
            self.optimizer.zero_grad(set_to_none=True)
            for mb, real in self._rank_micro_batches(r, rows):
                batch = collate(r, mb, self.tokenizer.pad_token_id).to(self.device)
                if cfg.gradient_checkpointing:  # HF turns the cache off under checkpointing: one pass per row
                    batch.prompt_of_row = None
                logp, entropy = self.completion_logprobs(self.policy, batch)
                batch.entropy = entropy.detach()  # for methods that log entropy by row kind
                old = torch.where(batch.has_old_logp[:, None], batch.old_logp, logp.detach())
                ref_logp = None
                if self.ref is not None:
                    with torch.no_grad():
                        ref_logp, _ = self.completion_logprobs(self.ref, batch)
                if not real:  # a stand-in micro-batch (see _rank_micro_batches): joins the collectives, adds 0
                    self.backward(logp.sum() * 0.0, batch)
                    continue
                per_token, stats = self.method.token_loss(batch, logp, old, ref_logp)
                loss = aggregate(per_token, batch.loss_mask, cfg.loss_agg, total_tokens=total_tokens,
                                 total_seqs=len(r), max_len=cfg.max_new_tokens, row_weight=batch.row_weight)
                # FSDP averages gradients over ranks; the loss is already the batch's share, so undo the average
                self.backward(loss * self.world.size if self.sharded and self.world.size > 1 else loss, batch)
                # per-token stats are averaged over the batch's trained tokens and the epochs
                weight = float(batch.loss_mask.sum()) / max(total_tokens, 1.0) / cfg.ppo_epochs
                stats["entropy"] = masked_mean(entropy, batch.loss_mask)
                for key, value in stats.items():
                    sums[key] = sums.get(key, 0.0) + value * weight
                sums["loss"] = sums.get("loss", 0.0) + loss.item() / cfg.ppo_epochs
            if self.sharded:
                grad_norm = distributed.clip_grad_norm(self.policy, cfg.max_grad_norm)
            else:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm))
            self.optimizer.step()
        self.scheduler.step()
        self._sync_engine()
        return {**self.world.sum_dict(sums), "grad_norm": grad_norm}

    def backward(self, loss: torch.Tensor, batch: Batch) -> None:
        """``loss.backward()``; under gradient checkpointing inside the attention implementation the forward pass
        used (completion_logprobs picks one per length on the CPU), so the recomputed layers match the saved ones."""
        if not self.cfg.gradient_checkpointing:
            loss.backward()
            return
        with attention(self.policy, cpu_attention(self.device, batch.input_ids.shape[1])):
            loss.backward()

    def _sync_engine(self) -> None:
        if self.gen_model is not None:  # sharded policy, HF generation: refresh the unsharded sampling copy,
            target = self.gen_model.state_dict()  # one gathered tensor at a time (no second full fp32 copy)
            with torch.no_grad():
                for name, full in distributed.iter_full_tensors(self.policy):
                    target[name].copy_(full)
        self.engine.sync_weights(self.gen_model if self.gen_model is not None else self.policy)

    # -- the loop ------------------------------------------------------------
    def run(self, max_steps: int | None = None) -> dict[str, Any]:
        cfg = self.cfg
        end = cfg.steps if max_steps is None else min(cfg.steps, max_steps)
        metrics_path = self.out / "metrics.jsonl"
        main = self.world.is_main  # rank 0 alone writes logs, samples and checkpoints
        if main:
            self._truncate_log(metrics_path)
            self._truncate_log(self.out / "samples.jsonl")
        bar = tqdm(range(self.start_step, end), desc=f"train {cfg.experiment}", initial=self.start_step,
                   total=cfg.steps, dynamic_ncols=True, disable=not main)
        row: dict[str, Any] = {}
        if self.start_step < end:
            self.method.setup()
        # TensorBoard / W&B (train.report_to) get each row metrics.jsonl gets, on rank 0; closed however the loop ends
        sinks = tracking.MetricSinks(self.sinks if main and self.start_step < end else {}, self.out, cfg,
                                     self.start_step)
        try:
            for step in bar:
                self._seed(step)
                t0 = time.perf_counter()
                rollouts = self.method.collect(step)
                t1 = time.perf_counter()
                update_stats = self.update(rollouts)
                extra = self.method.after_update(rollouts, step)
                t2 = time.perf_counter()
                row = self._metrics(step, rollouts, update_stats, extra, t0, t1, t2)
                if main:
                    append_jsonl(metrics_path, row)
                    sinks.log(row)
                    self._log_samples(step, rollouts)
                bar.set_postfix(reward=f"{row['reward']:.3f}", acc=f"{row['accuracy']:.3f}",
                                s=f"{row['step_time']:.1f}")
                if (step + 1) % cfg.save_every == 0 and step + 1 < cfg.steps:
                    self.save_checkpoint(step + 1)
        finally:
            sinks.close()
        if end == cfg.steps:
            self.save_final()
        return row

    def _metrics(self, step, r: Rollouts, update_stats, extra, t0, t1, t2) -> dict[str, Any]:
        gen_tokens = sum(len(c) for c in r.completion_ids)
        all_tokens = gen_tokens + sum(len(p) for p in r.prompt_ids)
        truncated = sum(len(c) >= self.cfg.max_new_tokens for c in r.completion_ids) / len(r)
        return {
            "step": step + 1,
            "reward": float(np.mean(r.rewards)), "reward_std": float(np.std(r.rewards)),
            "accuracy": float(np.mean(r.correct)), "response_length": gen_tokens / len(r),
            "truncated_frac": truncated, "lr": self.scheduler.get_last_lr()[0],
            **update_stats, **r.metrics, **extra,
            "gen_time": t1 - t0, "update_time": t2 - t1, "step_time": t2 - t0,
            "gen_tokens_per_s": gen_tokens / max(t1 - t0, 1e-9), "tokens_per_s": all_tokens / max(t2 - t0, 1e-9),
        }

    def _log_samples(self, step: int, r: Rollouts) -> None:
        for i in range(min(self.cfg.log_completions, len(r))):
            append_jsonl(self.out / "samples.jsonl", {"step": step + 1, "prompt": r.prompts[i] if r.prompts else None,
                                                     "completion": r.texts[i] if r.texts else None,
                                                     "reward": r.rewards[i], "correct": r.correct[i]})

    def _seed(self, step: int) -> None:
        """Every rank seeds the same stream from (seed, step): what the ranks decide alike (ExGRPO's replay draw, the
        step's prompts) stays alike; sampling is seeded per prompt group when ranks share it (:meth:`generate`)."""
        self._step = step
        seed = (self.cfg.seed * 1_000_003 + step) % 2**31
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    def _lr_factor(self, step: int) -> float:
        cfg = self.cfg
        if step < cfg.lr_warmup_steps:
            return (step + 1) / (cfg.lr_warmup_steps + 1)
        if cfg.lr_schedule == "cosine":
            progress = (step - cfg.lr_warmup_steps) / max(1, cfg.steps - cfg.lr_warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        return 1.0

    # -- checkpoints ---------------------------------------------------------
    def checkpoint_dir(self, step: int) -> Path:
        return self.out / "checkpoints" / f"step_{step:06d}"

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first: ``step_N`` directories (not a save cut short, ``step_N.partial``)."""
        return sorted(p for p in (self.out / "checkpoints").glob("step_*")
                      if re.fullmatch(r"step_\d+", p.name) and (p / STATE_FILE).is_file())

    def _resumable_checkpoint(self) -> tuple[Path | None, dict | None, tuple | None]:
        """The latest loadable checkpoint of this config: (directory, trainer state, (model, tokenizer)).

        A checkpoint whose state or weights cannot be read (a truncated file) is skipped with a warning for
        the one before it; if checkpoints exist and none can be read, the run stops naming them rather than
        silently starting over. A checkpoint of another config is moved aside, not loaded.
        """
        candidates = self.checkpoints()
        if not candidates:
            return None, None, None
        broken = []

        def skip(what: Path, err: Exception) -> None:
            broken.append(f"{what}: {type(err).__name__}: {err}")
            tqdm.write(f"warning: cannot read {what} ({type(err).__name__}); trying the checkpoint before it",
                       file=sys.stderr)

        for checkpoint in reversed(candidates):
            try:
                state = torch.load(checkpoint / STATE_FILE, weights_only=False)
                written_by = state["config_hash"]
            except Exception as err:  # noqa: BLE001 (any unreadable file is the same case)
                skip(checkpoint / STATE_FILE, err)
                continue
            if written_by != self.cfg.hash():
                self._move_stale(checkpoint, written_by)
                return None, None, None
            try:
                loaded = load_model(str(checkpoint))
            except Exception as err:  # noqa: BLE001
                skip(checkpoint, err)
                continue
            if broken:
                tqdm.write(f"resuming from {checkpoint}, the latest checkpoint that loads", file=sys.stderr)
            return checkpoint, state, loaded
        raise CheckpointError("no checkpoint of this run can be loaded:\n  " + "\n  ".join(broken) +
                              f"\nDelete {self.out / 'checkpoints'} to start over, or restore a good copy.")

    def _move_stale(self, checkpoint: Path, written_by: str) -> None:
        stale = self.out / "checkpoints.stale"
        if self.world.is_main:
            shutil.rmtree(stale, ignore_errors=True)
            (self.out / "checkpoints").rename(stale)
            tqdm.write(f"{checkpoint} came from another config ({written_by}); moved to {stale}, starting fresh")
            for log in ("metrics.jsonl", "samples.jsonl", "tensorboard", "wandb"):  # the live metrics' too
                if (self.out / log).exists():
                    (self.out / log).rename(stale / log)
        self.world.barrier()

    def _save_model(self, final: Path, trainer_state: dict | None = None) -> None:
        """Write the policy (and optionally the trainer state) beside ``final``, then swap it in. Sharded: the full
        weights are gathered to rank 0 (every rank takes part), which alone writes; the others wait for it."""
        full = distributed.full_state_dict(self.policy) if self.sharded else None
        if self.world.is_main:
            tmp = final.with_name(final.name + ".partial")
            shutil.rmtree(tmp, ignore_errors=True)
            if full is None:
                self.policy.save_pretrained(tmp)
            else:  # without tied duplicates (lm_head.weight = embed_tokens.weight), as an unsharded save writes
                tied = ({n for n, _ in self.policy.named_parameters(remove_duplicate=False)}
                        - {n for n, _ in self.policy.named_parameters()})
                self.policy.save_pretrained(tmp, state_dict={k: v for k, v in full.items() if k not in tied})
            self.tokenizer.save_pretrained(tmp)
            if trainer_state is not None:
                torch.save(trainer_state, tmp / STATE_FILE)
            replace_dir(tmp, final)
        self.world.barrier()

    def save_checkpoint(self, step: int) -> Path:
        final = self.checkpoint_dir(step)
        self._save_model(final, {
            "step": step, "optimizer": distributed.optimizer_state(self.policy, self.optimizer),
            "scheduler": self.scheduler.state_dict(),
            "method": self.method.state_dict(), "config_hash": self.cfg.hash(),
            "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
        })
        if self.world.is_main:
            for old in self.checkpoints()[:-self.cfg.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
            for cut_short in (self.out / "checkpoints").glob("step_*.partial"):
                shutil.rmtree(cut_short, ignore_errors=True)
        self.world.barrier()
        return final

    def _load_state(self, state: dict) -> None:
        distributed.load_optimizer_state(self.policy, self.optimizer, state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.method.load_state_dict(state["method"])
        random.setstate(state["rng"]["python"])
        np.random.set_state(state["rng"]["numpy"])
        torch.set_rng_state(state["rng"]["torch"])
        self.start_step = state["step"]

    def _truncate_log(self, path: Path) -> None:
        """Drop log rows past the step we (re)start from, so a resumed run logs each step once."""
        if path.is_file():
            write_jsonl(path, [row for row in read_jsonl(path) if row["step"] <= self.start_step])

    def save_final(self) -> None:
        self._save_model(self.out / "final")


def train(experiment, out_dir: str | Path, resume: bool = False, max_steps: int | None = None) -> dict:
    """Train one experiment; write ``done.json`` when the last step is saved.

    The run directory is locked while this runs (:func:`run_lock`). With ``resume``, a run whose
    ``done.json`` matches this config is complete: nothing is retrained.
    """
    cfg: TrainConfig = experiment.train if hasattr(experiment, "train") else experiment
    if cfg is None:
        raise ValueError(f"experiment {experiment.name!r} has method {experiment.method!r}, which is not trained")
    out_dir = Path(out_dir)
    main = distributed.setup().is_main  # under torchrun rank 0 holds the lock and writes done.json
    with run_lock(out_dir) if main else contextlib.nullcontext():
        done = out_dir / "done.json"
        if resume and done.is_file() and (out_dir / "final").is_dir():
            try:
                record = json.loads(done.read_text())
            except ValueError:
                record = {}
            if record.get("config_hash") == cfg.hash():
                tqdm.write(f"{out_dir}: already complete ({cfg.steps} steps, {done}); nothing to do. "
                           "Delete the directory to train it again.", file=sys.stderr)
                return record.get("last_metrics", {})
        start = time.time()
        trainer = Trainer(cfg, out_dir, resume=resume)
        last = trainer.run(max_steps=max_steps)
        if main and (out_dir / "final").is_dir() and (max_steps is None or max_steps >= cfg.steps):
            write_json(done, {"experiment": cfg.experiment, "steps": cfg.steps,
                              "config_hash": cfg.hash(), "last_metrics": last,
                              "wall_time_s": time.time() - start, "config": copy.deepcopy(vars(cfg))})
            # the run is complete and final/ is its result: drop the resume state (1.6 GB per checkpoint at 135M)
            shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    return last
