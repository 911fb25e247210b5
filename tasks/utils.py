"""Functions the task YAMLs in this folder refer to with ``!function utils.<name>``.

They are thin: data comes from the suite's prepared ``data/`` files, prompts
from ``suite.prompts``, scores from ``suite.rewards``, so evaluation scores a
completion exactly as training rewards it.
"""

from __future__ import annotations

import re
import string

import datasets

from suite import data, prompts
from suite.rewards.math import is_correct
from suite.rewards.qa import exact_match, extract_answer, f1_score


def load_records(dataset: str, split: str = "test", data_dir: str = "data", spec: dict | None = None,
                 mirror: str | None = None, tasks_dir: str | None = None, **_metadata) -> dict:
    """lm-eval ``custom_dataset``: read ``<data_dir>/<dataset>/<split>.jsonl``.

    A dataset that is not in the suite's registry can be declared inline in the
    YAML (``dataset_kwargs.spec``: hub id, splits, mirror files, fields); it is
    prepared into ``data_dir`` on first use, and prepared again when the spec changed
    (the spec hash beside the file differs), so adding a benchmark is one YAML file.
    Another task file in ``tasks_dir`` that declares the same name with another spec is
    an error naming both files.
    """
    path = data.data_path(data_dir, dataset, split)
    if spec:
        if tasks_dir:
            data.declared_specs(tasks_dir)  # two task files declaring this name differently: an error naming both
        source = data.spec_from_dict(dataset, spec)
        if not data.is_current(source, split, data_dir):
            data.prepare(source, split, data_dir, mirror=mirror)
    elif not path.is_file():
        data.prepare(dataset, split, data_dir, mirror=mirror, tasks_dir=tasks_dir)
    return {split: datasets.Dataset.from_list(data.load_records(dataset, split, data_dir))}


def keep_all(resps, docs):
    """Filter that keeps every sampled response, so metrics can average over k samples."""
    return resps


def math_prompt(doc: dict) -> str:
    return prompts.render("math", doc["prompt"])


def plain_prompt(doc: dict) -> str:
    return prompts.render("plain", doc["prompt"])


def qa_prompt(doc: dict) -> str:
    return prompts.render("qa", doc["prompt"])


def _responses(results: list) -> list[str]:
    """lm-eval hands one request's filtered responses as ``[[r1, ..., rk]]``."""
    return results[0] if results and isinstance(results[0], list) else results


def process_math(doc: dict, results: list) -> dict:
    """avg@k accuracy (mean over the k samples) and pass@k (any sample correct)."""
    correct = [is_correct(r, doc["answers"]) for r in _responses(results)]
    return {"acc": sum(correct) / len(correct), "pass_at_k": float(any(correct))}


def process_qa(doc: dict, results: list) -> dict:
    answers = [extract_answer(r) for r in _responses(results)]
    n = len(answers)
    return {
        "em": sum(exact_match(a, doc["answers"]) for a in answers) / n,
        "f1": sum(f1_score(a, doc["answers"]) for a in answers) / n,
    }


# --- multiple choice -------------------------------------------------------------------------------------

CHOICE_INSTRUCTION = "Answer with the letter of the correct option, as \"ANSWER: X\"."

_L = r"\(?\[?\**([A-Z])\**\]?\)?"  # B, (B), [B], **B**
_CHOICE_PATTERNS = [
    # \boxed{B}, \boxed{(B)}, \boxed{\text{B}}
    re.compile(r"\\boxed\{\s*(?:\\text(?:bf)?\{)?\s*\(?([A-Z])\)?\s*\}?\s*\}"),
    # ANSWER: B / Answer: (B) / The answer is (B) / the correct answer is: **B** / answer is option B
    re.compile(r"answer\s*(?:is|:)?\s*:?\s*(?:option\s+|choice\s+)?" + _L + r"(?![A-Za-z0-9])", re.IGNORECASE),
    # the whole response is the letter: "B", "B.", "(B)", "B)", or it opens with "B. <option text>" / "B: ..."
    re.compile(r"^\s*" + _L + r"\s*(?:[.):]|$)"),
]


def extract_choice(text: str, n_options: int | None = None) -> str | None:
    """The option letter a response gives, or None.

    Accepted forms, in this order of precedence (the last match of the first form found wins):
    ``\\boxed{B}``; ``ANSWER: B``, ``The answer is (B)``, ``answer: **B**``; a response that is the letter
    (``B``, ``B.``, ``(B)``) or opens with it (``B. Paris``). Letters are capitals; with ``n_options``
    only the first ``n_options`` letters count ("The answer is E" with four options is no answer).
    The "answer" phrase is matched case-insensitively, the letter is not ("the answer is a dog" is no answer).
    """
    valid = string.ascii_uppercase[:n_options] if n_options else string.ascii_uppercase
    for pattern in _CHOICE_PATTERNS:
        found = [m.group(1) for m in pattern.finditer(text) if m.group(1) in valid]
        if found:
            return found[-1]
    return None


def choice_prompt(doc: dict) -> str:
    """The question with its lettered options (as prepared) and the answer-format instruction."""
    return f"{doc['prompt']}\n{CHOICE_INSTRUCTION}"


def process_multiple_choice(doc: dict, results: list) -> dict:
    """acc: the letter the response gives (``extract_choice``) is the gold letter (avg over k samples)."""
    n = len((doc.get("metadata") or {}).get("choices") or []) or None
    gold = {a.strip().upper() for a in doc["answers"]}
    correct = [extract_choice(r, n) in gold for r in _responses(results)]
    return {"acc": sum(correct) / len(correct)}
