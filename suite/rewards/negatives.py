"""Hybrid annotation for Cooper's reward model: verified positives and wrong-but-convincing negatives.

- **Labels**: a (question, reference, completion) triple sampled from the base policy is labelled
  by the rule-based verifier (math-verify): 1 if its final answer is right, else 0.
- **Negatives from positives**: an *assistant* model (by default the base policy itself; no
  external API) is asked to rewrite a correct solution into a convincing but wrong one. A rewrite
  is accepted only if it states a final answer and the verifier says that answer is wrong; up to
  ``tries`` attempts. When all attempts fail, a rule-based fallback changes the final answer of the
  correct solution (the last ``\\boxed{}``, else the ``####`` answer, else the last number) to a
  different value, again accepted only if the verifier says it is wrong.
- **Pairs** for the per-step update: the positive of a question is the *first* of its rollouts
  that the verifier accepts; questions with no accepted rollout are skipped.

Every outcome is counted: ``assistant`` (accepted rewrites), ``rejected`` (rewrites refused: verified
correct or without a final answer), ``rule`` (fallbacks used), ``failed`` (no negative at all).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Sequence

from math_verify import parse

ASSISTANT_PROMPT = (
    "Here is a math problem and a correct solution. Rewrite the solution so that it looks convincing "
    "but is wrong: keep the same style and length, make a plausible mistake in the reasoning, and end "
    "with a different, incorrect final answer written as \\boxed{{}}. Reply with the rewritten solution only.\n\n"
    "Problem: {question}\n\nCorrect solution: {solution}"
)
NEGATIVE_KINDS = ("assistant", "rejected", "rule", "failed")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_GSM8K_FINAL = re.compile(r"####\s*([^\n]+)")
_DELTAS = (1, -1, 2, -2, 3, 5, 10, -10, 7, 100)

Verifier = Callable[[str, list], bool]
Assistant = Callable[[list[str]], list[str]]  # user messages -> replies


def assistant_prompt(question: str, solution: str) -> str:
    return ASSISTANT_PROMPT.format(question=question, solution=solution)


# -- rule-based fallback ------------------------------------------------------
def final_answer_span(text: str) -> tuple[int, int] | None:
    """(start, end) of the final answer in ``text``: the content of the last ``\\boxed{...}``,
    else the answer after ``####``, else the last number; None if there is none."""
    start = text.rfind("\\boxed{")
    if start >= 0:
        i, depth = start + len("\\boxed{"), 1
        begin = i
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            return begin, i - 1
    matches = list(_GSM8K_FINAL.finditer(text))
    if matches:
        return matches[-1].span(1)
    numbers = list(_NUMBER.finditer(text))
    if numbers:
        return numbers[-1].span()
    return None


def _as_number(text: str) -> Fraction | None:
    cleaned = text.strip().strip("$").replace(",", "").strip()
    try:
        return Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def _format(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else str(float(x))


def wrong_answers(answer: str, rng: random.Random) -> list[str]:
    """Candidate replacements for a final answer: shifted numbers, or ``answer + 1`` for expressions."""
    value = _as_number(answer)
    if value is None:
        return [f"{answer}+1", f"2({answer})", f"{answer}-1"]
    deltas = list(_DELTAS)
    rng.shuffle(deltas)
    candidates = [value + d for d in deltas] + [value * 2, -value]
    return [_format(c) for c in dict.fromkeys(candidates) if c != value]


def perturb_final_answer(completion: str, answers: list, verifier: Verifier, rng: random.Random) -> str | None:
    """The completion with its final answer replaced by a wrong one (None when every candidate verifies)."""
    span = final_answer_span(completion)
    if span is None:
        base = str(answers[0]) if answers else "0"
        candidates = [f"{completion}\nThe answer is \\boxed{{{w}}}." for w in wrong_answers(base, rng)]
    else:
        start, end = span
        candidates = [completion[:start] + w + completion[end:] for w in wrong_answers(completion[start:end], rng)]
    for text in candidates:
        if not verifier(text, answers):
            return text
    return None


def states_an_answer(text: str) -> bool:
    """math-verify finds a final answer in the text."""
    return bool(text.strip()) and bool(parse(text))


# -- negatives ------------------------------------------------------------------
@dataclass
class NegativeRequest:
    question: str
    solution: str  # a verified-correct completion
    answers: list
    key: str  # seeds the rule-based fallback (e.g. "<seed>-<step>-<question id>")


@dataclass
class NegativeMaker:
    """Assistant rewrites (up to ``tries``) with the rule-based fallback; ``counts`` adds up every outcome."""

    verifier: Verifier
    assistant: Assistant | None = None
    tries: int = 3
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(NEGATIVE_KINDS, 0))

    def acceptable(self, text: str, answers: list) -> bool:
        return states_an_answer(text) and not self.verifier(text, answers)

    def make(self, requests: Sequence[NegativeRequest]) -> list[tuple[str | None, str]]:
        """One (negative text or None, kind) per request; kind is 'assistant', 'rule' or 'failed'."""
        out: list[tuple[str | None, str]] = [(None, "failed")] * len(requests)
        pending = list(range(len(requests)))
        if self.assistant is not None:
            for _ in range(self.tries):
                if not pending:
                    break
                replies = self.assistant([assistant_prompt(requests[i].question, requests[i].solution) for i in pending])
                still = []
                for i, reply in zip(pending, replies):
                    if self.acceptable(reply, requests[i].answers):
                        out[i] = (reply, "assistant")
                        self.counts["assistant"] += 1
                    else:
                        self.counts["rejected"] += 1
                        still.append(i)
                pending = still
        for i in pending:
            r = requests[i]
            text = perturb_final_answer(r.solution, r.answers, self.verifier, random.Random(r.key))
            out[i] = (text, "rule") if text is not None else (None, "failed")
            self.counts["rule" if text is not None else "failed"] += 1
        return out


def chat_assistant(engine, tokenizer, params) -> Assistant:
    """An :data:`Assistant` over a generation engine: each message is one user turn in the chat template."""

    def generate(messages: list[str]) -> list[str]:
        prompts = []
        for m in messages:
            text = tokenizer.apply_chat_template([{"role": "user", "content": m}], tokenize=False,
                                                 add_generation_prompt=True)
            prompts.append(tokenizer(text, add_special_tokens=False)["input_ids"])
        return tokenizer.batch_decode(engine.generate(prompts, params), skip_special_tokens=True)

    return generate


# -- labels and pairs -----------------------------------------------------------
def first_correct(correct: Sequence[bool], group: Sequence[int]) -> tuple[dict[int, int], list[int]]:
    """Per group, the index of its first verified-correct row; and the groups that have none (skipped)."""
    positives: dict[int, int] = {}
    for i, (ok, g) in enumerate(zip(correct, group)):
        if ok and g not in positives:
            positives[g] = i
    skipped = [g for g in dict.fromkeys(group) if g not in positives]
    return positives, skipped


def label_samples(records: Sequence[dict], samples: Sequence[Sequence[str]], verifier: Verifier) -> list[dict]:
    """Triples ``{question, reference, completion, label, kind='sampled', record}`` labelled by the verifier."""
    out = []
    for rec, texts in zip(records, samples):
        for text in texts:
            out.append({"question": rec["prompt"], "reference": str(rec["answers"][0]), "completion": text,
                        "label": int(bool(verifier(text, rec["answers"]))), "kind": "sampled", "record": rec["id"]})
    return out
