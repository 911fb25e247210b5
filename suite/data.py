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
and both ways to provide it; a source file that cannot be read (a cut or bad line,
a missing field, no rows) raises :class:`DataFileError` naming the file, the line
or key, and the fix.

A dataset that is not in :data:`REGISTRY` can be declared inline in a task YAML
(``dataset_kwargs.spec``); ``prepare(name)`` finds that declaration in the tasks
folder (``$RLREPRO_TASKS_DIR``, default ``tasks/``), so the workflow prepares it
like a registered one. Beside each prepared file ``<split>.spec.json`` records the
hash of the spec it was made from: a task whose inline spec changed prepares it again.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import glob
import hashlib
import inspect
import json
import os
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import yaml

from . import import_object
from .io import write_json, write_jsonl

MIRROR_ENV = "RLREPRO_DATA_MIRROR"
TASKS_DIR_ENV = "RLREPRO_TASKS_DIR"
REPO_TASKS_DIR = Path(__file__).resolve().parent.parent / "tasks"
DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


class DatasetNotFoundError(FileNotFoundError):
    pass


class DataFileError(ValueError):
    """A source or prepared data file that cannot be read: the message names the file, the line or key, and the fix."""


class DatasetSpecError(ValueError):
    """An inline dataset declaration that is malformed or conflicts with another one (names the task files)."""


def default_tasks_dir() -> Path:
    """The folder of task YAMLs: ``$RLREPRO_TASKS_DIR`` when set (the workflow sets it to the ``tasks/``
    beside its Snakefile), else the repository's ``tasks/``."""
    return Path(os.environ.get(TASKS_DIR_ENV) or REPO_TASKS_DIR)


@dataclass(frozen=True)
class Fields:
    """How one source's rows become records.

    ``prompt`` is a ``str.format`` template over the row whose fields may be dotted
    paths (``{question.stem}``, ``{prompt.0.content}``); a field that holds a chat
    (a list of ``{role, content}`` messages, as in verl's parquet files) renders as
    its last user message. ``answers`` and ``id`` are dotted paths into the row
    (``answers_objects.0.spans``, ``reward_model.ground_truth``); ``answer_regex``
    pulls the final answer out of a worked solution (group 1).

    Multiple choice: ``choices`` is the dotted path of the option texts; they are
    appended to the prompt as ``A. ...`` lines and kept in ``metadata.choices``, and
    the gold answer becomes the option's letter. When the source labels options other
    than A, B, C... (ARC's ``1``-``4``), ``choice_labels`` is the path of the labels
    the answer field names.
    """

    prompt: str
    answers: str
    answer_regex: str | None = None
    id: str | None = None
    metadata: tuple[str, ...] = ()
    choices: str | None = None
    choice_labels: str | None = None


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
        # random legal play on the 3x3 lake of the claims profile (12 moves), every decision a supervised record:
        # the format warm start of MS-GRPO's arms (suite.envs.registry:game_demos; docs/claims.md)
        DatasetSpec("frozen_lake_3x3_random_demos", generator="suite.envs.registry:game_demos",
                    generator_kwargs={"train": {"game": "frozen_lake", "split": "train", "n": 300, "policy": "random",
                                                "game_kwargs": {"size": 3, "max_steps": 12}, "style": "direct"}}),
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
        # The smoke profile's small training sets, which tiny-llama-warm is fitted to answer about half the time
        # (suite/warmup.py): 16 single-digit additions, 16 two-number Countdown puzzles
        DatasetSpec("arithmetic_smoke", generator="suite.tasks.arithmetic:generate",
                    generator_kwargs={"train": {"split": "train", "n": 16, "digits": 1, "ops": "+"},
                                      "test": {"split": "test", "n": 8, "digits": 1, "ops": "+"}}),
        DatasetSpec("countdown_smoke", generator="suite.tasks.retaining:countdown_split",
                    generator_kwargs={split: {"split": split, "n": n, "n_numbers": (2, 2), "max_number": 12,
                                              "max_target": 24} for split, n in (("train", 16), ("test", 8))}),
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


LETTERS = string.ascii_uppercase


