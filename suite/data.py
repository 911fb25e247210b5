"""Dataset registry and the prepare step.

Each dataset has a name, the hub id / config / split a user with internet would
read, optionally the file that holds the same split in a *local mirror* (a folder
laid out like ``../shared/data``), and a mapping from that source's rows to the
one record schema everything downstream reads::

    {"id": str, "prompt": str, "answers": [str, ...], "metadata": {...}}

``prepare`` writes ``<data_dir>/<name>/<split>.jsonl``. It reads the hub by
default, or the mirror when one is named (``mirror=`` / ``--mirror`` / the
``RLREPRO_DATA_MIRROR`` environment variable). Procedural datasets are generated.
A dataset that cannot be found raises :class:`DatasetNotFoundError` naming it
and both ways to provide it.
"""

from __future__ import annotations

import csv
import glob
import inspect
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from . import import_object
from .io import read_jsonl, write_jsonl

MIRROR_ENV = "RLREPRO_DATA_MIRROR"


class DatasetNotFoundError(FileNotFoundError):
    pass


@dataclass(frozen=True)
class Fields:
    """How one source's rows become records.

    ``prompt`` is a ``str.format`` template over the row; ``answers`` and ``id``
    are dotted paths into the row (``answers_objects.0.spans``); ``answer_regex``
    pulls the final answer out of a worked solution (group 1).
    """

    prompt: str
    answers: str
    answer_regex: str | None = None
    id: str | None = None
    metadata: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    fields: Fields | None = None
    hub_id: str | None = None
    hub_config: str | None = None
    hub_splits: dict[str, str] = field(default_factory=dict)
    mirror_files: dict[str, str] = field(default_factory=dict)
    mirror_fields: Fields | None = None  # when the mirror file names fields differently
    generator: Callable[..., list[dict]] | str | None = None  # a function or "module:function"
    generator_kwargs: dict[str, dict] = field(default_factory=dict)  # split -> kwargs

    @property
    def splits(self) -> list[str]:
        return sorted(set(self.hub_splits) | set(self.mirror_files) | set(self.generator_kwargs))


def _arithmetic(**kwargs):
    from .tasks.arithmetic import generate

    return generate(**kwargs)


_MATH = Fields(prompt="{problem}", answers="answer", metadata=("level", "subject"))

REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec(
            "gsm8k",
            Fields(prompt="{question}", answers="answer", answer_regex=r"####\s*(.+)$"),
            hub_id="openai/gsm8k", hub_config="main",
            hub_splits={"train": "train", "test": "test"},
            mirror_files={"train": "gsm8k/train.jsonl", "test": "gsm8k/test.jsonl"},
        ),
        DatasetSpec(
            "math500", _MATH, hub_id="HuggingFaceH4/MATH-500",
            hub_splits={"test": "test"}, mirror_files={"test": "math500/test.jsonl"},
        ),
        DatasetSpec(
            "aime24", Fields(prompt="{problem}", answers="answer", id="id"),
            hub_id="HuggingFaceH4/aime_2024",
            hub_splits={"test": "train"}, mirror_files={"test": "aime24/test.jsonl"},
        ),
        DatasetSpec(
            "nq_open", Fields(prompt="{question}", answers="answer"),
            hub_id="google-research-datasets/nq_open", hub_config="nq_open",
            hub_splits={"test": "validation"}, mirror_files={"test": "nq_open/NQ-open.dev.jsonl"},
        ),
        DatasetSpec(
            "hotpotqa", Fields(prompt="{question}", answers="answer", id="id", metadata=("type", "level")),
            hub_id="hotpotqa/hotpot_qa", hub_config="distractor",
            hub_splits={"test": "validation"}, mirror_files={"test": "hotpotqa/dev_qa.json"},
            mirror_fields=Fields(prompt="{question}", answers="answer"),
        ),
        DatasetSpec(
            "arithmetic_2d", generator=_arithmetic,
            generator_kwargs={"train": {"split": "train", "n": 2000, "digits": 2},
                              "test": {"split": "test", "n": 200, "digits": 2}},
        ),
        # --- IGPO (issue 3): search corpora and the synthetic world ---
        # (suite/envs/search_data.py; a corpus is the `corpus` split of its name, {id, title, text} lines)
        DatasetSpec("igpo_world", generator="suite.envs.search_data:world_questions",
                    generator_kwargs={"train": {"split": "train"}, "test": {"split": "test"}}),
        DatasetSpec("igpo_world_corpus", generator="suite.envs.search_data:world_corpus",
                    generator_kwargs={"corpus": {}}),
        DatasetSpec("hotpotqa_ircot", generator="suite.envs.search_data:hotpotqa_questions",
                    generator_kwargs={"train": {"split": "train"}, "test": {"split": "test"}}),
        DatasetSpec("igpo_wiki", generator="suite.envs.search_data:passages",
                    generator_kwargs={"corpus": {"name": "igpo_wiki", "files": [
                        "wiki_corpus/hotpotqa500_paragraphs.jsonl", "wiki_corpus/flashrag_wiki18_sample1000.jsonl"]}}),
        DatasetSpec("wiki18", generator="suite.envs.search_data:passages",
                    generator_kwargs={"corpus": {"name": "wiki18", "files": ["wiki_corpus/wiki18_100w.jsonl"]}}),
        DatasetSpec("igpo_paper_train", generator="suite.envs.search_data:paper_train",
                    generator_kwargs={"train": {}}),
        # --- MS-GRPO (issue 4): game seeds ---
        *[DatasetSpec(f"{game}_seeds", generator="suite.envs.registry:game_seeds",
                      generator_kwargs={"train": {"game": game, "split": "train", "n": 2000},
                                        "test": {"game": game, "split": "test", "n": 200}})
          for game in ("frozen_lake", "frozen_lake_slippery", "snake", "snake_poison_apple")],
        # --- ExGRPO (issue 5): arithmetic with difficulty levels ---
        DatasetSpec(
            "arithmetic_levels", generator="suite.tasks.arithmetic:generate_levels",
            generator_kwargs={"train": {"split": "train", "n": 300}, "test": {"split": "test", "n": 30}},
        ),
        # --- Cooper (issue 6) ---
        # single-digit +, -, * (300 questions in all; the hash split leaves 28 for test): the 135M model's T = 1
        # samples are right about 1 time in 7 (scripts/base_passk.py), enough correct rollouts for a reward model to learn from
        DatasetSpec(
            "arithmetic_1d", generator=_arithmetic,
            generator_kwargs={"train": {"split": "train", "n": 240, "digits": 1, "ops": "+-*"},
                              "test": {"split": "test", "n": 25, "digits": 1, "ops": "+-*"}},
        ),
        # --- Retaining by Doing (issue 7): target tasks and probes ---
        DatasetSpec("countdown", generator="suite.tasks.retaining:countdown_split",
                    generator_kwargs={"train": {"split": "train", "n": 4000}, "test": {"split": "test", "n": 500}}),
        # Countdown made easy (2-3 numbers and the target in 1..20), to ask whether a small model ever solves it
        # (scripts/target_signal.py)
        DatasetSpec("countdown_easy", generator="suite.tasks.retaining:countdown_split",
                    generator_kwargs={split: {"split": split, "n": n, "n_numbers": (2, 3), "max_number": 20,
                                              "max_target": 20} for split, n in (("train", 1000), ("test", 100))}),
        DatasetSpec("ifeval_like", generator="suite.tasks.retaining:ifeval_like_split",
                    generator_kwargs={"train": {"split": "train", "n": 4000}, "test": {"split": "test", "n": 500}}),
        DatasetSpec("mmlu", hub_id="cais/mmlu", hub_config="all", generator="suite.tasks.retaining:mmlu_split",
                    generator_kwargs={"train": {"split": "train"}, "test": {"split": "test"}}),
        DatasetSpec("arc_challenge", hub_id="allenai/ai2_arc", hub_config="ARC-Challenge",
                    generator="suite.tasks.retaining:arc_challenge", generator_kwargs={"test": {"split": "test"}}),
        DatasetSpec("ifeval", hub_id="google/IFEval", generator="suite.tasks.retaining:ifeval",
                    generator_kwargs={"test": {"split": "test"}}),
    ]
}


def get_spec(name: str) -> DatasetSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise DatasetNotFoundError(
            f"unknown dataset {name!r}; registered datasets: {', '.join(sorted(REGISTRY))}. "
            "Add one to suite/data.py REGISTRY, or declare it in a task YAML's dataset_kwargs."
        ) from None


def spec_from_dict(name: str, d: dict[str, Any]) -> DatasetSpec:
    """A dataset declared inline (e.g. in a task YAML's ``dataset_kwargs``)."""
    known = {"hub_id", "hub_config", "hub_splits", "mirror_files", "fields", "mirror_fields"}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"dataset {name!r}: unknown keys {sorted(unknown)}; allowed: {sorted(known)}")
    if "fields" not in d:
        raise ValueError(f"dataset {name!r}: 'fields' (prompt, answers) is required")

    def fields(x):
        return None if x is None else Fields(**{k: tuple(v) if k == "metadata" else v for k, v in x.items()})

    return DatasetSpec(
        name=name, fields=fields(d["fields"]), mirror_fields=fields(d.get("mirror_fields")),
        hub_id=d.get("hub_id"), hub_config=d.get("hub_config"),
        hub_splits=dict(d.get("hub_splits", {})), mirror_files=dict(d.get("mirror_files", {})),
    )


def data_path(data_dir: str | os.PathLike, name: str, split: str) -> Path:
    return Path(data_dir) / name / f"{split}.jsonl"


