"""`python -m suite rescore`: saved responses scored again with the current scorer, nothing generated."""

import json
import math

import pytest

from suite.__main__ import main
from suite.evaluate import TaskConfigError, rescore
from suite.io import read_jsonl, write_json, write_jsonl


def write_result(tmp_path, task, rows, metrics):
    out = tmp_path / f"{task}.json"
    write_json(out, {"task": task, "model": "m", "n": len(rows), "metrics": metrics})
    write_jsonl(str(out) + ".samples.jsonl", rows)
    return out


def test_rescore_applies_the_current_math_scorer_and_keeps_the_previous_values(tmp_path, capsys):
    rows = [  # scored by an older, lenient scorer that accepted a restated sum
        {"id": "a", "prompt": "What is 95 + 87?", "answers": ["182"], "responses": ["I think 95 + 87 is hard."],
         "metrics": {"acc": 1.0, "pass_at_k": 1.0}},
        {"id": "b", "prompt": "What is 1 + 2?", "answers": ["3"], "responses": ["1 + 2 = 3"],
         "metrics": {"acc": 1.0, "pass_at_k": 1.0}},
        {"id": "c", "prompt": "What is 5 + 5?", "answers": ["10"], "responses": ["11", "\\boxed{10}"],
         "metrics": {"acc": 0.5, "pass_at_k": 1.0}},
    ]
    out = write_result(tmp_path, "arithmetic_2d", rows, {"acc": {"value": 2.5 / 3, "stderr": 0.1},
                                                          "pass_at_k": {"value": 1.0, "stderr": 0.0}})
    main(["rescore", str(out)])
    assert "acc 0.8333 -> 0.5000" in capsys.readouterr().out
    result = json.loads(out.read_text())
    # per problem: acc 0, 1, 0.5 -> mean 0.5, sample sd 0.5, stderr 0.5 / sqrt(3)
    assert result["metrics"]["acc"]["value"] == pytest.approx(0.5)
    assert result["metrics"]["acc"]["stderr"] == pytest.approx(0.5 / math.sqrt(3))
    # pass@k: 0, 1, 1 -> 2/3, sd sqrt(1/3)
    assert result["metrics"]["pass_at_k"]["value"] == pytest.approx(2 / 3)
    assert result["metrics"]["pass_at_k"]["stderr"] == pytest.approx(math.sqrt(1 / 3) / math.sqrt(3))
    assert result["rescored"]["previous"]["acc"]["value"] == pytest.approx(2.5 / 3)
    assert [r["metrics"]["acc"] for r in read_jsonl(str(out) + ".samples.jsonl")] == [0.0, 1.0, 0.5]


def test_rescore_is_a_no_op_when_the_scorer_agrees(tmp_path):
    rows = [{"id": "a", "prompt": "q", "answers": ["Paris"], "responses": ["<answer>Paris</answer>"],
             "metrics": {"em": 1.0, "f1": 1.0}},
            {"id": "b", "prompt": "q", "answers": ["Rome"], "responses": ["<answer>Milan</answer>"],
             "metrics": {"em": 0.0, "f1": 0.0}}]
    metrics = {"em": {"value": 0.5, "stderr": 0.5}, "f1": {"value": 0.5, "stderr": 0.5}}
    out = write_result(tmp_path, "nq_open", rows, metrics)
    after = rescore(out)["metrics"]
    assert {k: (v["value"], v["stderr"]) for k, v in after.items()} == pytest.approx(
        {k: (v["value"], v["stderr"]) for k, v in metrics.items()})


def test_rescore_refuses_what_it_cannot_score(tmp_path):
    out = write_result(tmp_path, "frozen_lake", [], {"success": {"value": 0.0, "stderr": 0.0}})
    with pytest.raises(TaskConfigError, match="evaluate it again"):
        rescore(out)
    (tmp_path / "frozen_lake.json.samples.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="no saved responses"):
        rescore(out)
    half_written = tmp_path / "gsm8k.json"
    half_written.write_text('{"task": "gsm8k", "metr')
    with pytest.raises(ValueError, match="gsm8k.json: not a results file"):
        rescore(half_written)
    half_written.write_text('{"task": "gsm8k"}')
    with pytest.raises(ValueError, match="gsm8k.json: not a results file"):
        rescore(half_written)


def test_every_sample_of_a_repeated_problem_is_saved():
    from suite.evaluate import _sample_row

    row = _sample_row({"doc": {"id": "a", "prompt": "q", "answers": ["3"]}, "resps": [["r1", "r2", "r3"]],
                       "acc": 1 / 3, "metrics": ["acc"]})
    assert row["responses"] == ["r1", "r2", "r3"] and row["metrics"] == {"acc": 1 / 3}


def test_rescore_refuses_files_that_kept_fewer_responses_than_samples(tmp_path):
    rows = [{"id": "a", "prompt": "q", "answers": ["3"], "responses": ["3"], "metrics": {"acc": 0.5}}]
    out = write_result(tmp_path, "aime24", rows, {"acc": {"value": 0.5, "stderr": None}})
    result = json.loads(out.read_text())
    write_json(out, {**result, "sampling": {"repeats": 2}})
    with pytest.raises(ValueError, match="fewer saved responses"):
        rescore(out)
