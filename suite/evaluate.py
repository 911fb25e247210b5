"""Evaluate a checkpoint on one task through lm-eval's Python API.

Tasks are lm-eval YAMLs found through ``TaskManager(include_path="tasks")``;
the prepared data root reaches their ``custom_dataset`` loader as task metadata.
A profile may override a task's settings (``repeats``, ``generation_kwargs``)
without touching the YAML: the YAML is loaded with lm-eval's own loader, the
overrides are merged in, and the result is passed as an inline task config.

Backends: ``rlrepro`` (suite/lm_backend.py: lm-eval's ``hf`` model generating
through the trainer's rollout engine) by default, ``vllm`` when it is installed
and a GPU is present, lm-eval's own ``hf`` on request (``--backend hf``). On the
CPU both compute in fp32 by default, so a score does not depend on the CPU type;
``--bf16 auto`` (a profile's ``eval.bf16: auto``) lets ``rlrepro`` generate in
bf16 where the CPU computes it natively. One results JSON per (checkpoint, task), written
atomically, with the per-sample outputs beside it.
"""

from __future__ import annotations

import copy
import importlib
import logging
import math
import statistics
from pathlib import Path
from typing import Any

import torch
import yaml

from . import import_object
from .data import default_tasks_dir, read_task_yaml
from .io import read_json, read_jsonl, samples_path, write_json, write_jsonl
from .models import resolve_model
from .rollout import has_vllm

# The task folder: $RLREPRO_TASKS_DIR when set (the Snakefile sets it to the tasks/ beside it), else the repository's
# tasks/. TASKS_DIR is read once at import (suite.config checks task names against it); the functions below take
# tasks_dir=None to mean "the folder the environment names now" (resolve_tasks_dir()).
TASKS_DIR = default_tasks_dir()

# Tasks scored outside lm-eval (game environments): task name -> "module:function". The function
# takes evaluate()'s arguments, writes the same results JSON (and samples) and returns it.
CUSTOM_TASKS: dict[str, str] = {
    # --- MS-GRPO (issue 4): game evaluations ---
    **{game: "suite.envs.evaluate_games:evaluate_game"
       for game in ("frozen_lake", "frozen_lake_slippery", "snake", "snake_poison_apple")},
}
_SKIP_METRICS = {"alias", "name", "sample_len", "sample_count", "samples"}


class TaskConfigError(ValueError):
    pass


def task_manager(tasks_dir: str | Path | None = None, metadata: dict | None = None,
                 include_defaults: bool = False):
    """lm-eval's TaskManager over our task folder (lm-eval's built-in tasks optional)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(resolve_tasks_dir(tasks_dir)), include_defaults=include_defaults, metadata=metadata)


def load_task_config(manager, task: str, overrides: dict | None = None) -> dict[str, Any]:
    """The task's YAML (includes resolved) with ``overrides`` merged in, as a dict."""
    from lm_eval.tasks._yaml_loader import load_yaml

    entry = manager.task_index.get(task)
    if entry is None or entry.yaml_path is None:
        raise TaskConfigError(
            f"unknown task {task!r}: no YAML defines it under {manager.include_path}. "
            f"Known tasks: {', '.join(sorted(t for t in manager.all_tasks if not t.startswith('_')))}"
        )
    try:
        cfg = copy.deepcopy(load_yaml(entry.yaml_path, resolve_func=True))
    except Exception as err:  # a malformed YAML: say which file
        raise TaskConfigError(f"task {task!r}: cannot load {entry.yaml_path}: {err}") from err
    for key in ("output_type", "doc_to_text", "process_results"):
        if key not in cfg:
            raise TaskConfigError(f"task {task!r} ({entry.yaml_path}): missing required key {key!r}")
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def resolve_tasks_dir(path: str | Path | None = None) -> Path:
    """``path``, else the task folder the environment names now (``$RLREPRO_TASKS_DIR``, else ``tasks/``)."""
    return Path(path) if path else default_tasks_dir()


def task_data(task: str, tasks_dir: str | Path | None = None) -> tuple[str, str] | None:
    """(dataset, split) that a task reads from ``data/``: what the workflow must prepare first
    (None for a custom task that reads no prepared data)."""
    from .data import DatasetSpecError

    if task in CUSTOM_TASKS:
        return None
    path = resolve_tasks_dir(tasks_dir) / f"{task}.yaml"
    if not path.is_file():
        raise TaskConfigError(f"unknown task {task!r}: no {path}")
    try:
        cfg = read_task_yaml(path)
    except DatasetSpecError as err:
        raise TaskConfigError(f"task {task!r}: {err}") from err
    kwargs = cfg.get("dataset_kwargs") or {}
    if "dataset" not in kwargs:
        raise TaskConfigError(f"task {task!r}: dataset_kwargs.dataset is missing (which data/ file it reads)")
    return kwargs["dataset"], kwargs.get("split", "test")