def prepare(spec: DatasetSpec | str, split: str, data_dir: str | os.PathLike = "data",
            mirror: str | os.PathLike | None = None) -> Path:
    """Write ``<data_dir>/<name>/<split>.jsonl`` from the mirror, the hub, or the generator."""
    spec = get_spec(spec) if isinstance(spec, str) else spec
    if split not in spec.splits:
        raise DatasetNotFoundError(f"dataset {spec.name!r} has no split {split!r}; it has {spec.splits}")
    mirror = mirror or os.environ.get(MIRROR_ENV) or None
    if spec.generator is not None:
        generator = import_object(spec.generator, f"dataset {spec.name!r} generator")
        kwargs = dict(spec.generator_kwargs[split])
        reads_source = "mirror" in inspect.signature(generator).parameters  # it reads the hub or a mirror itself
        if reads_source:
            kwargs["mirror"] = mirror
        try:
            records = generator(**kwargs)
        except OSError as err:  # datasets raises ConnectionError (an OSError) when the hub is out of reach
            if not reads_source or mirror is not None:
                raise
            raise _hub_unreachable(spec, split, err) from err
    elif mirror is not None:
        records = _from_mirror(spec, split, Path(mirror))
    else:
        records = _from_hub(spec, split)
    out = data_path(data_dir, spec.name, split)
    write_jsonl(out, records)
    return out


def load_records(name: str, split: str, data_dir: str | os.PathLike = "data") -> list[dict]:
    """Read prepared records; the only way code downstream of prepare reads data."""
    path = data_path(data_dir, name, split)
    if not path.is_file():
        raise DatasetNotFoundError(
            f"{path} does not exist: run `python -m suite prepare {name} --split {split} "
            f"--data-dir {data_dir}` (reads the hub, or a mirror given by --mirror / ${MIRROR_ENV})"
        )
    return read_jsonl(path)


def _from_mirror(spec: DatasetSpec, split: str, mirror: Path) -> list[dict]:
    rel = spec.mirror_files.get(split)
    if rel is None:
        raise DatasetNotFoundError(
            f"dataset {spec.name!r} split {split!r} has no file in a local mirror; "
            f"unset {MIRROR_ENV} to read the hub id {spec.hub_id!r}"
        )
    paths = sorted(glob.glob(str(mirror / rel)))
    if not paths:
        raise DatasetNotFoundError(
            f"dataset {spec.name!r} split {split!r}: {mirror / rel} not found. Provide it either by "
            f"(1) pointing --mirror / ${MIRROR_ENV} at a folder holding {rel}, or "
            f"(2) leaving the mirror unset with internet access to the hub id {spec.hub_id!r}."
        )
    rows = (row for path in paths for row in _read_rows(Path(path)))
    return _to_records(spec, split, rows, spec.mirror_fields or spec.fields)


def _from_hub(spec: DatasetSpec, split: str) -> list[dict]:
    if spec.hub_id is None or split not in spec.hub_splits:
        raise DatasetNotFoundError(f"dataset {spec.name!r} split {split!r} has no hub source; use a mirror")
    import datasets

    try:
        rows = datasets.load_dataset(spec.hub_id, spec.hub_config, split=spec.hub_splits[split])
    except Exception as err:  # offline, gated, renamed: say how else to get it
        raise _hub_unreachable(spec, split, err) from err
    return _to_records(spec, split, rows, spec.fields)


def _hub_unreachable(spec: DatasetSpec, split: str, err: Exception) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"dataset {spec.name!r} split {split!r}: could not read hub id {spec.hub_id!r} ({err}). "
        f"Provide it either by (1) internet access to the hub, or (2) a local mirror folder "
        f"holding {spec.mirror_files.get(split, '<file>')} via --mirror / ${MIRROR_ENV}."
    )


def _read_rows(path: Path) -> Iterable[dict]:
    if path.suffix == ".jsonl":
        yield from read_jsonl(path)
    elif path.suffix == ".json":
        yield from json.loads(path.read_text())
    elif path.suffix == ".csv":
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                yield {**row, "_file": path.stem}
    else:
        raise ValueError(f"unsupported data file type: {path}")


def _lookup(row: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        row = row[int(key)] if isinstance(row, list) else row[key]
    return row


def _to_records(spec: DatasetSpec, split: str, rows: Iterable[dict], fields: Fields) -> list[dict]:
    records = []
    for i, row in enumerate(rows):
        answers = _lookup(row, fields.answers)
        answers = [answers] if not isinstance(answers, list) else answers
        if fields.answer_regex:
            answers = [_extract(fields.answer_regex, str(a), spec.name) for a in answers]
        records.append({
            "id": str(_lookup(row, fields.id)) if fields.id else f"{spec.name}-{split}-{i}",
            "prompt": fields.prompt.format(**row),
            "answers": [str(a).strip() for a in answers],
            "metadata": {k: row[k] for k in fields.metadata if k in row},
        })
    return records


def _extract(pattern: str, text: str, name: str) -> str:
    match = re.search(pattern, text, flags=re.MULTILINE)
    if match is None:
        raise ValueError(f"dataset {name!r}: answer_regex {pattern!r} does not match {text[-80:]!r}")
    return match.group(1).replace(",", "")
