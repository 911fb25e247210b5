"""Datasets of "Retaining by Doing" (arXiv 2510.18874): three target tasks and the probes.

Every function here is a ``generator`` of :data:`suite.data.REGISTRY` and returns records
``{id, prompt, answers, metadata}``. ``metadata["task"]`` names the task, and the metadata
carries what the expert response needs (Countdown: numbers, target, solution; IFEval-style:
instruction ids and arguments, topic; MMLU: the choices).

``answers`` holds what the reward needs, since a reward sees only ``(completion, answers)``:

* Countdown and the two instruction-following sets: one JSON string, ``{"numbers", "target"}``
  or ``{"instruction_id_list", "kwargs"}`` (see :mod:`suite.rewards.retaining`);
* MMLU and ARC-Challenge: the gold option letter.

Splits. Countdown and IFEval-style prompts are procedural: one stream of puzzles (prompts) is
drawn and each is assigned to ``train`` or ``test`` by a hash of its content (numbers and
target; prompt text), so the splits are disjoint whatever their sizes. MMLU has no train split
of its own in the 57-subject release: ``test`` here (our evaluation split) is the fifth of the
MMLU test questions whose hash of ``subject/index`` is 0 mod 5 (about 2,800), and ``train`` is
the other four fifths plus the 285 dev questions. Both are shuffled with a fixed seed so that
the first N (lm-eval's ``limit``) mix subjects. ARC-Challenge (test, 1,172 questions) keeps the
questions with at most four options (1,169; three have five) and relabels numeric options
``1-4`` as ``A-D``. IFEval keeps the 316 of 541 prompts whose instructions are all covered by
our checkers (:data:`suite.tasks.ifeval_like.CHECKERS`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
from collections.abc import Sequence
from pathlib import Path

from . import countdown, ifeval_like, mmlu

LETTERS = "ABCD"
TEST_SHARE = 5  # one in five procedural items goes to the test split


def _bucket(text: str, modulo: int = TEST_SHARE) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % modulo


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def _hash_split(split: str, n: int, seed: int, draw, key, to_record) -> list[dict]:
    """The first ``n`` distinct items of ``split`` from chunks ``draw(chunk_seed)`` of generated items;
    an item's split is a hash of ``key(item)`` (one in TEST_SHARE goes to test), so train and test
    never share an item."""
    _check_split(split)
    records: list[dict] = []
    seen: set[str] = set()
    chunk = 0
    while len(records) < n:
        for rec in draw(seed * 100_003 + chunk):
            k = key(rec)
            if k in seen or (_bucket(k) == 0) != (split == "test"):
                continue
            seen.add(k)
            records.append(to_record(rec, len(records)))
            if len(records) == n:
                break
        chunk += 1
    return records


# --- Countdown --------------------------------------------------------------------------------


def countdown_split(split: str, n: int, n_numbers: int | tuple[int, int] = (3, 4), max_number: int = 99,
                    max_target: int = 99, seed: int = 0) -> list[dict]:
    """``n`` solvable Countdown puzzles of one split (a puzzle's split is a hash of its numbers and target)."""

    def to_record(rec: dict, i: int) -> dict:
        meta = rec["metadata"]
        return {"id": f"countdown-{split}-{i}", "prompt": rec["prompt"],
                "answers": [json.dumps({"numbers": meta["numbers"], "target": meta["target"]})],
                "metadata": {**meta, "task": "countdown"}}

    return _hash_split(
        split, n, seed,
        draw=lambda s: countdown.generate(256, seed=s, n_numbers=n_numbers, max_number=max_number,
                                          max_target=max_target),
        key=lambda rec: f"{sorted(rec['metadata']['numbers'])}->{rec['metadata']['target']}",
        to_record=to_record)


# --- IFEval-style instruction following ---------------------------------------------------------


def ifeval_like_split(split: str, n: int, seed: int = 0) -> list[dict]:
    """``n`` prompts with one or two verifiable constraints (split by a hash of the prompt text)."""

    def to_record(rec: dict, i: int) -> dict:
        meta = rec["metadata"]
        return {"id": f"ifeval_like-{split}-{i}", "prompt": rec["prompt"],
                "answers": [json.dumps({"instruction_id_list": meta["instruction_id_list"], "kwargs": meta["kwargs"]})],
                "metadata": {**meta, "task": "ifeval_like"}}

    return _hash_split(split, n, seed, draw=lambda s: ifeval_like.generate_training_prompts(256, seed=s),
                       key=lambda rec: rec["prompt"], to_record=to_record)


# --- MMLU -------------------------------------------------------------------------------------


def mmlu_split(split: str, mirror: str | None = None, seed: int = 0) -> list[dict]:
    """MMLU records of our ``train`` or ``test`` (evaluation) split, from the mirror's CSVs or the hub."""
    _check_split(split)
    rows = _mmlu_rows_mirror(Path(mirror)) if mirror else _mmlu_rows_hub()
    records = []
    for source, subject, idx, row in rows:
        in_test = source == "test" and _bucket(f"{subject}/{idx}") == 0
        if in_test != (split == "test"):
            continue
        rec = mmlu.record_from_csv_row(subject, idx, row)
        rec["id"] = f"mmlu-{source}-{subject}-{idx}"
        rec["metadata"]["task"] = "mmlu"
        records.append(rec)
    random.Random(f"mmlu-{split}-{seed}").shuffle(records)
    return records


def _mmlu_rows_mirror(mirror: Path) -> list[tuple[str, str, int, dict]]:
    rows = []
    for source in ("test", "dev"):
        paths = sorted((mirror / "mmlu" / source).glob("*.csv"))
        if source == "test" and not paths:
            raise FileNotFoundError(f"dataset 'mmlu': no {mirror / 'mmlu' / 'test'}/*.csv in the mirror; "
                                    "unset the mirror to read the hub id 'cais/mmlu' (config 'all')")
        for path in paths:
            subject = re.sub(rf"_{source}$", "", path.stem)
            with open(path, newline="") as f:
                rows += [(source, subject, i, row) for i, row in enumerate(csv.DictReader(f))]
    return rows


def _mmlu_rows_hub() -> list[tuple[str, str, int, dict]]:
    import datasets

    rows = []
    for source in ("test", "dev"):
        counters: dict[str, int] = {}
        for row in datasets.load_dataset("cais/mmlu", "all", split=source):
            subject = row["subject"]
            idx = counters.get(subject, 0)
            counters[subject] = idx + 1
            flat = {"question": row["question"], "answer": str(row["answer"]),
                    **{f"choice{i}": c for i, c in enumerate(row["choices"])}}
            rows.append((source, subject, idx, flat))
    return rows


# --- ARC-Challenge (probe) --------------------------------------------------------------------


def format_choice_prompt(question: str, choices: Sequence[str]) -> str:
    """MMLU's prompt layout for 2-4 options (question, lettered options, the answer instruction)."""
    if not 2 <= len(choices) <= len(LETTERS):
        raise ValueError(f"need 2-{len(LETTERS)} choices, got {len(choices)}")
    options = "\n".join(f"{letter}. {choice}" for letter, choice in zip(LETTERS, choices))
    return f"{question}\n\nAnswer options:\n{options}\n\n{mmlu.INSTRUCTION}"


_ARC_OPTION = re.compile(r"^([A-E]|[1-5])\) (.*)$", flags=re.MULTILINE)


def arc_challenge(split: str = "test", mirror: str | None = None) -> list[dict]:
    """ARC-Challenge test questions with at most four options, in MMLU's prompt layout."""
    if split != "test":
        raise ValueError(f"arc_challenge has only a 'test' split, got {split!r}")
    if mirror:
        path = Path(mirror) / "arc_challenge" / "test.jsonl"
        if not path.is_file():
            raise FileNotFoundError(f"dataset 'arc_challenge': {path} not found; unset the mirror to read the hub "
                                    "id 'allenai/ai2_arc' (config 'ARC-Challenge')")
        items = [_arc_from_mirror(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
    else:
        import datasets

        items = [(str(r["id"]), r["question"], list(r["choices"]["text"]), list(r["choices"]["label"]), r["answerKey"])
                 for r in datasets.load_dataset("allenai/ai2_arc", "ARC-Challenge", split="test")]
    records = []
    for item_id, stem, choices, labels, answer in items:
        if len(choices) > len(LETTERS) or answer not in labels:
            continue
        letter = LETTERS[labels.index(answer)]
        records.append({"id": f"arc-{item_id}", "prompt": format_choice_prompt(stem, choices), "answers": [letter],
                        "metadata": {"choices": choices, "task": "arc_challenge"}})
    return records


def _arc_from_mirror(row: dict) -> tuple[str, str, list[str], list[str], str]:
    """The mirror's question text is ``stem`` + blank line + one ``X) option`` line per option."""
    options = _ARC_OPTION.findall(row["question"])
    stem = row["question"][:_ARC_OPTION.search(row["question"]).start()].strip() if options else row["question"]
    return str(row["id"]), stem, [text.strip() for _, text in options], [label for label, _ in options], row["answer"]


# --- IFEval (probe) ---------------------------------------------------------------------------


def ifeval(split: str = "test", mirror: str | None = None) -> list[dict]:
    """IFEval prompts whose instructions our checkers all cover (316 of 541)."""
    if split != "test":
        raise ValueError(f"ifeval has only a 'test' split, got {split!r}")
    if mirror:
        path = Path(mirror) / "ifeval" / "input_data.jsonl"
        if not path.is_file():
            raise FileNotFoundError(f"dataset 'ifeval': {path} not found; unset the mirror to read the hub id 'google/IFEval'")
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    else:
        import datasets

        rows = list(datasets.load_dataset("google/IFEval", split="train"))
    records = []
    for row in rows:
        ids = list(row["instruction_id_list"])
        if not all(i in ifeval_like.CHECKERS for i in ids):
            continue
        kwargs = [{k: v for k, v in (kw or {}).items() if v is not None} for kw in row["kwargs"]]
        records.append({
            "id": f"ifeval-{row['key']}", "prompt": row["prompt"],
            "answers": [json.dumps({"instruction_id_list": ids, "kwargs": kwargs})],
            "metadata": {"instruction_id_list": ids, "kwargs": kwargs, "task": "ifeval"},
        })
    return records


# --- expert responses -------------------------------------------------------------------------

EXPERTS = {
    "countdown": countdown.expert_solution,
    "ifeval_like": ifeval_like.expert_response,
    "mmlu": mmlu.expert_solution,
}


def expert_response(record: dict) -> str:
    """The expert (off-policy) response of a target-task record: a solver's derivation (Countdown),
    a constraint-satisfying template answer (IFEval-style), a short rationale and the gold letter (MMLU), or
    the demonstration a game-demo record carries (its ``metadata.response``)."""
    task = record.get("metadata", {}).get("task")
    if task == "game_demo":  # a record that carries its demonstration (suite.envs.registry:game_demos)
        return record["metadata"]["response"]
    if task not in EXPERTS:
        raise ValueError(f"record {record.get('id')!r}: no expert response for task {task!r}; "
                         f"expert data exists for {sorted(EXPERTS)} and game demonstrations (task 'game_demo')")
    return EXPERTS[task](record)
