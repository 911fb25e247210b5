"""Every bad input answered by name (issue 20, items 3-5).

One table: each row feeds one bad input (a profile key or type, a train_defaults value, a duplicate YAML key,
an eval override, a task YAML, a dataset or model name, a regression table, a half-written result, a cut log
line, a CLI error, a full disk, file permissions, a bad data file) and lists what its message must name: the
key, file or line at fault and the fix. Every row is fast: no model is built or trained.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import types
import warnings
from pathlib import Path

import pandas as pd
import pytest
import yaml

from suite import report
from suite.config import load_profile, parse_profile
from suite.io import SuiteWarning, append_jsonl, read_jsonl, write_json, write_text
from suite.regress import main as regress

REPO = Path(__file__).resolve().parent.parent
TOL = str(REPO / "config" / "tolerances.yaml")

# a small profile of its own (the shipped ones change with the project): an untrained row and a GRPO run
PROFILE = {
    "profile": "t", "model": "tiny-llama", "data": {"dir": "data"}, "runs_dir": "runs", "results_dir": "res",
    "eval": {"tasks": {"gsm8k": {"limit": 2}}},
    "train_defaults": {"steps": 3, "prompts_per_step": 2, "group_size": 4, "lr": 1.0e-5},
    "experiments": {
        "base": {"paper": "toy", "method": "base", "eval_tasks": ["gsm8k"]},
        "grpo": {"paper": "toy", "method": "grpo", "eval_tasks": ["gsm8k"], "train": {"max_new_tokens": 16}},
    },
}


def error_of(fn, exc=Exception) -> str:
    """The message of the error ``fn`` raises (the row fails when it raises none)."""
    with pytest.raises(exc) as info:
        fn()
    return str(info.value)


def profile_error(edit) -> str:
    raw = copy.deepcopy(PROFILE)
    edit(raw)
    return error_of(lambda: parse_profile(raw, "t.yaml"))


def train(**values):
    return lambda raw: raw["experiments"]["grpo"]["train"].update(values)


def defaults(**values):
    return lambda raw: raw["train_defaults"].update(values)


def with_experiment(name, **exp):
    return lambda raw: raw["experiments"].update({name: {"paper": "toy", "eval_tasks": ["gsm8k"], **exp}})


def override(task="gsm8k", **values):
    return lambda raw: raw["eval"]["tasks"].setdefault(task, {}).update(overrides=values)


# --- profile files on disk --------------------------------------------------------------------------------

PROFILE_TEXT = yaml.safe_dump(PROFILE, sort_keys=False)


def profile_file_error(tmp, text) -> str:
    path = tmp / "p.yaml"
    path.write_text(text)
    return error_of(lambda: load_profile(path))


def duplicate_experiment(tmp):
    text = PROFILE_TEXT + "  grpo:\n    paper: toy\n    method: grpo\n    eval_tasks: [gsm8k]\n"
    return profile_file_error(tmp, text)


def duplicate_train_key(tmp):
    text = PROFILE_TEXT.replace("      max_new_tokens: 16\n", "      max_new_tokens: 16\n      max_new_tokens: 32\n")
    assert text != PROFILE_TEXT
    return profile_file_error(tmp, text)


def line_of(text: str, needle: str, nth: int = 1) -> int:
    lines = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return lines[nth - 1]


def duplicate_line():
    text = PROFILE_TEXT + "  grpo:\n    paper: toy\n    method: grpo\n    eval_tasks: [gsm8k]\n"
    return line_of(text, "  grpo:", 2), line_of(text, "  grpo:", 1)


# --- task YAMLs in a folder of their own --------------------------------------------------------------------

def task_error(tmp, monkeypatch, text, name="toy") -> str:
    import suite.evaluate

    folder = tmp / "tasks"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(text)
    monkeypatch.setattr(suite.evaluate, "TASKS_DIR", folder)
    monkeypatch.setenv("RLREPRO_TASKS_DIR", str(folder))
    raw = copy.deepcopy(PROFILE)
    raw["eval"]["tasks"] = {name: {}}
    for exp in raw["experiments"].values():
        exp["eval_tasks"] = [name]
    return error_of(lambda: parse_profile(raw, "t.yaml"))


TASK = "task: toy\noutput_type: generate_until\ndoc_to_text: '{{prompt}}'\n"


# --- regression tables ---------------------------------------------------------------------------------------

def table(root: Path, rows: list[tuple], paper="toy") -> Path:
    path = root / paper / "table.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["experiment,task,metric,value"] + [",".join(str(x) for x in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def regress_error(tmp, fresh_rows, base_rows, update=False):
    if fresh_rows is not None:
        table(tmp / "fresh", fresh_rows)
    if base_rows is not None:
        table(tmp / "base", base_rows)
    return error_of(lambda: regress(str(tmp / "fresh"), str(tmp / "base"), TOL, update=update))


def regress_code(tmp, fresh_rows, base_rows) -> str:
    table(tmp / "fresh", fresh_rows)
    table(tmp / "base", base_rows)
    return f"exit {regress(str(tmp / 'fresh'), str(tmp / 'base'), TOL)}"


# --- evaluation results read by the report -------------------------------------------------------------------

def report_error(tmp, content: str | None) -> str:
    raw = copy.deepcopy(PROFILE)
    raw["experiments"].pop("grpo")
    profile = parse_profile(raw, "t.yaml")
    path = tmp / "res" / "evals" / "base" / "gsm8k.json"
    path.parent.mkdir(parents=True)
    if content is not None:
        path.write_text(content)
    return error_of(lambda: report.collect(profile, "toy", tmp / "res", tmp / "runs"))


# --- logs ------------------------------------------------------------------------------------------------------

ROWS = "".join(json.dumps({"step": s, "reward": 0.5}) + "\n" for s in (1, 2))


def cut_log_is_recovered(tmp):
    path = tmp / "metrics.jsonl"
    path.write_text(ROWS + '{"step": 3, "rew')
    with pytest.warns(SuiteWarning) as caught:
        rows = read_jsonl(path)
    assert [r["step"] for r in rows] == [1, 2]
    return str(caught[0].message)


def append_after_cut_line(tmp):
    path = tmp / "samples.jsonl"
    path.write_text(ROWS + '{"step": 3, "comp')
    with pytest.warns(SuiteWarning) as caught:
        append_jsonl(path, {"step": 3, "completion": "x"})
    assert [r["step"] for r in read_jsonl(path)] == [1, 2, 3]
    return str(caught[0].message)


def trainer_restart_after_cut_line(tmp):
    from suite.trainer import Trainer

    path = tmp / "metrics.jsonl"
    path.write_text(ROWS + '{"step": 3, "rew')
    with pytest.warns(SuiteWarning) as caught:
        Trainer._truncate_log(types.SimpleNamespace(start_step=2), path)  # what a restarted run does first
    assert path.read_text() == ROWS
    return str(caught[0].message)


def bad_middle_line(tmp):
    path = tmp / "metrics.jsonl"
    path.write_text(json.dumps({"step": 1}) + "\n{oops\n" + json.dumps({"step": 3}) + "\n")
    return error_of(lambda: read_jsonl(path), ValueError)


# --- disk full, permissions ----------------------------------------------------------------------------------------

def disk_full_atomic_write(tmp, monkeypatch):
    def full(self, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    return error_of(lambda: write_text(tmp / "table.md", "x"), OSError)


def dev_full() -> str:
    """``/dev/full`` (every write fails with ENOSPC), only when it is that device: never write to a regular
    file that something left in its place."""
    import stat

    try:
        if stat.S_ISCHR(os.stat("/dev/full").st_mode):
            return "/dev/full"
    except OSError:
        pass
    pytest.skip("/dev/full is not the full device here")


def disk_full_torch_save(tmp):
    import torch

    from suite.__main__ import error_message

    dev_full()
    try:
        torch.save({"w": torch.zeros(4096)}, "/dev/full")
    except Exception as err:  # torch: "[enforce fail at inline_container.cc:...] . unexpected pos ..."
        return error_message(err)
    pytest.fail("writing to /dev/full did not fail")


def disk_full_log_append(tmp):
    return error_of(lambda: append_jsonl(dev_full(), {"step": 1}), OSError)


def file_mode(tmp):
    old = os.umask(0o027)
    try:
        write_json(tmp / "r.json", {"a": 1})
    finally:
        os.umask(old)
    return f"mode {oct((tmp / 'r.json').stat().st_mode & 0o777)}"


# --- the command line -------------------------------------------------------------------------------------------------

def cli(tmp, monkeypatch, capsys, argv, env=None):
    from suite.__main__ import main

    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    return f"exit {info.value.code}\n{err}"


def cli_bad_profile(tmp, monkeypatch, capsys):
    path = tmp / "p.yaml"
    path.write_text(PROFILE_TEXT.replace("max_new_tokens: 16", "max_new_tokens: true"))
    monkeypatch.delenv("RLREPRO_DEBUG", raising=False)
    return cli(tmp, monkeypatch, capsys, ["validate", str(path)])


def cli_subprocess(tmp, *args, env=None):
    path = tmp / "p.yaml"
    path.write_text(PROFILE_TEXT.replace("steps: 3", "steps: 2.5"))
    run = subprocess.run([sys.executable, "-m", "suite", *args, "validate", str(path)], cwd=REPO, text=True,
                         capture_output=True, env={**os.environ, "RLREPRO_DEBUG": "", **(env or {})}, timeout=300)
    return f"exit {run.returncode}\n{run.stderr}"


def prepared_file_error(tmp, content: str) -> str:
    from suite.data import load_records

    path = tmp / "data" / "gsm8k" / "test.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    return error_of(lambda: load_records("gsm8k", "test", tmp / "data"), ValueError)


def mirror_error(tmp, content: str) -> str:
    from suite.data import prepare

    path = tmp / "mirror" / "gsm8k" / "test.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    return error_of(lambda: prepare("gsm8k", "test", tmp / "data", mirror=tmp / "mirror"), ValueError)


# --- the table ---------------------------------------------------------------------------------------------------------
# (id, case(tmp, monkeypatch, capsys) -> message, patterns the message must contain, patterns it must not)

P = "t.yaml: "
CASES = [
    # types, per TrainConfig's annotations
    ("steps-true", lambda t, m, c: profile_error(train(steps=True)),
     [P + r"experiments\.grpo\.train\.steps = True must be an integer, not a boolean", "whole number"], []),
    ("steps-2.5", lambda t, m, c: profile_error(train(steps=2.5)),
     [r"train\.steps = 2\.5 must be an integer", "whole number"], []),
    ("steps-string", lambda t, m, c: profile_error(train(steps="30")),
     [r"train\.steps = '30' must be an integer, got str", "unquoted"], []),
    ("lr-not-a-number", lambda t, m, c: profile_error(train(lr="fast")),
     [r"experiments\.grpo\.train\.lr = 'fast' must be a number, got str"], []),
    ("bf16-int", lambda t, m, c: profile_error(train(bf16=1)),
     [r"train\.bf16 = 1 must be true or false or a string"], []),
    ("bf16-word", lambda t, m, c: profile_error(train(bf16="fast")),
     [r"train\.bf16 = 'fast' must be true, false or auto"], []),
    ("template-int", lambda t, m, c: profile_error(train(prompt_template=5)),
     [r"train\.prompt_template = 5 must be a string", "quote it"], []),
    ("adam-betas-length", lambda t, m, c: profile_error(train(adam_betas=[0.9])),
     [r"train\.adam_betas = \[0\.9\] must be a list of 2 numbers"], []),
    ("algo-option-type", lambda t, m, c: profile_error(with_experiment(
        "sft", method="sft", train={"algo": {"data": "self", "samples_per_prompt": "many"}})),
     [r"experiments\.sft\.train\.algo\.samples_per_prompt = 'many' must be an integer"], []),
    # group sizes
    ("group-size-1", lambda t, m, c: profile_error(train(group_size=1)),
     [P + r"experiments\.grpo\.train\.group_size = 1 must be >= 2 for method 'grpo'", "advantage 0"], []),
    ("group-size-1-defaults", lambda t, m, c: profile_error(defaults(group_size=1)),
     [P + r"train_defaults\.group_size = 1 must be >= 2", "set in train_defaults", "'grpo'"],
     [r"train\.group_size"]),
    # train_defaults blamed by name
    ("defaults-range", lambda t, m, c: profile_error(defaults(lr=5.0)),
     [P + r"train_defaults\.lr = 5\.0 must be in \(0, 1\)", "does not override it"], [r"grpo\.train\.lr"]),
    ("defaults-type", lambda t, m, c: profile_error(defaults(steps=True)),
     [P + r"train_defaults\.steps = True must be an integer"], ["experiment"]),
    ("defaults-unknown-key", lambda t, m, c: profile_error(defaults(learning_rate=0.1)),
     [P + r"train_defaults: unknown training key\(s\) \['learning_rate'\]", "valid keys"], []),
    ("experiment-value-not-blamed-on-defaults", lambda t, m, c: profile_error(train(lr=5.0)),
     [P + r"experiments\.grpo\.train\.lr = 5\.0 must be in \(0, 1\)"], ["train_defaults"]),
    # duplicate keys in a profile file
    ("duplicate-experiment", lambda t, m, c: duplicate_experiment(t),
     [r"p\.yaml, line {0}: key 'grpo' appears twice in one mapping \(first at line {1}\)".format(*duplicate_line()),
      "remove or rename"], []),
    ("duplicate-train-key", lambda t, m, c: duplicate_train_key(t),
     [r"p\.yaml, line \d+: key 'max_new_tokens' appears twice"], []),
    ("profile-syntax", lambda t, m, c: profile_file_error(t, "profile: t\nmodel: [tiny\n"),
     [r"p\.yaml, line 3, column 1: not valid YAML", "fix the syntax"], []),
    # eval overrides
    ("override-unknown-key", lambda t, m, c: profile_error(override(repeat=2)),
     [r"eval\.tasks\.gsm8k\.overrides: unknown key\(s\) \['repeat'\]", "did you mean 'repeats'"], []),
    ("override-repeats-0", lambda t, m, c: profile_error(override(repeats=0)),
     [r"eval\.tasks\.gsm8k\.overrides\.repeats = 0 must be an integer >= 1"], []),
    ("override-generation-kwargs", lambda t, m, c: profile_error(override(generation_kwargs=512)),
     [r"overrides\.generation_kwargs = 512 must be a mapping"], []),
    ("override-max-gen-toks", lambda t, m, c: profile_error(override(generation_kwargs={"max_gen_toks": "lots"})),
     [r"generation_kwargs\.max_gen_toks = 'lots' must be an integer >= 1"], []),
    ("override-game-task", lambda t, m, c: profile_error(override("frozen_lake", max_turns=3)),
     [r"eval\.tasks\.frozen_lake\.overrides: task 'frozen_lake': unknown override 'max_turns'", "allowed"], []),
    # task YAMLs and their datasets
    ("task-yaml-syntax", lambda t, m, c: task_error(t, m, TASK + "dataset_kwargs: {dataset: gsm8k\n"),
     [r"toy\.yaml, line 5, column 1: not valid YAML", "fix the syntax"], ["unknown task"]),
    ("task-yaml-duplicate-key", lambda t, m, c: task_error(t, m, TASK + "dataset_kwargs: {dataset: gsm8k}\ntask: x\n"),
     [r"toy\.yaml, line 5: key 'task' appears twice"], []),
    ("task-missing-include", lambda t, m, c: task_error(t, m, "include: _nope.yaml\n" + TASK),
     [r"the included file .*_nope\.yaml does not exist"], []),
    ("task-no-dataset", lambda t, m, c: task_error(t, m, TASK),
     [r"toy\.yaml: dataset_kwargs\.dataset is missing", "declare it inline"], []),
    ("task-unknown-dataset", lambda t, m, c: task_error(t, m, TASK + "dataset_kwargs: {dataset: nope}\n"),
     [r"toy\.yaml: dataset_kwargs\.dataset = 'nope': unknown dataset 'nope'", "REGISTRY", "declare it"], []),
    ("task-bad-split", lambda t, m, c: task_error(t, m, TASK + "dataset_kwargs: {dataset: gsm8k, split: dev}\n"),
     [r"dataset_kwargs\.split = 'dev' is not a split of dataset 'gsm8k'", r"it has \['test', 'train'\]"], []),
    ("task-bad-inline-spec", lambda t, m, c: task_error(
        t, m, TASK + "dataset_kwargs: {dataset: mine, spec: {hub_id: a/b, hub_splits: {test: test}}}\n"),
     [r"dataset 'mine'", "'fields'", "required"], []),
    ("train-dataset-unknown", lambda t, m, c: profile_error(train(train_dataset="gsm9k")),
     [r"train\.train_dataset = 'gsm9k': unknown dataset 'gsm9k'", "REGISTRY", "task YAML"], []),
    ("train-split-unknown", lambda t, m, c: profile_error(train(train_split="dev")),
     [r"train\.train_split = 'dev' is not a split of dataset 'arithmetic_2d'"], []),
    ("train-report-to-unknown", lambda t, m, c: profile_error(train(report_to=["tensorbord"])),
     [P + r"experiments\.grpo\.train\.report_to = \['tensorbord'\] names unknown sink\(s\) \['tensorbord'\]",
      r"valid values: a list of \['tensorboard', 'wandb'\]", "'all'", "'none'"], []),
    ("defaults-report-to-type", lambda t, m, c: profile_error(defaults(report_to=5)),
     [P + r"train_defaults\.report_to = 5 must be a list or a string"], []),
    # model names
    ("model-unknown", lambda t, m, c: profile_error(with_experiment("x", method="base", model="no-such-model")),
     [r"experiments\.x\.model: model 'no-such-model' resolves to nothing", "hub id 'owner/name'"], []),
    ("profile-model-unknown", lambda t, m, c: profile_error(lambda r: r.update(model="tiny_llama")),
     [r"model \(the profile's, used by experiment 'base'\): model 'tiny_llama' resolves to nothing",
      "'tiny-llama'"], []),
    ("model-dir-without-config", lambda t, m, c: profile_error(with_experiment("x", method="base", model=str(t))),
     [r"exists but has no config\.json"], []),
    ("reference-policy-on-lm-task", lambda t, m, c: profile_error(with_experiment("x", method="base", model="planner")),
     [r"experiments\.x\.model: model 'planner' resolves to nothing"], []),
    # regression check
    ("regress-no-baseline", lambda t, m, c: regress_error(t, [("a", "gsm8k", "acc", 0.5)], None),
     [r"baseline folder .*base does not exist", r"--update", "create it"], ["run the workflow first"]),
    ("regress-no-results", lambda t, m, c: regress_error(t, None, [("a", "gsm8k", "acc", 0.5)]),
     [r"results folder .*fresh does not exist", "snakemake"], []),
    ("regress-not-a-number", lambda t, m, c: regress_error(t, [("a", "gsm8k", "acc", "0.5x")], [("a", "gsm8k", "acc", 0.5)]),
     [r"fresh/toy/table\.csv, line 2 \(experiment=a, task=gsm8k, metric=acc\): value '0\.5x' is not a number"], []),
    ("regress-duplicate-row", lambda t, m, c: regress_error(
        t, [("a", "gsm8k", "acc", 0.5)], [("a", "gsm8k", "acc", 0.5), ("a", "gsm8k", "acc", 0.6)]),
     [r"base/toy/table\.csv, line 3: the score \(experiment=a, task=gsm8k, metric=acc\) appears twice "
      r"\(lines 2 and 3\)", "keep one"], []),
    ("regress-update-from-nothing", lambda t, m, c: regress_error(t, None, [("a", "gsm8k", "acc", 0.5)], update=True),
     [r"results folder .*fresh does not exist", "nothing to update the baseline from"], []),
    ("regress-no-value-column", lambda t, m, c: (table(t / "base", [("a", "gsm8k", "acc", 0.5)]),
                                                  (t / "fresh" / "toy").mkdir(parents=True),
                                                  (t / "fresh" / "toy" / "table.csv").write_text("experiment,task\na,b\n"),
                                                  error_of(lambda: regress(str(t / "fresh"), str(t / "base"), TOL)))[-1],
     [r"fresh/toy/table\.csv: no column\(s\) \['metric', 'value'\]", "rerun the report"], []),
    ("regress-both-empty-is-equal", lambda t, m, c: regress_code(t, [("a", "train", "final_kl", "")],
                                                                 [("a", "train", "final_kl", "")]),
     ["exit 0"], []),
    ("regress-one-side-empty-drifts", lambda t, m, c: regress_code(t, [("a", "train", "final_kl", "")],
                                                                   [("a", "train", "final_kl", 0.1)]),
     ["exit 1"], []),
    # evaluation results read by the report
    ("report-half-written-json", lambda t, m, c: report_error(t, '{"metrics": {"acc": {"value": 0.5, "std'),
     [r"res/evals/base/gsm8k\.json: not a complete results JSON", "delete it and run its evaluation again"], []),
    ("report-json-without-metrics", lambda t, m, c: report_error(t, '{"n": 2}'),
     [r"gsm8k\.json: not a complete results file \(it lacks the keys 'metrics' and 'n'", "delete it"], []),
    ("report-missing-json", lambda t, m, c: report_error(t, None),
     [r"gsm8k\.json: no evaluation result; run the evaluation first"], []),
    # logs a crash can cut
    ("log-cut-last-line", lambda t, m, c: cut_log_is_recovered(t),
     [r"metrics\.jsonl: dropped its cut-off last line 3", "crash or a full disk"], []),
    ("log-append-after-cut-line", lambda t, m, c: append_after_cut_line(t),
     [r"samples\.jsonl: dropped its cut-off last line"], []),
    ("log-trainer-restart", lambda t, m, c: trainer_restart_after_cut_line(t),
     [r"metrics\.jsonl: dropped its cut-off last line 3"], []),
    ("log-bad-middle-line", lambda t, m, c: bad_middle_line(t),
     [r"metrics\.jsonl, line 2: not valid JSON", "fix or delete that line"], []),
    # disk full and permissions
    ("disk-full-atomic-write", lambda t, m, c: disk_full_atomic_write(t, m),
     [r"disk full while writing .*table\.md: free space and rerun with --resume"], [r"\.tmp"]),
    ("disk-full-torch-save", lambda t, m, c: disk_full_torch_save(t),
     [r"^disk full while writing /dev/full: free space and rerun with --resume$"], ["inline_container"]),
    ("disk-full-log-append", lambda t, m, c: disk_full_log_append(t),
     [r"disk full while writing /dev/full: free space"], []),
    ("file-permissions", lambda t, m, c: file_mode(t), ["mode 0o640"], []),
    # the command line: one message, no traceback unless asked for
    ("cli-one-line-error", lambda t, m, c: cli_bad_profile(t, m, c),
     ["exit 2", r"error: .*p\.yaml: experiments\.grpo\.train\.max_new_tokens = True must be an integer",
      "--debug"], ["Traceback"]),
    ("cli-overrides-not-json", lambda t, m, c: cli(t, m, c, ["evaluate", "--model", "tiny-llama", "--task", "gsm8k",
                                                        "--out", str(t / "x.json"), "--overrides", "{repeats: 2}"]),
     ["exit 2", r"error: --overrides is not valid JSON"], ["Traceback"]),
    ("cli-override-unknown-key", lambda t, m, c: cli(t, m, c, ["evaluate", "--model", "tiny-llama", "--task", "gsm8k",
                                                          "--out", str(t / "x.json"), "--overrides", '{"repeat": 2}']),
     ["exit 2", r"error: --overrides: unknown key\(s\) \['repeat'\]"], ["Traceback"]),
    ("cli-regress-no-baseline", lambda t, m, c: (table(t / "fresh", [("a", "gsm8k", "acc", 0.5)]),
                                                  cli(t, m, c, ["regress", "--results", str(t / "fresh"),
                                                                "--baseline", str(t / "base")]))[-1],
     ["exit 2", "error: baseline folder", "--update"], ["Traceback"]),
    ("cli-subprocess-no-traceback", lambda t, m, c: cli_subprocess(t),
     ["exit 2", r"train_defaults\.steps = 2\.5 must be an integer", "RLREPRO_DEBUG=1"], ["Traceback"]),
    ("cli-subprocess-debug-env", lambda t, m, c: cli_subprocess(t, env={"RLREPRO_DEBUG": "1"}),
     ["Traceback", r"ConfigError: .*train_defaults\.steps = 2\.5"], []),
    # data files (suite/data.py's own errors)
    ("data-bad-json-line", lambda t, m, c: prepared_file_error(t, '{"id": "a"}\n{oops}\n{"id": "c"}\n'),
     [r"gsm8k/test\.jsonl:2: not valid JSON", "python -m suite prepare gsm8k"], []),
    ("data-empty-file", lambda t, m, c: prepared_file_error(t, ""),
     [r"gsm8k/test\.jsonl holds no records", "prepare"], []),
    ("data-mirror-missing-field", lambda t, m, c: mirror_error(t, '{"question": "1 + 1?"}\n'),
     [r"mirror/gsm8k/test\.jsonl:1: dataset 'gsm8k' needs field 'answer'", "fix the row"], []),
]


@pytest.mark.parametrize("case,must,must_not", [pytest.param(f, must, not_, id=name) for name, f, must, not_ in CASES])
def test_bad_input_is_named(case, must, must_not, tmp_path, monkeypatch, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        message = case(tmp_path, monkeypatch, capsys)
    for pattern in must:
        assert re.search(pattern, message, flags=re.MULTILINE), f"{pattern!r} not in:\n{message}"
    for pattern in must_not:
        assert not re.search(pattern, message), f"{pattern!r} unexpectedly in:\n{message}"


def test_table_is_large_enough():
    assert len(CASES) >= 30 and len({name for name, *_ in CASES}) == len(CASES)


def test_exponent_strings_are_read_as_floats_with_a_warning():
    raw = copy.deepcopy(PROFILE)
    raw["train_defaults"]["lr"] = "1e-3"  # what PyYAML makes of `lr: 1e-3`
    with pytest.warns(SuiteWarning, match=r"train_defaults\.lr = '1e-3' is a string in YAML.*read as 0\.001"):
        profile = parse_profile(raw, "t.yaml")
    assert profile.experiments["grpo"].train.lr == 0.001
    assert yaml.safe_load("lr: 1e-3")["lr"] == "1e-3"  # the reason


def test_group_size_1_is_fine_where_advantages_are_not_group_relative():
    raw = copy.deepcopy(PROFILE)
    raw["experiments"]["sft"] = {"paper": "toy", "method": "sft", "eval_tasks": ["gsm8k"],
                                 "train": {"group_size": 1, "algo": {"data": "expert"}}}
    assert parse_profile(raw, "t.yaml").experiments["sft"].train.group_size == 1


def test_shipped_profiles_pass_every_check():
    for name in ("smoke", "mini", "paper"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", SuiteWarning)  # and need no lenient reading
            assert load_profile(REPO / "config" / f"{name}.yaml").experiments


def test_merge_keys_may_be_overridden():
    text = "a: &x {k: 1, j: 2}\nb: {<<: *x, k: 3}\n"
    from suite.config import _UniqueKeyLoader

    assert yaml.load(text, Loader=_UniqueKeyLoader) == {"a": {"k": 1, "j": 2}, "b": {"k": 3, "j": 2}}


def test_debug_flag_lets_the_traceback_through(tmp_path):
    from suite.__main__ import main
    from suite.config import ConfigError

    path = tmp_path / "p.yaml"
    path.write_text(PROFILE_TEXT.replace("steps: 3", "steps: true"))
    with pytest.raises(ConfigError, match=r"train_defaults\.steps = True"):
        main(["--debug", "validate", str(path)])
    with pytest.raises(ConfigError):
        main(["validate", str(path), "--debug"])


def test_two_task_files_declaring_one_dataset_differently_stop_the_profile(tmp_path, monkeypatch):
    """The profile check (validate, and the Snakefile before any job) names both files."""
    from suite.config import ConfigError, _check_declarations

    for name, column in (("a.yaml", "question"), ("b.yaml", "Question")):
        (tmp_path / name).write_text(
            f"task: {name[0]}\ndataset_kwargs:\n  dataset: dupe\n  split: test\n"
            f"  spec: {{hub_id: x/y, fields: {{prompt: '{{{column}}}', answers: answer}}}}\n")
    monkeypatch.setenv("RLREPRO_TASKS_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"(?s)dupe.*a\.yaml.*b\.yaml"):
        _check_declarations("profile p")


@pytest.mark.parametrize("flag", ["--batch-size", "--generation-rows"])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_evaluate_refuses_a_batch_of_no_rows(flag, value, capsys):
    """Rows per batch below 1 stop `python -m suite evaluate` at the command line, naming the flag."""
    from suite.__main__ import main

    with pytest.raises(SystemExit):
        main(["evaluate", "--model", "tiny-llama", "--task", "gsm8k", "--out", "x.json", flag, value])
    assert f"argument {flag}: {value} must be an integer >= 1" in capsys.readouterr().err
