"""Procedural arithmetic questions with difficulty set by the number of digits.

SmolLM2-135M solves 2-digit addition some of the time, which is what makes RL
learn at this scale (GSM8K is beyond it). Train and test are disjoint: each
question is assigned to a split by a hash of its text, so regenerating with a
different size never moves a question across splits.

``generate`` makes one kind of question (``arithmetic_2d``); ``generate_levels``
makes a set with difficulty levels (``LEVELS``: operand digits, operand count and
operators), which ExGRPO trains on so that a small model meets questions it solves
only sometimes.
"""

from __future__ import annotations

import hashlib
import operator
import random
from dataclasses import dataclass
from typing import Sequence

OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def _split_of(question: str, test_fraction: float) -> str:
    bucket = int(hashlib.sha256(question.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < test_fraction else "train"


def generate(split: str, n: int, digits: int = 2, ops: str = "+", seed: int = 0,
             test_fraction: float = 0.1) -> list[dict]:
    """``n`` distinct questions of ``split`` ('train' or 'test')."""
    if split not in ("train", "test"):
        raise ValueError(f"arithmetic split must be 'train' or 'test', not {split!r}")
    lo, hi = 10 ** (digits - 1) if digits > 1 else 0, 10**digits - 1
    capacity = (hi - lo + 1) ** 2 * len(ops)
    if n > capacity * (test_fraction if split == "test" else 1 - test_fraction) * 0.9:
        raise ValueError(f"cannot draw {n} distinct {digits}-digit '{ops}' questions for {split!r}")
    rng = random.Random(f"arithmetic-{digits}-{ops}-{seed}")
    seen, records = set(), []
    while len(records) < n:
        a, b, op = rng.randint(lo, hi), rng.randint(lo, hi), rng.choice(ops)
        question = f"What is {a} {op} {b}?"
        if question in seen or _split_of(question, test_fraction) != split:
            continue
        seen.add(question)
        records.append({
            "id": f"arith{digits}{ops}-{split}-{len(records)}",
            "prompt": question,
            "answers": [str(OPS[op](a, b))],
            "metadata": {"digits": digits, "op": op},
        })
    return records


@dataclass(frozen=True)
class Level:
    """One difficulty level: an operand of each given digit count, operators drawn from ``ops``."""

    digits: tuple[int, ...]
    ops: str

    def __post_init__(self):
        if len(self.digits) < 2 or any(d < 1 for d in self.digits) or not self.ops or set(self.ops) - set(OPS):
            raise ValueError(f"bad arithmetic level {self}: need >= 2 operands of >= 1 digit, ops from {sorted(OPS)}")

    @property
    def capacity(self) -> int:
        count = len(self.ops) ** (len(self.digits) - 1)
        for d in self.digits:
            count *= 10**d - (10 ** (d - 1) if d > 1 else 0)
        return count


# Ordered from easy to hard for a 135M model (the base model's success rate per level is in docs/exgrpo.md).
LEVELS: dict[int, Level] = {
    1: Level((1, 2), "+"),        # 7 + 48
    2: Level((2, 2), "+"),        # 47 + 38
    3: Level((2, 2), "-"),        # 47 - 38
    4: Level((2, 1), "*"),        # 47 * 8
    5: Level((2, 2, 2), "+-"),    # 47 + 38 - 12
    6: Level((3, 3), "+-"),       # 471 - 386
    7: Level((2, 2), "*"),        # 47 * 38
}


def evaluate_expression(operands: Sequence[int], ops: Sequence[str]) -> int:
    """Value of ``a0 o1 a1 o2 a2 ...`` with the usual precedence (* before + and -)."""
    terms, signs = [operands[0]], []
    for op, x in zip(ops, operands[1:]):
        if op == "*":
            terms[-1] *= x
        else:
            terms.append(x)
            signs.append(op)
    value = terms[0]
    for sign, term in zip(signs, terms[1:]):
        value = OPS[sign](value, term)
    return value


def generate_levels(split: str, n: int, levels: Sequence[int] = tuple(LEVELS), seed: int = 0,
                    test_fraction: float = 0.1) -> list[dict]:
    """``n`` distinct questions of ``split`` for each level in ``levels``, interleaved (one of each
    level in turn), so the first ``k`` records (an eval ``limit``) cover every level alike."""
    if split not in ("train", "test"):
        raise ValueError(f"arithmetic split must be 'train' or 'test', not {split!r}")
    unknown = sorted(set(levels) - set(LEVELS))
    if unknown:
        raise ValueError(f"unknown arithmetic level(s) {unknown}; levels: {sorted(LEVELS)}")
    per_level = []
    for level in levels:
        records = []
        spec = LEVELS[level]
        share = test_fraction if split == "test" else 1 - test_fraction
        if n > spec.capacity * share * 0.9:
            raise ValueError(f"cannot draw {n} distinct level-{level} questions for {split!r}")
        rng = random.Random(f"arithmetic-level-{level}-{seed}")
        seen: set[str] = set()
        count = 0
        while count < n:
            operands = [rng.randint(10 ** (d - 1) if d > 1 else 0, 10**d - 1) for d in spec.digits]
            ops = [rng.choice(spec.ops) for _ in operands[1:]]
            question = "What is " + " ".join(
                [str(operands[0])] + [f"{op} {x}" for op, x in zip(ops, operands[1:])]) + "?"
            if question in seen or _split_of(question, test_fraction) != split:
                continue
            seen.add(question)
            records.append({
                "id": f"arithlv{level}-{split}-{count}",
                "prompt": question,
                "answers": [str(evaluate_expression(operands, ops))],
                "metadata": {"level": level, "digits": list(spec.digits), "ops": spec.ops},
            })
            count += 1
        per_level.append(records)
    return [rec for group in zip(*per_level) for rec in group]
