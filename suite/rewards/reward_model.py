"""A reference-based reward model (Cooper's VerifyRM): one logit on a small causal LM.

The input is the question, the reference answer and the completion in one template::

    <question>{q}</question>
    <reference_answer>{a}</reference_answer>
    <completion>{o}</completion>

and the reward given to the policy is ``sigmoid(logit)``. The model is
``AutoModelForSequenceClassification`` (``num_labels=1``) built from a causal-LM
checkpoint of the same family as the policy; its score head starts from a seeded
random initialisation. The logit is read at the last token of the (left-padded) input.

Only the completion is ever truncated: question and reference are kept whole and the
completion gets the remaining ``max_length`` budget, keeping its first third and its last
two thirds (the final answer is at the end), as the reference code does with characters.

Losses (``s`` are logits):

- pretraining, binary cross-entropy on labelled triples:
  ``L = -mean(y log σ(s) + (1 - y) log(1 - σ(s)))``;
- Cooper's update on pairs (positive, negative) of one question:
  ``L = -mean(log σ(s⁺ - s⁻))``.

The model has its own AdamW optimiser and learning rate, apart from the policy's.
"""

from __future__ import annotations

import contextlib
import math
import random
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

TEMPLATE = "<question>{question}</question>\n<reference_answer>{reference}</reference_answer>\n<completion>{completion}</completion>"
_PREFIX = "<question>{question}</question>\n<reference_answer>{reference}</reference_answer>\n<completion>"
_SUFFIX = "</completion>"
MIN_COMPLETION_TOKENS = 16  # kept even when question + reference alone fill max_length

Triple = tuple[str, str, str]  # (question, reference answer, completion)


def format_input(question: str, reference: str, completion: str) -> str:
    """The reward model's input text for one (question, reference, completion) triple."""
    return TEMPLATE.format(question=question, reference=reference, completion=completion)


def bce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of logits against 0/1 labels."""
    return F.binary_cross_entropy_with_logits(logits.float(), labels.float())


def pairwise_loss(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Mean of ``-log σ(s⁺ - s⁻)`` over pairs (Bradley-Terry)."""
    return -F.logsigmoid(positive.float() - negative.float()).mean()


def truncate_middle(ids: list[int], budget: int) -> list[int]:
    """Keep the first third and the last two thirds of ``budget`` tokens."""
    if len(ids) <= budget:
        return list(ids)
    head = budget // 3
    return list(ids[:head]) + list(ids[len(ids) - (budget - head):])