def get_spec(name: str, tasks_dir: str | os.PathLike | None = None) -> DatasetSpec:
    """The registered dataset ``name``, else the one a task YAML in ``tasks_dir`` declares inline."""
    if name in REGISTRY:
        return REGISTRY[name]
    declared = declared_spec(name, tasks_dir)
    if declared is not None:
        return declared[0]
    raise DatasetNotFoundError(
        f"unknown dataset {name!r}; registered datasets: {', '.join(sorted(REGISTRY))}; no task YAML in "
        f"{Path(tasks_dir or default_tasks_dir())} declares it. Add one to suite/data.py REGISTRY, or declare it "
        "in a task YAML's dataset_kwargs (dataset: NAME, spec: {hub_id, hub_splits, mirror_files, fields})."
    )


_SPEC_KEYS = {"hub_id", "hub_config", "hub_splits", "mirror_files", "fields", "mirror_fields"}
_FIELD_KEYS = {f.name for f in dataclasses.fields(Fields)}


def spec_from_dict(name: str, d: dict[str, Any], source: str | os.PathLike | None = None) -> DatasetSpec:
    """A dataset declared inline (e.g. in a task YAML's ``dataset_kwargs``); ``source`` names that file in errors."""
    where = f"dataset {name!r}" + (f" ({source})" if source else "")
    if not isinstance(d, dict):
        raise DatasetSpecError(f"{where}: spec must be a mapping, got {type(d).__name__}")
    unknown = set(d) - _SPEC_KEYS
    if unknown:
        raise DatasetSpecError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(_SPEC_KEYS)}")
    if "fields" not in d:
        raise DatasetSpecError(f"{where}: 'fields' (prompt, answers) is required")

    def fields(key):
        x = d.get(key)
        if x is None:
            return None
        if not isinstance(x, dict):
            raise DatasetSpecError(f"{where}: {key} must be a mapping of {sorted(_FIELD_KEYS)}")
        bad = set(x) - _FIELD_KEYS
        if bad:
            raise DatasetSpecError(f"{where}: unknown {key} keys {sorted(bad)}; allowed: {sorted(_FIELD_KEYS)}")
        missing = {"prompt", "answers"} - set(x)
        if missing:
            raise DatasetSpecError(f"{where}: {key} needs {sorted(missing)}")
        return Fields(**{k: tuple(v) if k == "metadata" else v for k, v in x.items()})

    for key in ("hub_splits", "mirror_files"):
        if not isinstance(d.get(key, {}), dict):
            raise DatasetSpecError(f"{where}: {key} must map a split to a hub split / mirror file, e.g. {{test: ...}}")
    return DatasetSpec(
        name=name, fields=fields("fields"), mirror_fields=fields("mirror_fields"),
        hub_id=d.get("hub_id"), hub_config=d.get("hub_config"),
        hub_splits=dict(d.get("hub_splits", {})), mirror_files=dict(d.get("mirror_files", {})),
    )


# --- the spec a prepared file was made from --------------------------------------------------------------

