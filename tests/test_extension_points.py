"""The hooks the paper methods plug into: custom tasks, generators by module path, report extras."""

import json

import pandas as pd

from suite import evaluate as ev
from suite import report
from suite.data import DatasetSpec, prepare
from suite.io import read_jsonl


def fake_custom_task(model, task, out, **kwargs):
    result = {"task": task, "model": model, "metrics": {"success_rate": {"value": 0.25, "stderr": None}},
              "n": 4, "seed": kwargs["seed"]}
    out.write_text(json.dumps(result))
    return result


def generate_numbers(n):
    return [{"id": str(i), "prompt": f"{i}?", "answers": [str(i)], "metadata": {}} for i in range(n)]


def test_custom_task_dispatches_without_lm_eval_and_needs_no_data(monkeypatch, tmp_path):
    monkeypatch.setitem(ev.CUSTOM_TASKS, "toy_game", f"{__name__}:fake_custom_task")
    out = tmp_path / "toy.json"
    result = ev.evaluate("some-model", "toy_game", out, seed=3)
    assert result["metrics"]["success_rate"]["value"] == 0.25 and result["seed"] == 3
    assert json.loads(out.read_text()) == result
    assert ev.task_data("toy_game") is None


def test_generator_named_by_module_path(tmp_path):
    spec = DatasetSpec("numbers", generator=f"{__name__}:generate_numbers",
                       generator_kwargs={"test": {"n": 3}})
    path = prepare(spec, "test", tmp_path)
    assert [r["answers"] for r in read_jsonl(path)] == [["0"], ["1"], ["2"]]


def extra_section(profile, paper, df, results, runs, out):
    (out / "extra.txt").write_text(f"{paper}:{len(df)}")
    return ["## Extra", "", f"rows: {len(df)}"]


def test_report_runs_the_papers_extra_hook(monkeypatch, tmp_path):
    from suite.config import parse_profile

    raw = {"profile": "t", "model": "tiny-llama", "data": {"dir": str(tmp_path / "data")},
           "runs_dir": str(tmp_path / "runs"), "results_dir": str(tmp_path / "res"),
           "eval": {"tasks": {"gsm8k": {"limit": 2}}},
           "experiments": {"base": {"paper": "toy", "method": "base", "eval_tasks": ["gsm8k"]}}}
    profile = parse_profile(raw)
    evals = tmp_path / "res" / "evals" / "base"
    evals.mkdir(parents=True)
    (evals / "gsm8k.json").write_text(json.dumps({"metrics": {"acc": {"value": 0.5, "stderr": 0.1}}, "n": 2}))
    monkeypatch.setattr(report, "paper_numbers", lambda paper: {"extra_report": f"{__name__}:extra_section"})
    out = tmp_path / "res" / "toy"
    df = report.build_report(profile, "toy", tmp_path / "res", tmp_path / "runs", out)
    assert isinstance(df, pd.DataFrame) and len(df) == 1
    assert (out / "extra.txt").read_text() == "toy:1"
    assert "## Extra" in (out / "table.md").read_text()


def test_bad_plugin_references_name_where_they_came_from(tmp_path):
    import pytest

    from suite import import_object

    with pytest.raises(ValueError, match=r"dataset 'broken' generator: 'no_colon' is not a 'module:name' reference"):
        prepare(DatasetSpec("broken", generator="no_colon", generator_kwargs={"test": {}}), "test", tmp_path)
    with pytest.raises(ValueError, match=r"custom task 'x': cannot load 'suite.nowhere:fn'"):
        import_object("suite.nowhere:fn", "custom task 'x'")
    with pytest.raises(ValueError, match=r"method 'm': cannot load 'suite.algos.grpo:Nope'"):
        import_object("suite.algos.grpo:Nope", "method 'm'")