class RewardModel:
    """A sequence-classification reward model with its own optimiser.

    ``score`` gives logits (no gradient), ``rewards`` their sigmoid; ``fit_bce`` pretrains on
    labelled triples; ``update_pairs`` takes one optimiser step of the pairwise loss.
    """

    def __init__(self, model, tokenizer, *, max_length: int = 1024, lr: float = 1e-5, weight_decay: float = 0.01,
                 max_grad_norm: float = 1.0, batch_size: int = 8, bf16: bool = True,
                 device: torch.device | str = "cpu"):
        self.model, self.tokenizer = model, tokenizer
        self.max_length, self.batch_size, self.max_grad_norm = max_length, batch_size, max_grad_norm
        self.bf16, self.device = bf16, torch.device(device)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id
        model.to(self.device)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, seed: int = 0, **kwargs) -> "RewardModel":
        """Build from a causal-LM name (``suite.models`` resolves it) or a saved reward-model directory.

        A fresh score head is initialised under ``seed`` (transformers' default init), so two runs
        that build the same reward model get the same weights."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from ..models import resolve_model

        path = name_or_path if (Path(name_or_path) / "config.json").is_file() else resolve_model(name_or_path)
        tokenizer = AutoTokenizer.from_pretrained(path)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.float32)
        return cls(model, tokenizer, **kwargs)

    # -- input ---------------------------------------------------------------
    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode(self, question: str, reference: str, completion: str) -> list[int]:
        """Token ids of the template; only the completion is cut to fit ``max_length``."""
        prefix = self._ids(_PREFIX.format(question=question, reference=reference))
        suffix = self._ids(_SUFFIX)
        budget = max(self.max_length - len(prefix) - len(suffix), MIN_COMPLETION_TOKENS)
        return prefix + truncate_middle(self._ids(completion), budget) + suffix

    def _batch(self, seqs: Sequence[list[int]]) -> dict[str, torch.Tensor]:
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.tokenizer.pad_token_id, dtype=torch.long)
        attn = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):  # left padding: the last column is every row's last token
            ids[i, width - len(s):] = torch.tensor(s)
            attn[i, width - len(s):] = 1
        positions = (attn.cumsum(1) - 1).clamp(min=0)
        return {"input_ids": ids.to(self.device), "attention_mask": attn.to(self.device),
                "position_ids": positions.to(self.device)}

    def logits(self, seqs: Sequence[list[int]]) -> torch.Tensor:
        """One logit per sequence, with gradient: the score head on the last token's hidden state."""
        batch = self._batch(seqs)
        backbone = getattr(self.model, self.model.base_model_prefix)
        ctx = torch.autocast(device_type=self.device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        with ctx:
            hidden = backbone(**batch, use_cache=False).last_hidden_state[:, -1]
            return self.model.score(hidden).squeeze(-1).float()

    # -- scoring -------------------------------------------------------------
    @torch.no_grad()
    def score(self, triples: Sequence[Triple]) -> torch.Tensor:
        """Logits of many triples, in batches of ``batch_size`` (sorted by length, returned in order)."""
        if not triples:
            return torch.zeros(0)
        was_training = self.model.training
        self.model.eval()
        seqs = [self.encode(*t) for t in triples]
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        out = torch.zeros(len(seqs))
        try:
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                out[rows] = self.logits([seqs[i] for i in rows]).cpu()
        finally:
            self.model.train(was_training)
        return out

    def rewards(self, triples: Sequence[Triple]) -> torch.Tensor:
        return torch.sigmoid(self.score(triples))

    def pair_accuracy(self, positives: Sequence[Triple], negatives: Sequence[Triple]) -> float:
        """Share of pairs whose positive gets the higher logit (nan without pairs)."""
        if not positives:
            return math.nan
        s = self.score(list(positives) + list(negatives))
        return float((s[:len(positives)] > s[len(positives):]).float().mean())

    # -- training ------------------------------------------------------------
    def _step(self, optimizer) -> float:
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def fit_bce(self, triples: Sequence[Triple], labels: Sequence[int], *, epochs: int, lr: float,
                weight_decay: float = 0.01, seed: int = 0) -> list[float]:
        """Pretrain with BCE (a separate AdamW at ``lr``); returns the mean loss of each epoch."""
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=weight_decay)
        seqs = [self.encode(*t) for t in triples]
        target = torch.tensor(list(labels), dtype=torch.float)
        self.model.train()
        losses = []
        for epoch in range(epochs):
            order = list(range(len(seqs)))
            random.Random(f"{seed}-rm-epoch-{epoch}").shuffle(order)
            total = 0.0
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                loss = bce_loss(self.logits([seqs[i] for i in rows]), target[rows].to(self.device))
                loss.backward()
                self._step(optimizer)
                total += loss.item() * len(rows)
            losses.append(total / max(len(seqs), 1))
        return losses

    def update_pairs(self, positives: Sequence[Triple], negatives: Sequence[Triple]) -> dict[str, float]:
        """One optimiser step of the pairwise loss over all pairs (micro-batched, one normaliser)."""
        n = len(positives)
        if n == 0:
            return {}
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        pos = [self.encode(*t) for t in positives]
        neg = [self.encode(*t) for t in negatives]
        half = max(1, self.batch_size // 2)  # a micro-batch holds `half` pairs: 2 * half sequences
        total, margin = 0.0, 0.0
        for start in range(0, n, half):
            rows = range(start, min(n, start + half))
            s = self.logits([pos[i] for i in rows] + [neg[i] for i in rows])
            k = len(rows)
            loss = pairwise_loss(s[:k], s[k:]) * k / n  # the mean over all n pairs, accumulated
            loss.backward()
            total += loss.item()
            margin += float((s[:k] - s[k:]).detach().sum()) / n
        grad_norm = self._step(self.optimizer)
        return {"rm_loss": total, "rm_margin": margin, "rm_grad_norm": grad_norm}

    # -- persistence ---------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])

    def save(self, path: str | Path) -> None:
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)

