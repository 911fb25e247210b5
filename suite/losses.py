"""Token-level policy-gradient losses shared by every method.

All functions take ``[batch, tokens]`` tensors and a 0/1 ``mask`` of the tokens
that are trained (generated assistant tokens; prompts, observations and padding
are 0). Notation: ``logp`` = log pi_theta(token), ``old_logp`` = log-prob under the
policy that generated the token, ``ref_logp`` = under the frozen reference.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import torch

AGGREGATIONS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm", "episode-step-token-mean")


def episode_row_weights(episodes: Sequence[int] | None, n_rows: int) -> list[float]:
    """Each row's weight under ``episode-step-token-mean``: ``1 / (E * T_e)`` for a row of episode e, with E
    the number of distinct episodes among the rows and T_e the number of rows (steps) episode e has.
    Without episode ids every row is an episode of one step (weights ``1 / n_rows``)."""
    if not episodes:
        return [1.0 / max(n_rows, 1)] * n_rows
    steps = Counter(episodes)
    return [1.0 / (len(steps) * steps[e]) for e in episodes]


def clipped_surrogate(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                      eps_low: float, eps_high: float) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO/GRPO per-token loss ``-min(r A, clip(r, 1-eps_low, 1+eps_high) A)``.

    Returns the loss and a 0/1 tensor marking tokens where the clip was active.
    """
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * advantages
    loss = -torch.minimum(unclipped, clipped)
    return loss, (clipped < unclipped).float()


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    """Per-token estimate of KL(pi_theta || pi_ref) from samples of pi_theta.

    k3 (Schulman): ``exp(ref - logp) - (ref - logp) - 1``, unbiased and >= 0.
    k2: ``0.5 * (logp - ref)^2`` (used by Retaining by Doing).
    """
    delta = ref_logp - logp
    if estimator == "k3":
        return torch.exp(delta) - delta - 1
    if estimator == "k2":
        return 0.5 * delta**2
    raise ValueError(f"unknown KL estimator {estimator!r}; choose k3 or k2")


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, mode: str, *, total_tokens: float,
              total_seqs: int, max_len: int, row_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Reduce per-token losses of a micro-batch to its share of the batch loss.

    The normalisers are the whole batch's (``total_tokens``, ``total_seqs``), so
    summing the micro-batch results gives the loss of the full batch:

    - token-mean: sum over all tokens / number of trained tokens in the batch;
    - seq-mean-token-mean: mean over tokens of each sequence, then mean over sequences;
    - seq-mean-token-sum-norm: sum over tokens / ``max_len``, mean over sequences
      (Dr. GRPO; ExGRPO's "sum divided by max response length");
    - episode-step-token-mean: mean over tokens of each row (a step of an episode), then the rows'
      weighted sum with ``row_weight`` (:func:`episode_row_weights`, computed over the whole batch:
      ``1 / (E * T_e)``), i.e. mean over each episode's steps, then mean over episodes (MS-GRPO's
      ``(1/G) sum_j (1/T_j) sum_t``). Without ``row_weight`` it is ``seq-mean-token-mean``.
    """
    masked = per_token * mask
    if mode == "token-mean":
        return masked.sum() / max(total_tokens, 1.0)
    if mode == "seq-mean-token-mean":
        per_seq = masked.sum(-1) / mask.sum(-1).clamp(min=1)
        return per_seq.sum() / total_seqs
    if mode == "episode-step-token-mean":
        per_seq = masked.sum(-1) / mask.sum(-1).clamp(min=1)
        if row_weight is None:
            return per_seq.sum() / total_seqs
        return (per_seq * row_weight.to(per_seq.dtype)).sum()
    if mode == "seq-mean-token-sum-norm":
        return masked.sum() / (max_len * total_seqs)
    raise ValueError(f"unknown loss aggregation {mode!r}; choose one of {AGGREGATIONS}")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> float:
    return float((x.detach() * mask).sum() / mask.sum().clamp(min=1))


# Rows x vocabulary entries per chunk of selected_logprobs_and_entropy: 2^26 fp32 values (256 MiB) per temporary.
LOGITS_CHUNK_ELEMENTS = 2**26


def _logprobs_and_entropy(logits: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logits = logits.float()
    logz = torch.logsumexp(logits, dim=-1)
    logp = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) - logz
    with torch.no_grad():
        probs = torch.softmax(logits, dim=-1)
        entropy = logz - (probs * logits).sum(-1)
    return logp, entropy


def _chunk_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return _logprobs_and_entropy(logits, tokens)[0]


def selected_logprobs_and_entropy(logits: torch.Tensor, tokens: torch.Tensor,
                                  chunk_elements: int = LOGITS_CHUNK_ELEMENTS) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of ``tokens`` under ``logits`` and the (detached) entropy per position.

    Over the vocabulary in chunks of positions (``chunk_elements`` logits each), so the fp32 copy, softmax and
    product over the vocabulary exist for one chunk at a time rather than for every row; with gradients each
    chunk's log-softmax is recomputed in the backward pass instead of kept. Per position the arithmetic is the
    unchunked one (same numbers, tests/test_distributed.py); a batch within one chunk takes the unchunked path. On
    the CPU (memory is not the limit there) chunks keep their fp32 copy for the backward pass rather than recompute.
    """
    vocab = logits.shape[-1]
    positions = logits.numel() // max(vocab, 1)
    rows = max(1, chunk_elements // max(vocab, 1))
    if positions <= rows:
        return _logprobs_and_entropy(logits, tokens)
    flat, flat_tokens = logits.reshape(-1, vocab), tokens.reshape(-1)
    logps, entropies = [], []
    for start in range(0, positions, rows):
        part, part_tokens = flat[start:start + rows], flat_tokens[start:start + rows]
        with torch.no_grad():
            _, entropy = _logprobs_and_entropy(part.detach(), part_tokens)
        if torch.is_grad_enabled() and part.requires_grad and part.is_cuda:  # GPU memory: recompute, do not keep
            from torch.utils.checkpoint import checkpoint

            logp = checkpoint(_chunk_logprobs, part, part_tokens, use_reentrant=False)
        else:
            logp = _chunk_logprobs(part, part_tokens)
        logps.append(logp)
        entropies.append(entropy)
    shape = tokens.shape
    return torch.cat(logps).view(shape), torch.cat(entropies).view(shape)
