"""The per-paper report: shared untrained evaluations, the settings table, the committed training logs."""

import json

import pytest

from suite import report
from suite.config import parse_profile


@pytest.fixture
def toy(tmp_path, monkeypatch):
    raw = {"profile": "t", "model": "tiny-llama", "data": {"dir": str(tmp_path / "data")},
           "runs_dir": str(tmp_path / "runs"), "results_dir": str(tmp_path / "res"),
           "eval": {"tasks": {"gsm8k": {"limit": 2}}},
           "experiments": {
               "base": {"paper": "other", "method": "base", "eval_tasks": ["gsm8k"]},
               "toy_base": {"paper": "toy", "method": "base", "label": "untrained", "eval_tasks": ["gsm8k"]},
               "toy_grpo": {"paper": "toy", "method": "grpo", "label": "GRPO", "eval_tasks": ["gsm8k"],
                            "train": {"steps": 3, "prompts_per_step": 2, "group_size": 4, "lr": 2.0e-5,
                                      "max_new_tokens": 32, "kl_coef": 0.001, "temperature": 0.8}}}}
    profile = parse_profile(raw)
    res, runs = tmp_path / "res", tmp_path / "runs"
    for owner, value in (("base", 0.25), ("toy_grpo", 0.5)):
        (res / "evals" / owner).mkdir(parents=True)
        (res / "evals" / owner / "gsm8k.json").write_text(
            json.dumps({"metrics": {"acc": {"value": value, "stderr": 0.1}}, "n": 2}))
    (runs / "toy_grpo").mkdir(parents=True)
    log = "".join(json.dumps({"step": s, "reward": s / 10, "accuracy": s / 10, "step_time": 20.0 * s}) + "\n"
                  for s in (1, 2, 3))
    (runs / "toy_grpo" / "metrics.jsonl").write_text(log)
    monkeypatch.setattr(report, "paper_numbers", lambda paper: {})
    return profile, res, runs, log


def test_report_reads_shared_untrained_results_and_shows_settings(toy):
    profile, res, runs, log = toy
    out = res / "toy"
    df = report.build_report(profile, "toy", res, runs, out)
    scores = df[df.task == "gsm8k"].set_index("experiment").value
    assert scores["toy_base"] == 0.25 and scores["toy_grpo"] == 0.5  # toy_base read from base's directory
    table = (out / "table.md").read_text()
    assert "| GRPO | grpo | tiny-llama | arithmetic_2d | 3 | 2 prompts × 4 samples | 32 | 2e-05 | 0.001 | 0.8 |" in table
    assert "| untrained | base |" not in table  # untrained rows have no settings
    assert (out / "toy_grpo.metrics.jsonl").read_text() == log
    train = df[df.task == "train"].set_index("metric").value
    assert train["train_minutes"] == pytest.approx((20 + 40 + 60) / 60) and train["final_step_time"] == 60.0


def test_rescored_scores_are_marked_with_what_they_were(toy):
    profile, res, runs, _ = toy
    path = res / "evals" / "toy_grpo" / "gsm8k.json"
    result = json.loads(path.read_text())
    result["rescored"] = {"previous": {"acc": {"value": 0.75, "stderr": 0.1}}}
    path.write_text(json.dumps(result))
    report.build_report(profile, "toy", res, runs, res / "toy")
    table = (res / "toy" / "table.md").read_text()
    assert "| GRPO | 50.0 ± 10.0 † |" in table and "| untrained | 25.0 ± 10.0 |" in table
    assert "changed: GRPO gsm8k acc 75.0 → 50.0" in table


def test_a_cut_training_log_line_is_dropped_and_a_half_written_result_named(toy):
    from suite.io import SuiteWarning

    profile, res, runs, log = toy
    with open(runs / "toy_grpo" / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "rew')  # a crash during the append of step 4
    with pytest.warns(SuiteWarning, match=r"toy_grpo/metrics\.jsonl: dropped its cut-off last line 4"):
        df = report.build_report(profile, "toy", res, runs, res / "toy")
    assert df[df.task == "train"].n.iloc[0] == 3
    path = res / "evals" / "base" / "gsm8k.json"
    path.write_text(path.read_text()[:20])
    with pytest.raises(report.ReportError, match=r"evals/base/gsm8k\.json: not a complete results JSON.*delete it"):
        report.build_report(profile, "toy", res, runs, res / "toy")