def default_backend() -> str:
    return "vllm" if torch.cuda.is_available() and has_vllm() else "rlrepro"


def evaluate(model: str, task: str, out: str | Path, *, data_dir: str = "data", limit: int | None = None,
             overrides: dict | None = None, seed: int = 0, batch_size: int = 16, backend: str | None = None,
             config_hash: str | None = None, tasks_dir: str | Path | None = None, bf16: bool | str = False,
             generation_rows: int | None = None) -> dict:
    """Run one task on one checkpoint and write ``out`` (JSON) and ``out``.samples.jsonl.

    ``bf16`` and ``generation_rows`` set the ``rlrepro`` backend's generation (fp32 on the CPU by default, bf16
    where native with ``"auto"``; rows per generation batch, default the larger of ``batch_size`` and
    suite/lm_backend.py's ``GENERATION_ROWS``); ``hf`` and ``vllm`` ignore them (``hf``: fp32 on the CPU, as
    lm-eval runs it). Measured (results/bench/eval.md): bf16 changed 46 of 50 greedy GSM8K answers, hence fp32."""
    import lm_eval

    backend = backend or default_backend()
    if task in CUSTOM_TASKS:
        custom = import_object(CUSTOM_TASKS[task], f"custom task {task!r}")
        return custom(model, task, out, data_dir=data_dir, limit=limit, overrides=overrides, seed=seed,
                      batch_size=batch_size, backend=backend, config_hash=config_hash)
    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    location = resolve_model(model)
    tasks_dir = resolve_tasks_dir(tasks_dir)
    # data_dir and tasks_dir reach the YAMLs' custom_dataset loader (tasks/utils.py:load_records) as metadata
    manager = task_manager(tasks_dir, metadata={"data_dir": str(Path(data_dir).resolve()),
                                                "tasks_dir": str(tasks_dir.resolve())})
    task_cfg = load_task_config(manager, task, overrides)
    # A task may name the lm-eval model that runs it (an agent registered with lm-eval):
    # metadata: {lm: <registered name>, lm_module: <module that registers it>, lm_args: {...}}
    meta = task_cfg.get("metadata") or {}
    if meta.get("lm"):
        if not meta.get("lm_module"):
            raise TaskConfigError(f"task {task!r}: metadata.lm = {meta['lm']!r} needs metadata.lm_module, "
                                  "the module that registers that model with lm-eval")
        importlib.import_module(meta["lm_module"])
        model_args = {"pretrained": location, "batch_size": batch_size, "seed": seed,
                      "data_dir": str(Path(data_dir).resolve()), **(meta.get("lm_args") or {})}
        backend = meta["lm"]
    elif backend == "vllm":
        model_args = {"pretrained": location, "dtype": "bfloat16", "seed": seed, "gpu_memory_utilization": 0.8}
    else:
        gpu = torch.cuda.is_available()
        model_args = {"pretrained": location, "dtype": "bfloat16" if gpu else "float32",
                      "device": "cuda" if gpu else "cpu", "batch_size": batch_size}
        if backend == "rlrepro":
            from suite.lm_backend import GENERATION_ROWS  # importing it registers the model with lm-eval

            model_args.update(bf16=bf16, generation_rows=generation_rows or max(batch_size, GENERATION_ROWS))
    output = lm_eval.simple_evaluate(
        model=backend, model_args=model_args, tasks=[task_cfg], task_manager=manager, limit=limit,
        apply_chat_template=True, log_samples=True, random_seed=seed, numpy_random_seed=seed,
        torch_random_seed=seed, fewshot_random_seed=seed, bootstrap_iters=0,
    )
    samples = output.get("samples", {}).get(task, [])
    result = _summarise(output, samples, task, task_cfg, model, limit, seed, backend, config_hash)
    if backend == "rlrepro":
        from .precision import resolve_bf16

        result["generation_precision"] = "bf16" if resolve_bf16(bf16, "cuda" if gpu else "cpu") else "fp32"
    write_jsonl(samples_path(out), (_sample_row(s) for s in samples))
    write_json(out, result)
    return result