def _jsonable(x: Any) -> Any:
    if dataclasses.is_dataclass(x):
        return {f.name: _jsonable(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if callable(x):
        return f"{getattr(x, '__module__', '?')}:{getattr(x, '__qualname__', repr(x))}"
    return x


def spec_hash(spec: DatasetSpec) -> str:
    """A stable hash of everything that decides a dataset's records (source, splits, field mapping)."""
    text = json.dumps(_jsonable(spec), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def spec_path(data_dir: str | os.PathLike, name: str, split: str) -> Path:
    """``<data_dir>/<name>/<split>.spec.json``: the spec hash of the prepared ``<split>.jsonl`` beside it."""
    return Path(data_dir) / name / f"{split}.spec.json"


def is_current(spec: DatasetSpec, split: str, data_dir: str | os.PathLike) -> bool:
    """Whether ``data/<name>/<split>.jsonl`` exists and was prepared from this very spec."""
    if not data_path(data_dir, spec.name, split).is_file():
        return False
    try:
        recorded = json.loads(spec_path(data_dir, spec.name, split).read_text()).get("spec_hash")
    except (OSError, ValueError, AttributeError):
        return False
    return recorded == spec_hash(spec)


# --- datasets declared inline in task YAMLs --------------------------------------------------------------

class _TagTolerantLoader(yaml.SafeLoader):
    """Reads task YAMLs without importing the functions their ``!function`` tags name."""


_TagTolerantLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def read_task_yaml(path: str | os.PathLike) -> dict:
    """A task YAML with its ``include`` chain merged (lm-eval's shallow merge; ``!function`` tags read as None)."""
    path, cfg, seen = Path(path), {}, set()
    while path is not None:
        if path in seen:
            raise DatasetSpecError(f"{path}: include cycle")
        seen.add(path)
        try:
            layer = yaml.load(path.read_text(), Loader=_TagTolerantLoader) or {}
        except yaml.YAMLError as err:
            raise DatasetSpecError(f"{path} is not valid YAML: {err}") from err
        except OSError as err:
            raise DatasetSpecError(f"cannot read task file {path}: {err}") from err
        if not isinstance(layer, dict):
            raise DatasetSpecError(f"{path}: a task YAML must be a mapping, got {type(layer).__name__}")
        cfg = {**layer, **cfg}
        include = layer.get("include")
        path = path.parent / include if include else None
    return cfg


@functools.lru_cache(maxsize=8)
def _declared(tasks_dir: str, stamp: tuple) -> dict[str, tuple[DatasetSpec, Path]]:
    found: dict[str, tuple[DatasetSpec, Path]] = {}
    for path, _ in stamp:
        path = Path(path)
        kwargs = read_task_yaml(path).get("dataset_kwargs") or {}
        if not isinstance(kwargs, dict) or not kwargs.get("spec") or not kwargs.get("dataset"):
            continue
        name = str(kwargs["dataset"])
        spec = spec_from_dict(name, kwargs["spec"], source=path)
        if name in REGISTRY:
            raise DatasetSpecError(
                f"{path} declares dataset {name!r} inline, but suite/data.py REGISTRY already defines {name!r}: "
                f"give the inline dataset another name, or drop its spec to use the registered one")
        if name in found and spec_hash(found[name][0]) != spec_hash(spec):
            raise DatasetSpecError(
                f"dataset {name!r} is declared twice with different specs: in {found[name][1]} and in {path}. "
                "Make the two spec blocks identical, or give one dataset another name (dataset_kwargs.dataset)")
        found.setdefault(name, (spec, path))
    return found


def declared_specs(tasks_dir: str | os.PathLike | None = None) -> dict[str, tuple[DatasetSpec, Path]]:
    """Every dataset the task YAMLs in ``tasks_dir`` declare inline: name -> (spec, first file declaring it).

    Raises :class:`DatasetSpecError` naming both files when two declare one name with different specs,
    and when an inline name shadows a registered dataset. Validation hook for ``python -m suite validate``.
    """
    root = Path(tasks_dir or default_tasks_dir()).resolve()
    stamp = tuple((str(p), p.stat().st_mtime_ns) for p in sorted(root.glob("*.yaml")))
    return _declared(str(root), stamp)


def declared_spec(name: str, tasks_dir: str | os.PathLike | None = None) -> tuple[DatasetSpec, Path] | None:
    """The inline declaration of dataset ``name`` in ``tasks_dir`` (spec, file), or None."""
    return declared_specs(tasks_dir).get(name)


# --- prepare ---------------------------------------------------------------------------------------------

def data_path(data_dir: str | os.PathLike, name: str, split: str) -> Path:
    return Path(data_dir) / name / f"{split}.jsonl"


def prepare(spec: DatasetSpec | str, split: str, data_dir: str | os.PathLike = "data",
            mirror: str | os.PathLike | None = None, tasks_dir: str | os.PathLike | None = None) -> Path:
    """Write ``<data_dir>/<name>/<split>.jsonl`` from the mirror, the hub, or the generator.

    ``spec`` is a spec, or a name: a registered dataset, else one a task YAML in ``tasks_dir``
    (default: :func:`default_tasks_dir`) declares inline.
    """
    spec = get_spec(spec, tasks_dir) if isinstance(spec, str) else spec
    if split not in spec.splits:
        hint = "" if spec.generator is not None else (
            f". Declare where it comes from: hub_splits: {{{split}: <the hub's split>}} with a hub_id, and/or "
            + _mirror_key_hint(spec, split))
        raise DatasetNotFoundError(f"dataset {spec.name!r} has no split {split!r}; it has {spec.splits}{hint}")
    mirror = mirror or os.environ.get(MIRROR_ENV) or None
    if spec.generator is not None:
        generator = import_object(spec.generator, f"dataset {spec.name!r} generator")
        kwargs = dict(spec.generator_kwargs[split])
        reads_source = "mirror" in inspect.signature(generator).parameters  # it reads the hub or a mirror itself
        if reads_source:
            kwargs["mirror"] = mirror
        try:
            records = list(generator(**kwargs))  # a generator may yield (the corpora)
        except OSError as err:  # datasets raises ConnectionError (an OSError) when the hub is out of reach
            if not reads_source or mirror is not None:
                raise
            raise _hub_unreachable(spec, split, err) from err
        source = f"generator {_jsonable(spec.generator)}"
    elif mirror is not None and (split in spec.mirror_files or not _has_hub(spec, split)):
        records, source = _from_mirror(spec, split, Path(mirror))
    else:  # no mirror, or a mirror without this dataset's file while the hub has it
        records, source = _from_hub(spec, split, mirror=mirror)
    if not records:
        raise DataFileError(
            f"dataset {spec.name!r} split {split!r}: {source} gave 0 records. An empty or truncated file: "
            "copy it again (or check the spec's hub split / mirror_files points at the right file)")
    out = data_path(data_dir, spec.name, split)
    write_jsonl(out, records)
    write_json(spec_path(data_dir, spec.name, split),
               {"dataset": spec.name, "split": split, "spec_hash": spec_hash(spec), "source": str(source),
                "records": len(records), "spec": _jsonable(spec)})
    return out


def load_records(name: str, split: str, data_dir: str | os.PathLike = "data") -> list[dict]:
    """Read prepared records; the only way code downstream of prepare reads data."""
    path = data_path(data_dir, name, split)
    if not path.is_file():
        raise DatasetNotFoundError(
            f"{path} does not exist: run `python -m suite prepare {name} --split {split} "
            f"--data-dir {data_dir}` (reads the hub, or a mirror given by --mirror / ${MIRROR_ENV})"
        )
    fix = f"delete it and run `python -m suite prepare {name} --split {split} --data-dir {data_dir}` again"
    records = [row for _, row in _read_jsonl(path, fix)]
    if not records:
        raise DataFileError(f"{path} holds no records (an empty or cut-off prepared file): {fix}")
    return records


def _has_hub(spec: DatasetSpec, split: str) -> bool:
    return spec.hub_id is not None and split in spec.hub_splits


def _mirror_key_hint(spec: DatasetSpec, split: str) -> str:
    return (f"the spec's mirror_files maps each split to its file under the mirror folder, e.g. "
            f"mirror_files: {{{split}: {spec.name}/{split}.jsonl}} (.jsonl, .json, .csv or .parquet; globs allowed)")


def _from_mirror(spec: DatasetSpec, split: str, mirror: Path) -> tuple[list[dict], str]:
    rel = spec.mirror_files.get(split)
    if rel is None:
        raise DatasetNotFoundError(
            f"dataset {spec.name!r} split {split!r} has no file in a local mirror ({mirror}) and no hub source. "
            f"Add one: {_mirror_key_hint(spec, split)}"
        )
    paths = sorted(glob.glob(str(mirror / rel)))
    if not paths:
        raise DatasetNotFoundError(
            f"dataset {spec.name!r} split {split!r}: {mirror / rel} not found (mirror_files: {{{split}: {rel}}}). "
            f"Provide it either by (1) pointing --mirror / ${MIRROR_ENV} at a folder holding {rel}, or correcting "
            f"mirror_files to the file's path relative to the mirror folder, or "
            f"(2) leaving the mirror unset with internet access to the hub id {spec.hub_id!r}."
        )
    rows = (item for path in paths for item in _read_rows(Path(path)))
    source = paths[0] if len(paths) == 1 else f"{mirror / rel} ({len(paths)} files)"
    return _to_records(spec, split, rows, spec.mirror_fields or spec.fields), source


def _from_hub(spec: DatasetSpec, split: str, mirror: Path | str | None = None) -> tuple[list[dict], str]:
    if not _has_hub(spec, split):
        raise DatasetNotFoundError(f"dataset {spec.name!r} split {split!r} has no hub source; use a mirror: "
                                   + _mirror_key_hint(spec, split))
    import datasets

    try:
        rows = datasets.load_dataset(spec.hub_id, spec.hub_config, split=spec.hub_splits[split])
    except Exception as err:  # offline, gated, renamed: say how else to get it
        raise _hub_unreachable(spec, split, err, mirror) from err
    where = f"hub {spec.hub_id}" + (f" ({spec.hub_config})" if spec.hub_config else "") + f" split {spec.hub_splits[split]}"
    items = ((f"{where} row {i}", row) for i, row in enumerate(rows))
    return _to_records(spec, split, items, spec.fields), where


def _hub_unreachable(spec: DatasetSpec, split: str, err: Exception, mirror=None) -> DatasetNotFoundError:
    rel = spec.mirror_files.get(split)
    where = (f"holding {rel} via --mirror / ${MIRROR_ENV}" if rel else
             f"via --mirror / ${MIRROR_ENV}, with {_mirror_key_hint(spec, split)}")
    note = f" (the mirror {mirror} has no file for it)" if mirror and not rel else ""
    return DatasetNotFoundError(
        f"dataset {spec.name!r} split {split!r}: could not read hub id {spec.hub_id!r}{note} ({err}). "
        f"Provide it either by (1) internet access to the hub, or (2) a local mirror folder {where}."
    )


# --- reading source files, with errors that name the file and line ---------------------------------------

def _read_jsonl(path: Path, fix: str) -> Iterator[tuple[str, dict]]:
    with open(path, "rb") as f:
        data = f.read()
    lines = data.decode("utf-8", errors="replace").split("\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            if i == last and not data.endswith(b"\n"):
                raise DataFileError(f"{path}:{i + 1}: the last line is cut off ({err.msg}; the file was not "
                                    f"completely written or copied): {fix}") from None
            raise DataFileError(f"{path}:{i + 1}: not valid JSON ({err.msg} at column {err.colno}): {fix}") from None
        if not isinstance(row, dict):
            raise DataFileError(f"{path}:{i + 1}: a line must be a JSON object, got {type(row).__name__}: {fix}")
        yield f"{path}:{i + 1}", row


def _read_rows(path: Path) -> Iterator[tuple[str, dict]]:
    """(location, row) for each row of a .jsonl, .json (a list, or JSON lines), .csv or .parquet file."""
    fix = "copy the file again from its source (or fix that line)"
    if path.stat().st_size == 0:
        raise DataFileError(f"{path} is empty (0 bytes): copy the file again from its source")
    if path.suffix == ".jsonl":
        yield from _read_jsonl(path, fix)
    elif path.suffix == ".json":
        text = path.read_text()
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            if err.msg == "Extra data":  # JSON lines under a .json name (common on the hub)
                yield from _read_jsonl(path, fix)
                return
            raise DataFileError(f"{path}:{err.lineno}: not valid JSON ({err.msg} at column {err.colno}); "
                                f"a cut-off file ends this way: {fix}") from None
        if isinstance(rows, dict) and len(rows) == 1 and isinstance(next(iter(rows.values())), list):
            rows = next(iter(rows.values()))  # {"data": [...]}
        if not isinstance(rows, list):
            raise DataFileError(f"{path}: a .json data file must hold a list of records (or JSON lines), "
                                f"got {type(rows).__name__}")
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise DataFileError(f"{path}: item {i} is a {type(row).__name__}, not a record (JSON object)")
            yield f"{path} item {i}", row
    elif path.suffix == ".csv":
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            for row in reader:
                where = f"{path}:{reader.line_num}"
                if None in row or any(v is None for v in row.values()):
                    got = sum(v is not None for k, v in row.items() if k is not None) + len(row.get(None) or [])
                    raise DataFileError(f"{where}: {got} columns where the header has {len(reader.fieldnames)} "
                                        f"(a cut or malformed line): {fix}")
                yield where, {**row, "_file": path.stem}
    elif path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except (pa.ArrowException, OSError) as err:
            raise DataFileError(f"{path}: not a readable parquet file ({err}): {fix}") from None
        for i, row in enumerate(rows):
            yield f"{path} row {i}", row
    else:
        raise DataFileError(f"unsupported data file type: {path} (supported: {', '.join(DATA_SUFFIXES)})")


class _MissingField(KeyError):
    pass


def _lookup(row: Any, dotted: str) -> Any:
    value = row
    for key in dotted.split("."):
        try:
            if isinstance(value, (list, tuple)):
                value = value[int(key)]
            elif isinstance(value, dict):
                value = value[key]
            else:
                raise KeyError(key)
        except (KeyError, IndexError, ValueError):
            raise _MissingField(dotted) from None
    return value


def _chat_text(value: Any) -> Any:
    """A chat (list of {role, content}) as its last user message; anything else unchanged."""
    if isinstance(value, list) and value and all(isinstance(m, dict) and "content" in m for m in value):
        users = [m for m in value if m.get("role") == "user"] or value
        return users[-1]["content"]
    return value


class _RowFormatter(string.Formatter):
    """``str.format`` whose field names may be dotted paths into the row."""

    def get_field(self, field_name, args, kwargs):
        if "[" in field_name:
            return super().get_field(field_name, args, kwargs)
        return _chat_text(_lookup(kwargs, field_name)), field_name


_FORMATTER = _RowFormatter()


def _record(spec: DatasetSpec, split: str, i: int, row: dict, fields: Fields) -> dict:
    answers = _lookup(row, fields.answers)
    answers = list(answers) if isinstance(answers, (list, tuple)) else [answers]
    if fields.answer_regex:
        answers = [_extract(fields.answer_regex, str(a), spec.name) for a in answers]
    prompt = _FORMATTER.format(fields.prompt, **row)
    metadata = {k: row[k] for k in fields.metadata if k in row}
    if fields.choices:
        choices = [str(c) for c in _lookup(row, fields.choices)]
        if len(choices) > len(LETTERS):
            raise ValueError(f"{len(choices)} options, more than {len(LETTERS)} letters")
        labels = [str(x) for x in _lookup(row, fields.choice_labels)] if fields.choice_labels else list(LETTERS)
        letters = []
        for a in answers:
            a = str(a).strip()
            if a not in labels[:len(choices)]:
                raise ValueError(f"answer {a!r} is not one of the option labels {labels[:len(choices)]}")
            letters.append(LETTERS[labels.index(a)])
        answers = letters
        prompt += "\n" + "\n".join(f"{LETTERS[j]}. {c}" for j, c in enumerate(choices))
        metadata["choices"] = choices
    return {
        "id": str(_lookup(row, fields.id)) if fields.id else f"{spec.name}-{split}-{i}",
        "prompt": prompt,
        "answers": [str(a).strip() for a in answers],
        "metadata": metadata,
    }


def _to_records(spec: DatasetSpec, split: str, rows: Iterable[tuple[str, dict]], fields: Fields) -> list[dict]:
    records = []
    for i, (where, row) in enumerate(rows):
        try:
            records.append(_record(spec, split, i, row, fields))
        except (_MissingField, KeyError, IndexError) as err:
            key = err.args[0] if err.args else "?"
            keys = ", ".join(map(str, row)) if isinstance(row, dict) else type(row).__name__
            raise DataFileError(
                f"{where}: dataset {spec.name!r} needs field {key!r}, which this row does not have (its fields: "
                f"{keys}). Map the source's field names in the dataset spec's fields (mirror_fields when only the "
                "mirror file names them differently), or fix the row") from None
        except (ValueError, TypeError) as err:
            raise DataFileError(f"{where}: dataset {spec.name!r}: {err}") from None
    return records


def _extract(pattern: str, text: str, name: str) -> str:
    match = re.search(pattern, text, flags=re.MULTILINE)
    if match is None:
        raise ValueError(f"dataset {name!r}: answer_regex {pattern!r} does not match {text[-80:]!r}")
    return match.group(1).replace(",", "")
