"""ExGRPO's experience buffer: questions bucketed by how often they are solved.

For a question answered by a group of K rollouts of which k are correct:

- 0 < k < K: the question sits in bucket k (moving when a later group gives another k) and
  every correct trajectory is stored, deduplicated by its token ids, with its per-token
  log-probs under the policy that sampled it;
- k = K: the question is *retired*: dropped from the buffer and never sampled again;
- k = 0: nothing changes (a question already in the buffer keeps its bucket and trajectories,
  as in the reference code, whose lower bound ``experience_lbound = 0`` is exclusive).

Questions are drawn for replay by bucket: bucket k has weight w_k (``gaussian``:
N(k; K/2, sigma) on the count of correct rollouts, the reference code's; ``gaussian_accuracy``:
N(k/K; 0.5, sigma) on the accuracy scale, as the paper writes it, nearly uniform at sigma = 1;
``linear``: k/K; ``uniform``: 1), normalised over the non-empty buckets;
a multinomial draw gives each bucket a count; a bucket asked for more questions than it holds
gives all of them and its overflow goes, one question at a time, to a bucket that still has
room, chosen with probability proportional to the bucket weights among those; inside a bucket
questions are drawn without replacement.

A drawn question replays one stored trajectory: the one with the lowest mean token entropy
under the current policy (``select(..., "min_entropy")``), or a uniformly random one.

Everything is plain Python data so the buffer round-trips through ``state_dict`` (checkpoints).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

WEIGHTINGS = ("gaussian", "gaussian_accuracy", "linear", "uniform")
SELECTIONS = ("min_entropy", "random")


@dataclass
class Trajectory:
    """One stored correct completion of a question."""

    completion_ids: list[int]
    logp: list[float]  # per-token log-probs under the policy that sampled it (pi_recorded)
    step: int  # training step that sampled it


def bucket_weight(k: int, group_size: int, weighting: str = "gaussian", sigma: float = 1.0) -> float:
    """Unnormalised weight of bucket k (k correct out of ``group_size``).

    ``gaussian`` (the reference code): a normal density over the count k, mean K/2, ``sigma`` in rollouts;
    ``gaussian_accuracy`` (the paper's formula): over the accuracy k/K, mean 0.5, ``sigma`` in accuracy."""
    if weighting in ("gaussian", "gaussian_accuracy"):
        x, mu = (k, group_size / 2) if weighting == "gaussian" else (k / group_size, 0.5)
        return math.exp(-((x - mu) ** 2) / (2 * sigma**2)) / math.sqrt(2 * math.pi * sigma**2)
    if weighting == "linear":
        return k / group_size
    if weighting == "uniform":
        return 1.0
    raise ValueError(f"unknown bucket weighting {weighting!r}; choose one of {WEIGHTINGS}")


def allocate(sizes: Sequence[int], probs: Sequence[float], n: int, rng: np.random.Generator) -> list[int]:
    """How many items to take from each bucket: a multinomial draw of ``n`` over ``probs``, each count
    capped at the bucket's size, the overflow handed out one at a time to buckets with room
    (probability proportional to ``probs`` among them). Never more than ``sum(sizes)`` in all."""
    counts = [int(c) for c in rng.multinomial(n, probs)] if n > 0 else [0] * len(sizes)
    excess = 0
    for i, size in enumerate(sizes):
        if counts[i] > size:
            excess += counts[i] - size
            counts[i] = size
    while excess > 0:
        room = [i for i, size in enumerate(sizes) if counts[i] < size]
        if not room:
            break
        p = np.array([probs[i] for i in room], dtype=float)
        if p.sum() <= 0:  # only zero-weight buckets have room: share the rest evenly
            p = np.ones(len(room))
        counts[room[int(rng.choice(len(room), p=p / p.sum()))]] += 1
        excess -= 1
    return counts


class ReplayBuffer:
    def __init__(self, group_size: int, weighting: str = "gaussian", sigma: float = 1.0):
        if weighting not in WEIGHTINGS:
            raise ValueError(f"unknown bucket weighting {weighting!r}; choose one of {WEIGHTINGS}")
        if group_size < 2:
            raise ValueError(f"a replay buffer needs groups of >= 2 rollouts, got group_size={group_size}")
        self.group_size, self.weighting, self.sigma = group_size, weighting, sigma
        self.bucket_of: dict[str, int] = {}  # question id -> k (insertion-ordered)
        self.trajectories: dict[str, list[Trajectory]] = {}
        self.retired: set[str] = set()

    # -- bookkeeping ---------------------------------------------------------
    def update(self, qid: str, k: int, correct: Sequence[Trajectory] = ()) -> str:
        """Record that a group of ``group_size`` rollouts of ``qid`` had ``k`` correct ones; ``correct``
        are its correct trajectories (stored when 0 < k < K). Returns what happened:
        'retired', 'stored' (entered the buffer), 'moved' (changed bucket), 'kept' or 'ignored'."""
        if not 0 <= k <= self.group_size:
            raise ValueError(f"k = {k} correct out of a group of {self.group_size}")
        if qid in self.retired:
            return "ignored"
        if k == self.group_size:
            self.retired.add(qid)
            self.bucket_of.pop(qid, None)
            self.trajectories.pop(qid, None)
            return "retired"
        if k == 0:
            return "kept" if qid in self.bucket_of else "ignored"
        old = self.bucket_of.get(qid)
        self.bucket_of[qid] = k
        stored = self.trajectories.setdefault(qid, [])
        seen = {tuple(t.completion_ids) for t in stored}
        for traj in correct:
            key = tuple(traj.completion_ids)
            if key not in seen:
                seen.add(key)
                stored.append(traj)
        return "stored" if old is None else ("moved" if old != k else "kept")

    def buckets(self) -> dict[int, list[str]]:
        """k -> question ids in bucket k (in the order they entered it), non-empty buckets only."""
        out: dict[int, list[str]] = {}
        for qid, k in self.bucket_of.items():
            out.setdefault(k, []).append(qid)
        return dict(sorted(out.items()))

    def __len__(self) -> int:
        return len(self.bucket_of)

    def __contains__(self, qid: str) -> bool:
        return qid in self.bucket_of

    def num_trajectories(self) -> int:
        return sum(len(t) for t in self.trajectories.values())

    def probabilities(self) -> dict[int, float]:
        """Sampling probability of each non-empty bucket."""
        weights = {k: bucket_weight(k, self.group_size, self.weighting, self.sigma) for k in self.buckets()}
        total = sum(weights.values())
        if total <= 0:
            return {k: 1 / len(weights) for k in weights}
        return {k: w / total for k, w in weights.items()}

    # -- sampling ------------------------------------------------------------
    def sample(self, n: int, rng: np.random.Generator) -> list[str]:
        """Up to ``n`` distinct question ids, drawn bucket by bucket (see the module docstring)."""
        buckets = self.buckets()
        if n <= 0 or not buckets:
            return []
        keys = list(buckets)
        probs = self.probabilities()
        counts = allocate([len(buckets[k]) for k in keys], [probs[k] for k in keys], n, rng)
        out: list[str] = []
        for k, count in zip(keys, counts):
            members = buckets[k]
            picks = rng.choice(len(members), size=count, replace=False) if count else []
            out.extend(members[int(i)] for i in picks)
        return out

    def select(self, qid: str, mode: str, rng: np.random.Generator,
               entropies: Sequence[float] | None = None) -> int:
        """Index of the stored trajectory of ``qid`` to replay: lowest mean entropy, or random."""
        stored = self.trajectories[qid]
        if mode == "min_entropy":
            if entropies is None or len(entropies) != len(stored):
                raise ValueError(f"min_entropy selection needs one entropy per stored trajectory of {qid!r}")
            return int(np.argmin(entropies))  # first of equal minima
        if mode == "random":
            return int(rng.integers(len(stored)))
        raise ValueError(f"unknown trajectory selection {mode!r}; choose one of {SELECTIONS}")

    # -- metrics and checkpoints ---------------------------------------------
    def stats(self) -> dict[str, float]:
        out = {"buffer_questions": float(len(self)), "buffer_trajectories": float(self.num_trajectories()),
               "retired_questions": float(len(self.retired))}
        counts = {k: len(v) for k, v in self.buckets().items()}
        for k in range(1, self.group_size):
            out[f"bucket_{k}"] = float(counts.get(k, 0))
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "group_size": self.group_size, "weighting": self.weighting, "sigma": self.sigma,
            "bucket_of": list(self.bucket_of.items()),
            "trajectories": [(qid, [(t.completion_ids, t.logp, t.step) for t in trajs])
                             for qid, trajs in self.trajectories.items()],
            "retired": sorted(self.retired),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["group_size"] != self.group_size:
            raise ValueError(f"replay buffer state has group_size {state['group_size']}, expected {self.group_size}")
        self.bucket_of = dict((qid, int(k)) for qid, k in state["bucket_of"])
        self.trajectories = {qid: [Trajectory(list(c), list(lp), int(s)) for c, lp, s in trajs]
                             for qid, trajs in state["trajectories"]}
        self.retired = set(state["retired"])