def _stderr_of_mean(per_doc: list[float]) -> float | None:
    """Standard error of the mean over problems (sample standard deviation); None for a single problem."""
    return statistics.stdev(per_doc) / math.sqrt(len(per_doc)) if len(per_doc) > 1 else None


def _summarise(output: dict, samples: list[dict], task: str, cfg: dict, model: str, limit, seed: int,
               backend: str, config_hash: str | None) -> dict:
    """Metric means from lm-eval; standard errors of the mean from the per-sample values."""
    raw = output["results"][task]
    metrics = {}
    for key, value in raw.items():
        name = key.partition(",")[0]
        if name in _SKIP_METRICS or name.endswith("_stderr") or not isinstance(value, (int, float)):
            continue
        metrics[name] = {"value": value, "stderr": _stderr_of_mean([float(s[name]) for s in samples if name in s])}
    return {
        "task": task,
        "model": model,
        "metrics": metrics,
        "n": output["n-samples"][task]["effective"],
        "limit": limit,
        "sampling": {"repeats": cfg.get("repeats", 1), "generation_kwargs": cfg.get("generation_kwargs", {})},
        "backend": backend,
        "lm_eval_version": output.get("config", {}).get("lm_eval_version") or _lm_eval_version(),
        "seed": seed,
        "config_hash": config_hash,
    }


def rescore(path: str | Path, tasks_dir: str | Path | None = None) -> dict:
    """Score a results file's saved responses again with the task's current ``process_results``.

    For when a scorer is fixed after the generations were made: the same responses (beside the results
    JSON in ``.samples.jsonl``) get the scores a fresh evaluation with the same samples would give, without
    generating again. Metric means and standard errors are recomputed as :func:`evaluate` computes them;
    the previous values are kept under ``rescored.previous``. Both files are rewritten atomically.
    Tasks scored outside lm-eval's ``process_results`` (agents, games) cannot be rescored this way.
    """
    path = Path(path)
    saved = samples_path(path)
    try:
        result = read_json(path)
    except ValueError as err:  # a half-written or malformed file
        raise ValueError(f"{path}: not a results file written by `python -m suite evaluate` ({err})") from None
    if not isinstance(result, dict) or not {"task", "metrics"} <= set(result):
        raise ValueError(f"{path}: not a results file written by `python -m suite evaluate` "
                         "(it needs the keys 'task' and 'metrics')")
    if not saved.is_file():
        raise FileNotFoundError(f"{path}: no saved responses at {saved}, so it cannot be rescored")
    if result["task"] in CUSTOM_TASKS:
        raise TaskConfigError(f"{path}: task {result['task']!r} is scored by {CUSTOM_TASKS[result['task']]}, "
                              "not by a process_results function; evaluate it again instead")
    process = load_task_config(task_manager(tasks_dir), result["task"]).get("process_results")
    if not callable(process):
        raise TaskConfigError(f"{path}: task {result['task']!r} has no process_results function to rescore with")
    rows = read_jsonl(saved)
    repeats = int((result.get("sampling") or {}).get("repeats") or 1)
    short = [row["id"] for row in rows if len(row["responses"]) < repeats]
    if short:
        raise ValueError(f"{path}: {len(short)} problems have fewer saved responses than the task's {repeats} "
                         f"samples (e.g. {short[0]!r}; files written before every sample was kept); "
                         "evaluate it again instead")
    for row in rows:
        doc = {k: row[k] for k in ("id", "prompt", "answers")}
        row["metrics"] = {k: float(v) for k, v in process(doc, [row["responses"]]).items()}
    previous = {name: dict(m) for name, m in result["metrics"].items()}
    for name in result["metrics"]:
        per_doc = [row["metrics"][name] for row in rows]
        result["metrics"][name] = {"value": sum(per_doc) / len(per_doc), "stderr": _stderr_of_mean(per_doc)}
    result["rescored"] = {"previous": previous, "by": "python -m suite rescore"}
    write_jsonl(saved, rows)
    write_json(path, result)
    return result


def _sample_row(sample: dict) -> dict:
    doc = sample.get("doc", {})
    return {
        "id": doc.get("id"), "prompt": doc.get("prompt"), "answers": doc.get("answers"),
        # every response: with ``repeats: k`` lm-eval holds the k samples of a problem in one request
        "responses": [text for r in sample.get("resps", []) for text in (r if isinstance(r, list) else [r])],
        "metrics": {k: sample[k] for k in sample.get("metrics", []) if k in sample},
    }


def _lm_eval_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("lm_eval")
