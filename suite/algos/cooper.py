"""Cooper (Hong et al., 2025): co-optimising the policy and a reference-based reward model.

The policy is trained with GRPO on rewards from a learned reward model (RM,
:mod:`suite.rewards.reward_model`) that reads the question, the reference answer and the
completion; the RM itself is updated at every step on pairs that the rule-based verifier
vouches for. One training step, in the issue's order:

1. **rollouts**: ``group_size`` completions per prompt from the policy;
2. **RM scores**: ``r_i = σ(RM(q, a, o_i))`` from the RM as it is *before* this step's update;
3. **GRPO advantages** from those rewards: ``A_i = (r_i - mean r) / (std r + ε)`` per group;
4. **RM update** (all inside :meth:`Cooper.collect`, after step 3): per question, the positive
   is the first rollout the verifier (math-verify) accepts; the negative is a verified-wrong
   rewrite of it (:mod:`suite.rewards.negatives`: assistant model, then rule-based fallback);
   questions without an accepted rollout are skipped; one AdamW step (the RM's own optimiser and
   learning rate) on ``-mean log σ(s⁺ - s⁻)``;
5. **policy update**: the trainer's shared clipped-surrogate + KL update with the advantages of
   step 3 (run by the trainer after ``collect`` returns). The updated RM scores the next step.

With ``update_rm: false`` step 4 is skipped: the *static reward model* baseline. The rule-based
baseline is the plain ``grpo`` method with ``reward: math_verify``.

Before the first step the RM is pretrained by hybrid annotation (:func:`pretrain_reward_model`):
base-policy samples labelled by the verifier plus negatives rewritten from the correct ones, BCE.
The pretrained RM and the held-out pairs are cached under ``<runs_dir>/cooper_rm/<hash>`` (hash of
every setting that affects them), so the static-RM and Cooper runs of a profile start from the
same RM and pretrain once. On resume, the RM and its optimiser come from the checkpoint.

Reward hacking is logged at every step: ``reward`` (mean RM reward, the trainer's column),
``accuracy`` (the same rollouts by math-verify), ``rm_heldout_acc`` (the RM's pairwise accuracy on
held-out labelled pairs after this step's update), and the RM's reward on verified-correct and
verified-wrong rollouts.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock
from tqdm.auto import tqdm

from ..config import config_hash
from ..io import replace_dir, write_json
from ..rewards.negatives import (
    NEGATIVE_KINDS, NegativeMaker, NegativeRequest, chat_assistant, first_correct, label_samples,
    perturb_final_answer,
)
from ..rewards.reward_model import RewardModel
from ..rollout import Rollouts, SamplingParams, broadcast
from .grpo import GRPO

PRETRAIN_VERSION = 1  # bump when pretraining changes, so cached reward models are not reused


@dataclass
class CooperOptions:
    """``train.algo`` options of the ``cooper`` method (defaults: the reference code's)."""

    update_rm: bool = True  # false: the static reward-model baseline
    rm_model: str | None = None  # backbone of the RM; None = the policy's model
    rm_init: str | None = None  # a saved RM directory to start from (skips pretraining)
    rm_lr: float = 1e-5
    rm_weight_decay: float = 0.01
    rm_max_grad_norm: float = 1.0
    rm_max_length: int = 1024  # tokens; only the completion is truncated
    rm_batch_size: int = 8  # sequences per RM forward
    assistant: str = "base"  # writes negatives: "base" (the policy's initial model), "rule" (fallback only), or a model name
    negative_tries: int = 3
    negative_temperature: float = 0.7
    negative_max_new_tokens: int | None = None  # None = train.max_new_tokens
    pretrain_questions: int = 256  # training questions sampled for hybrid annotation
    pretrain_samples: int = 4  # base-policy samples per question
    pretrain_epochs: int = 3
    pretrain_lr: float = 2e-5
    heldout_questions: int = 32  # further questions whose samples give the held-out pairs
    heldout_every: int = 1  # evaluate the RM on the held-out pairs every N steps
    share_pretrained: bool = True  # cache the pretrained RM beside the run directories
    save_rm: bool = True  # write the co-trained RM to <run>/final_rm at the end (when update_rm)

    def __post_init__(self):
        def check(name, ok, why):
            if not ok:
                raise ValueError(f"cooper option {name} = {getattr(self, name)!r} {why}")

        for name in ("rm_lr", "pretrain_lr"):
            check(name, 0 < getattr(self, name) < 1, "must be in (0, 1)")
        check("rm_weight_decay", self.rm_weight_decay >= 0, "must be >= 0")
        check("rm_max_grad_norm", self.rm_max_grad_norm > 0, "must be > 0")
        check("rm_max_length", self.rm_max_length >= 32, "must be >= 32")
        for name in ("rm_batch_size", "pretrain_samples", "heldout_every"):
            check(name, getattr(self, name) >= 1, "must be >= 1")
        check("pretrain_questions", self.pretrain_questions >= (0 if self.rm_init else 1),
              "must be >= 1 (or give rm_init)")
        for name in ("pretrain_epochs", "heldout_questions"):
            check(name, getattr(self, name) >= 0, "must be >= 0")
        check("negative_tries", 0 <= self.negative_tries <= 10, "must be in [0, 10]")
        check("negative_temperature", self.negative_temperature > 0, "must be > 0")
        check("negative_max_new_tokens", self.negative_max_new_tokens is None or self.negative_max_new_tokens >= 1,
              "must be >= 1 or null")
        check("assistant", isinstance(self.assistant, str) and bool(self.assistant.strip()),
              "must be 'base', 'rule' or a model name")
        for name in ("rm_model", "rm_init"):
            value = getattr(self, name)
            check(name, value is None or (isinstance(value, str) and bool(value.strip())), "must be a name or null")


class Cooper(GRPO):
    # the paper's GRPO objective: (1/G) sum_i (1/|o_i|) sum_t, with std-normalised advantages
    defaults = {"loss_agg": "seq-mean-token-mean", "scale_rewards": True}
    # several ranks: the reward model is trained in after_update by its own unsharded optimizer on every rank;
    # replicated training is not checked to stay identical across ranks yet
    distributed_refusal = "its co-trained reward model is not sharded or checked at N > 1"
    Options = CooperOptions

    def __init__(self, trainer):
        super().__init__(trainer)
        self.rm: RewardModel | None = None
        self.heldout: dict[str, list] | None = None  # {"positives": [...], "negatives": [...], "kinds": [...]}
        self.pretrain_info: dict[str, Any] = {}
        self._maker: NegativeMaker | None = None
        self._static_heldout: dict[str, float] | None = None

    # -- the step ------------------------------------------------------------
    def setup(self) -> None:
        if self.rm is None:  # not restored from a checkpoint: load the cached pretrained RM, or pretrain it
            self.prepare_reward_model()

    def collect(self, step: int) -> Rollouts:
        t, cfg, o = self.trainer, self.cfg, self.options
        records = t.records_for_step(step, cfg.prompts_per_step)
        prompt_ids = [t.prompt_ids(rec) for rec in records]
        completions = t.generate(prompt_ids, cfg.group_size)  # 1. rollouts
        expanded = [rec for rec in records for _ in range(cfg.group_size)]
        group = [i // cfg.group_size for i in range(len(completions))]
        texts = t.decode(completions)
        correct = [bool(t.verifier(text, rec["answers"])) for text, rec in zip(texts, expanded)]
        triples = [(rec["prompt"], str(rec["answers"][0]), text) for text, rec in zip(texts, expanded)]
        rewards = self.rm.rewards(triples).tolist()  # 2. scores of the RM before this step's update
        grouped = torch.tensor(rewards, dtype=torch.float).view(len(records), cfg.group_size)
        advantages = self.advantages(grouped).flatten().tolist()  # 3. GRPO advantages
        metrics = reward_stats(rewards, correct)
        if o.update_rm:  # 4. RM update; the policy update (5.) follows in the trainer
            metrics.update(self.update_reward_model(step, records, texts, correct, group))
        if (step + 1) % o.heldout_every == 0:
            metrics.update(self.heldout_accuracy())
        return Rollouts(
            prompt_ids=[p for p in prompt_ids for _ in range(cfg.group_size)], completion_ids=completions,
            loss_mask=[[1] * len(c) for c in completions], advantages=broadcast(advantages, completions),
            rewards=rewards, correct=correct, group=group, texts=texts,
            prompts=[rec["prompt"] for rec in expanded], metrics=metrics,
        )

    def update_reward_model(self, step: int, records: list[dict], texts: list[str], correct: list[bool],
                            group: list[int]) -> dict[str, float]:
        """Pairs from this step's rollouts (first verified-correct positive, verified-wrong negative), one RM step."""
        positives, skipped = first_correct(correct, group)
        requests = [NegativeRequest(question=records[g]["prompt"], solution=texts[i], answers=records[g]["answers"],
                                    key=f"{self.cfg.seed}-{step}-{records[g]['id']}") for g, i in positives.items()]
        maker = self.negative_maker()
        before = dict(maker.counts)
        pos, neg = [], []
        for req, (negative, _kind) in zip(requests, maker.make(requests)):
            if negative is not None:
                ref = str(req.answers[0])
                pos.append((req.question, ref, req.solution))
                neg.append((req.question, ref, negative))
        stats = {"rm_pairs": float(len(pos)), "rm_skipped": float(len(skipped))}
        stats.update({f"neg_{k}": float(maker.counts[k] - before[k]) for k in NEGATIVE_KINDS})
        stats.update(self.rm.update_pairs(pos, neg))
        return stats

    def heldout_accuracy(self) -> dict[str, float]:
        """Pairwise accuracy of the current RM on the held-out pairs, overall and by negative kind."""
        h = self.heldout or {}
        if not h.get("positives"):
            return {}
        if not self.options.update_rm and self._static_heldout is not None:
            return dict(self._static_heldout)  # a static RM scores them the same every time
        pos = [tuple(x) for x in h["positives"]]
        neg = [tuple(x) for x in h["negatives"]]
        scores = self.rm.score(pos + neg)
        wins = (scores[:len(pos)] > scores[len(pos):]).float()
        out = {"rm_heldout_acc": float(wins.mean())}
        for kind in sorted(set(h["kinds"])):
            rows = [i for i, k in enumerate(h["kinds"]) if k == kind]
            out[f"rm_heldout_acc_{kind}"] = float(wins[rows].mean())
        if not self.options.update_rm:
            self._static_heldout = dict(out)
        return out

    def after_update(self, rollouts: Rollouts, step: int) -> dict[str, float]:
        o = self.options
        if o.update_rm and o.save_rm and step + 1 == self.cfg.steps:
            tmp = self.trainer.out / "final_rm.partial"
            self.rm.save(tmp)
            replace_dir(tmp, self.trainer.out / "final_rm")
        return {}

    # -- the reward model and the assistant -------------------------------------
    def rm_source(self) -> str:
        return self.options.rm_init or self.options.rm_model or self.cfg.model

    def build_reward_model(self, source: str) -> RewardModel:
        o = self.options
        return RewardModel.from_pretrained(source, seed=self.cfg.seed, max_length=o.rm_max_length, lr=o.rm_lr,
                                           weight_decay=o.rm_weight_decay, max_grad_norm=o.rm_max_grad_norm,
                                           batch_size=o.rm_batch_size, bf16=self.trainer.bf16, device=self.trainer.device)

    def negative_maker(self) -> NegativeMaker:
        if self._maker is None:
            self._maker = NegativeMaker(verifier=lambda text, answers: self.trainer.verifier(text, answers),
                                        assistant=self._assistant(), tries=self.options.negative_tries)
        return self._maker

    def _assistant(self):
        """The model that rewrites correct solutions into wrong ones (None: rule-based fallback only)."""
        from ..models import load_model
        from ..rollout import HFEngine

        t, cfg, o = self.trainer, self.cfg, self.options
        if o.assistant == "rule" or o.negative_tries == 0:
            return None
        if o.assistant == "base":
            model, tokenizer = (t.ref, t.tokenizer) if t.ref is not None else load_model(cfg.model)
        else:
            model, tokenizer = load_model(o.assistant)
        model.to(t.device).eval().requires_grad_(False)
        engine = HFEngine(model, tokenizer, batch_size=cfg.generation_batch_size, bf16=t.bf16)
        params = SamplingParams(max_new_tokens=o.negative_max_new_tokens or cfg.max_new_tokens,
                                temperature=o.negative_temperature, top_p=1.0)
        return chat_assistant(engine, tokenizer, params)

    def pretrain_key(self) -> str:
        t, cfg, o = self.trainer, self.cfg, self.options
        settings = {k: v for k, v in asdict(o).items() if k not in ("update_rm", "rm_lr", "heldout_every", "save_rm",
                                                                    "share_pretrained")}
        return config_hash({
            "version": PRETRAIN_VERSION, "model": cfg.model, "rm": self.rm_source(), "options": settings,
            "data": [cfg.train_dataset, cfg.train_split,
                     config_hash([[r["id"], r["prompt"], r["answers"]] for r in t.records])],
            "sampling": [cfg.prompt_template, cfg.max_prompt_tokens, cfg.max_new_tokens, cfg.temperature, cfg.top_p,
                         cfg.generation_batch_size, t.bf16, cfg.seed],
        })

    def prepare_reward_model(self) -> None:
        """Pretrain the RM (or take it from the shared cache) and load it with a fresh optimiser."""
        t, o = self.trainer, self.options
        key = self.pretrain_key()
        where = (t.out.parent / "cooper_rm" / key) if o.share_pretrained else (t.out / "rm_pretrained")
        where.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(where) + ".lock"):
            if not (where / "pretrain.json").is_file():
                tmp = where.with_name(where.name + ".partial")
                shutil.rmtree(tmp, ignore_errors=True)
                with preserved_rng(self.cfg.seed):
                    pretrain_reward_model(self, tmp)
                replace_dir(tmp, where)
        self.pretrain_info = json.loads((where / "pretrain.json").read_text())
        self.heldout = json.loads((where / "heldout.json").read_text())
        self.rm = self.build_reward_model(str(where / "model"))
        write_json(t.out / "rm_pretrain.json", {**self.pretrain_info, "cache": str(where)})

    # -- resume ----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"rm": self.rm.state_dict() if self.rm is not None else None, "heldout": self.heldout,
                "pretrain_info": self.pretrain_info,
                "negative_counts": dict(self._maker.counts) if self._maker is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("rm") is None:
            return
        self.rm = self.build_reward_model(self.rm_source())
        self.rm.load_state_dict(state["rm"])
        self.heldout, self.pretrain_info = state["heldout"], state["pretrain_info"]
        if state.get("negative_counts") is not None:
            self.negative_maker().counts.update(state["negative_counts"])


def reward_stats(rewards: list[float], correct: list[bool]) -> dict[str, float]:
    """How the RM's rewards relate to the verifier on this step's rollouts."""
    r = np.asarray(rewards, dtype=float)
    c = np.asarray(correct, dtype=bool)
    out = {"rm_rollout_agreement": float(np.mean((r > 0.5) == c))}
    if c.any():
        out["rm_reward_correct"] = float(r[c].mean())
    if (~c).any():
        out["rm_reward_wrong"] = float(r[~c].mean())
    return out


@contextlib.contextmanager
def preserved_rng(seed: int):
    """Run under a fixed seed and leave the global RNG streams as they were (pretraining done here or
    read from the cache leaves the training run's randomness the same)."""
    py, nps = random.getstate(), np.random.get_state()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(nps)


def heldout_pairs(records: list[dict], samples: list[list[str]], verifier, seed: int) -> dict[str, list]:
    """Labelled pairs of held-out questions: the first correct sample against (a) the first wrong
    sample of the same question ('sampled') and (b) its final answer changed ('perturbed')."""
    pairs: dict[str, list] = {"positives": [], "negatives": [], "kinds": []}
    for rec, texts in zip(records, samples):
        ok = [bool(verifier(x, rec["answers"])) for x in texts]
        if not any(ok):
            continue
        q, a = rec["prompt"], str(rec["answers"][0])
        positive = texts[ok.index(True)]
        negatives = []
        if not all(ok):
            negatives.append((texts[ok.index(False)], "sampled"))
        perturbed = perturb_final_answer(positive, rec["answers"], verifier, random.Random(f"{seed}-heldout-{rec['id']}"))
        if perturbed is not None:
            negatives.append((perturbed, "perturbed"))
        for text, kind in negatives:
            pairs["positives"].append([q, a, positive])
            pairs["negatives"].append([q, a, text])
            pairs["kinds"].append(kind)
    return pairs


def pretrain_reward_model(method: Cooper, out: Path) -> None:
    """Hybrid annotation and BCE pretraining; writes ``out/model``, ``out/heldout.json``, ``out/pretrain.json``.

    Questions: a seeded permutation of the training set; the first ``pretrain_questions`` are
    annotated, the next ``heldout_questions`` give the held-out pairs. Each gets ``pretrain_samples``
    completions from the base policy (the policy before any update), labelled by the verifier;
    every correct completion also yields a negative (assistant rewrite or rule-based fallback).
    """
    t, cfg, o = method.trainer, method.cfg, method.options
    start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    order = list(range(len(t.records)))
    random.Random(f"{cfg.seed}-cooper-rm").shuffle(order)
    n_pre = 0 if o.rm_init else min(o.pretrain_questions, len(order))
    n_held = min(o.heldout_questions, len(order) - n_pre)
    chosen = [t.records[i] for i in order[:n_pre + n_held]]
    tqdm.write(f"cooper: pretraining the reward model: {o.pretrain_samples} base-policy samples for each of "
               f"{n_pre} + {n_held} (held-out) questions")
    completions = t.generate([t.prompt_ids(rec) for rec in chosen], o.pretrain_samples) if chosen else []
    texts = t.decode(completions) if completions else []
    samples = [texts[i * o.pretrain_samples:(i + 1) * o.pretrain_samples] for i in range(len(chosen))]
    pre, held = chosen[:n_pre], chosen[n_pre:]

    labelled = label_samples(pre, samples[:n_pre], t.verifier)
    by_id = {rec["id"]: rec for rec in pre}
    positives = [ex for ex in labelled if ex["label"] == 1]
    requests = [NegativeRequest(question=ex["question"], solution=ex["completion"], answers=by_id[ex["record"]]["answers"],
                                key=f"{cfg.seed}-pretrain-{ex['record']}-{i}") for i, ex in enumerate(positives)]
    maker = method.negative_maker()
    before = dict(maker.counts)
    for ex, (negative, kind) in zip(positives, maker.make(requests)):
        if negative is not None:
            labelled.append({**ex, "completion": negative, "label": 0, "kind": kind})
    counts = {k: maker.counts[k] - before[k] for k in NEGATIVE_KINDS}
    maker.counts.update(before)  # the run's counters cover RL steps only

    tqdm.write(f"cooper: {len(labelled)} labelled triples ({sum(ex['label'] for ex in labelled)} positive); "
               f"negatives from positives: {counts}")
    heldout = heldout_pairs(held, samples[n_pre:], t.verifier, cfg.seed)
    rm = method.build_reward_model(method.rm_source())
    pos, neg = [tuple(x) for x in heldout["positives"]], [tuple(x) for x in heldout["negatives"]]
    acc_before = rm.pair_accuracy(pos, neg)
    losses = []
    if labelled and o.pretrain_epochs > 0 and not o.rm_init:
        losses = rm.fit_bce([(ex["question"], ex["reference"], ex["completion"]) for ex in labelled],
                            [ex["label"] for ex in labelled], epochs=o.pretrain_epochs, lr=o.pretrain_lr,
                            weight_decay=o.rm_weight_decay, seed=cfg.seed)
    acc_after = rm.pair_accuracy(pos, neg)
    tqdm.write(f"cooper: BCE loss per epoch {[round(x, 4) for x in losses]}; held-out pair accuracy "
               f"{acc_before:.3f} -> {acc_after:.3f} over {len(pos)} pairs ({time.time() - start:.0f} s)")
    rm.save(out / "model")
    write_json(out / "heldout.json", heldout)
    kinds = [ex["kind"] for ex in labelled]
    write_json(out / "pretrain.json", {
        "questions": n_pre, "samples_per_question": o.pretrain_samples, "triples": len(labelled),
        "positives": sum(ex["label"] for ex in labelled),
        "negatives_sampled": sum(1 for ex in labelled if ex["label"] == 0 and ex["kind"] == "sampled"),
        "negatives_assistant": kinds.count("assistant"), "negatives_rule": kinds.count("rule"),
        "negative_counts": counts, "bce_loss_per_epoch": losses,
        "heldout_questions": n_held, "heldout_pairs": len(pos),
        "heldout_pairs_by_kind": {k: heldout["kinds"].count(k) for k in sorted(set(heldout["kinds"]))},
        "heldout_acc_before": None if math.isnan(acc_before) else acc_before,
        "heldout_acc_after": None if math.isnan(acc_after) else acc_after,
        "rm": method.rm_source(), "time_s": time.time() - start,
    })
