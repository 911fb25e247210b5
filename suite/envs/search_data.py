"""Question sets and passage corpora of the search agent (IGPO), registered in ``suite/data.py``.

Question datasets give records ``{id, prompt, answers, metadata}``; corpora (split ``corpus``)
give passage lines ``{id, title, text}`` and are *generators* (yielded line by line), so a large
corpus streams from the mirror into ``data/<name>/corpus.jsonl`` without being held in memory.

* ``igpo_world`` / ``igpo_world_corpus``: the synthetic world of :mod:`suite.envs.synthetic_world`
  (``WORLD`` sizes); every fifth person's questions are the test split.
* ``hotpotqa_ircot``: the 500 HotpotQA dev questions of the mirror's IRCoT subsample
  (``hotpotqa/dev_subsampled_ircot.jsonl``) whose supporting paragraphs are all in the corpus
  file ``wiki_corpus/hotpotqa500_paragraphs.jsonl``; a question is in the held-back test split when
  the first hex digit of sha1(question id) is below 4 (about a quarter), else in train.
* ``igpo_wiki``: that HotpotQA paragraph file plus the 1,000-passage wiki-18 sample
  (``wiki_corpus/flashrag_wiki18_sample1000.jsonl``), the corpus of the mini profile.
* ``wiki18``: the full FlashRAG wiki-18 dump (``wiki_corpus/wiki18_100w.jsonl``, 21M passages), the
  paper's corpus; it is not in this repository's mirror.
* ``igpo_paper_train``: NQ-open train + HotpotQA train, the paper's training mix (from the hub).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterator

from .search import parse_passage_record
from .synthetic_world import generate_world

WORLD = {"n_people": 40, "seed": 0}
HOTPOTQA_IRCOT = "hotpotqa/dev_subsampled_ircot.jsonl"
HOTPOTQA_PARAGRAPHS = "wiki_corpus/hotpotqa500_paragraphs.jsonl"
WIKI18_SAMPLE = "wiki_corpus/flashrag_wiki18_sample1000.jsonl"
WIKI18_FULL = "wiki_corpus/wiki18_100w.jsonl"


def _mirror_file(mirror: str | None, rel: str, name: str) -> Path:
    from ..data import MIRROR_ENV, DatasetNotFoundError

    if not mirror:
        raise DatasetNotFoundError(
            f"dataset {name!r} is built from the local mirror file {rel}: point --mirror / ${MIRROR_ENV} "
            f"(for a corpus also the IGPO option or lm_args key `mirror`) at a folder holding it (e.g. ../shared/data)")
    path = Path(mirror) / rel
    if not path.is_file():
        raise DatasetNotFoundError(f"dataset {name!r}: {path} not found (the mirror must hold {rel})")
    return path


def _jsonl(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


# --------------------------------------------------------------------------- synthetic world


def _world_person(question: dict) -> int:
    return int(question["id"][1:]) // 4  # four questions per person, ids q0, q1, ...


def world_questions(split: str) -> list[dict]:
    if split not in ("train", "test"):
        raise ValueError(f"igpo_world has splits train and test, not {split!r}")
    _, questions = generate_world(**WORLD)
    return [q for q in questions if (_world_person(q) % 5 == 0) == (split == "test")]


def world_corpus() -> Iterator[dict]:
    passages, _ = generate_world(**WORLD)
    yield from passages


# --------------------------------------------------------------------------- HotpotQA (IRCoT subsample)


def _is_test(question_id: str) -> bool:
    return hashlib.sha1(question_id.encode()).hexdigest()[0] in "0123"


def hotpotqa_questions(split: str, mirror: str | None = None) -> list[dict]:
    if split not in ("train", "test"):
        raise ValueError(f"hotpotqa_ircot has splits train and test, not {split!r}")
    rows = _jsonl(_mirror_file(mirror, HOTPOTQA_IRCOT, "hotpotqa_ircot"))
    titles = {parse_passage_record(p)[1] for p in _jsonl(_mirror_file(mirror, HOTPOTQA_PARAGRAPHS, "hotpotqa_ircot"))}
    out = []
    for row in rows:
        supporting = [c["title"] for c in row["contexts"] if c.get("is_supporting")]
        if not supporting or not set(supporting) <= titles or _is_test(row["question_id"]) != (split == "test"):
            continue
        answers = list(dict.fromkeys(s.strip() for a in row["answers_objects"] for s in a["spans"] if s.strip()))
        out.append({"id": row["question_id"], "prompt": row["question_text"], "answers": answers,
                    "metadata": {"supporting_titles": supporting}})
    return out


# --------------------------------------------------------------------------- corpora


def passages(files: list[str], name: str, mirror: str | None = None) -> Iterator[dict]:
    """``{id, title, text}`` lines of the mirror's corpus ``files``, streamed; ids must be unique."""
    paths = [_mirror_file(mirror, rel, name) for rel in files]  # all files checked before the first line
    seen: set[str] = set()
    for path in paths:
        for record in _jsonl(path):
            pid, title, text = parse_passage_record(record)
            if pid in seen:
                raise ValueError(f"corpus {name!r}: passage id {pid!r} of {path} occurs twice")
            seen.add(pid)
            yield {"id": pid, "title": title, "text": text}


# --------------------------------------------------------------------------- the paper's training mix


def paper_train(mirror: str | None = None) -> list[dict]:
    """NQ-open train and HotpotQA (distractor) train from the hub, as Search-R1 and IGPO train on."""
    import datasets

    nq = datasets.load_dataset("google-research-datasets/nq_open", "nq_open", split="train")
    hotpot = datasets.load_dataset("hotpotqa/hotpot_qa", "distractor", split="train")
    out = [{"id": f"nq-train-{i}", "prompt": r["question"], "answers": list(r["answer"]), "metadata": {"source": "nq"}}
           for i, r in enumerate(nq)]
    out += [{"id": r["id"], "prompt": r["question"], "answers": [r["answer"]], "metadata": {"source": "hotpotqa"}}
            for r in hotpot]
    return out
