"""Cooper: pair construction, negatives, the step order, the static baseline, resume, tasks, report."""

import json
import random

import pytest
import torch

from suite.algos.cooper import CooperOptions, heldout_pairs, reward_stats
from suite.algos.grpo import group_advantages
from suite.config import TrainConfig
from suite.io import read_jsonl
from suite.rewards.math import is_correct
from suite.rewards.negatives import (
    NegativeMaker, NegativeRequest, final_answer_span, first_correct, label_samples, perturb_final_answer,
)
from suite.trainer import Trainer
from tests.helpers import assert_weights_moved

# -- pairs and negatives ----------------------------------------------------------


def test_first_verified_correct_rollout_is_the_positive_and_groups_without_one_are_skipped():
    correct = [False, True, True, False, False, False, True, False, True]
    group = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    positives, skipped = first_correct(correct, group)
    assert positives == {0: 1, 2: 6}  # the first accepted rollout, not a later one
    assert skipped == [1]


def test_assistant_negatives_that_verify_as_correct_are_rejected():
    replies = iter([
        ["12 + 34 = \\boxed{46}", "1 + 2 = \\boxed{4}"],  # try 1: request 0 is right (rejected), request 1 wrong
        ["12 + 34 = \\boxed{47}"],  # try 2: only request 0 is asked again
    ])
    asked = []

    def assistant(messages):
        asked.append(len(messages))
        return next(replies)

    maker = NegativeMaker(verifier=is_correct, assistant=assistant, tries=3)
    out = maker.make([NegativeRequest("What is 12 + 34?", "12 + 34 = \\boxed{46}", ["46"], "k0"),
                      NegativeRequest("What is 1 + 2?", "1 + 2 = \\boxed{3}", ["3"], "k1")])
    assert out == [("12 + 34 = \\boxed{47}", "assistant"), ("1 + 2 = \\boxed{4}", "assistant")]
    assert asked == [2, 1]
    assert maker.counts == {"assistant": 2, "rejected": 1, "rule": 0, "failed": 0}


def test_rule_fallback_after_three_failed_tries_and_answerless_rewrites_are_rejected():
    maker = NegativeMaker(verifier=is_correct, assistant=lambda msgs: ["I am not sure." for _ in msgs], tries=3)
    (text, kind), = maker.make([NegativeRequest("What is 12 + 34?", "12 + 34 = \\boxed{46}", ["46"], "k")])
    assert kind == "rule" and not is_correct(text, ["46"])
    assert text.startswith("12 + 34 = \\boxed{") and text != "12 + 34 = \\boxed{46}"
    assert maker.counts == {"assistant": 0, "rejected": 3, "rule": 1, "failed": 0}
    # a verifier that accepts everything leaves no negative at all
    stubborn = NegativeMaker(verifier=lambda text, answers: True, assistant=None)
    assert stubborn.make([NegativeRequest("q", "\\boxed{1}", ["1"], "k")]) == [(None, "failed")]
    assert stubborn.counts["failed"] == 1


@pytest.mark.parametrize("text,answer", [
    ("so the answer is \\boxed{46}.", "46"),
    ("Tom has 7 apples.\n#### 7", "7"),
    ("12 + 34 = 46", "46"),
    ("half is \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
])
def test_rule_perturbation_changes_only_the_final_answer(text, answer):
    assert is_correct(text, [answer])
    start, end = final_answer_span(text)
    wrong = perturb_final_answer(text, [answer], is_correct, random.Random(0))
    assert wrong is not None and not is_correct(wrong, [answer])
    assert wrong[:start] == text[:start] and wrong.endswith(text[end:])
    assert wrong == perturb_final_answer(text, [answer], is_correct, random.Random(0))  # seeded


def test_labels_and_heldout_pairs():
    records = [{"id": "a", "prompt": "What is 1 + 1?", "answers": ["2"]},
               {"id": "b", "prompt": "What is 2 + 2?", "answers": ["4"]},
               {"id": "c", "prompt": "What is 3 + 3?", "answers": ["6"]}]
    samples = [["\\boxed{3}", "\\boxed{2}", "\\boxed{2}"], ["\\boxed{5}", "\\boxed{7}"], ["\\boxed{6}", "\\boxed{6}"]]
    labelled = label_samples(records, samples, is_correct)
    assert [ex["label"] for ex in labelled] == [0, 1, 1, 0, 0, 1, 1]
    assert labelled[1] == {"question": "What is 1 + 1?", "reference": "2", "completion": "\\boxed{2}", "label": 1,
                           "kind": "sampled", "record": "a"}
    pairs = heldout_pairs(records, samples, is_correct, seed=0)
    # a: first correct vs first wrong sample, and vs its perturbation; b: no correct sample, skipped;
    # c: no wrong sample, so only the perturbed pair
    assert pairs["kinds"] == ["sampled", "perturbed", "perturbed"]
    assert pairs["positives"][0] == ["What is 1 + 1?", "2", "\\boxed{2}"]
    assert pairs["negatives"][0] == ["What is 1 + 1?", "2", "\\boxed{3}"]
    assert all(not is_correct(n[2], [n[1]]) for n in pairs["negatives"])


def test_reward_stats():
    stats = reward_stats([0.9, 0.2, 0.7, 0.4], [True, False, False, True])
    # thresholded at 0.5: (T, F, T, F) vs (T, F, F, T) -> 2 of 4 agree
    assert stats == pytest.approx({"rm_rollout_agreement": 0.5, "rm_reward_correct": 0.65, "rm_reward_wrong": 0.45})


def test_options_are_checked_by_name():
    with pytest.raises(ValueError, match="rm_lr"):
        CooperOptions(rm_lr=0)
    with pytest.raises(ValueError, match="negative_tries"):
        CooperOptions(negative_tries=11)
    with pytest.raises(ValueError, match="rm_max_length"):
        CooperOptions(rm_max_length=8)
    with pytest.raises(ValueError, match="pretrain_questions"):
        CooperOptions(pretrain_questions=0)
    CooperOptions(pretrain_questions=0, rm_init="some/dir")  # a given RM needs no pretraining


# -- the training step --------------------------------------------------------------

ALGO = dict(pretrain_questions=3, pretrain_samples=2, heldout_questions=3, pretrain_epochs=1, rm_max_length=96,
            rm_lr=1e-3, assistant="rule")


def cooper_config(data_dir, **algo):
    return TrainConfig(experiment="c", method="cooper", model="tiny-llama", data_dir=str(data_dir),
                       train_dataset="arithmetic_2d", prompt_template="plain", steps=4, prompts_per_step=2,
                       group_size=4, max_new_tokens=8, save_every=2, lr=1e-3, micro_batch_size=8, kl_coef=0.0,
                       seed=3, algo={**ALGO, **algo})


def even_length(text, answers):
    """A stand-in verifier: the tiny random model is never right, this one says so half the time."""
    return len(text) % 2 == 0


def fingerprint(rm):
    with torch.no_grad():
        return float(sum(p.double().sum() for p in rm.model.parameters()))


def test_step_order_rm_is_updated_after_advantages_and_scores_the_next_step(data_dir):
    trainer = Trainer(cooper_config(data_dir), data_dir / "cooper-order")
    trainer.verifier = even_length
    method = trainer.method
    method.prepare_reward_model()
    rm = method.rm
    events, seen = [], []
    score, update_pairs, advantages, update = rm.rewards, rm.update_pairs, method.advantages, trainer.update

    def spy_score(triples):
        events.append(("score", fingerprint(rm)))
        return score(triples)

    def spy_update_pairs(pos, neg):
        events.append(("rm_update", fingerprint(rm), len(pos)))
        out = update_pairs(pos, neg)
        events.append(("rm_updated", fingerprint(rm)))
        return out

    def spy_advantages(rewards):
        events.append(("advantages",))
        return advantages(rewards)

    def spy_update(rollouts):
        events.append(("policy_update",))
        seen.append(rollouts)
        return update(rollouts)

    rm.rewards, rm.update_pairs, method.advantages, trainer.update = spy_score, spy_update_pairs, spy_advantages, spy_update
    trainer.run(max_steps=2)
    names = [e[0] for e in events]
    assert names == ["score", "advantages", "rm_update", "rm_updated", "policy_update"] * 2
    (_, s1), _, (_, u1, pairs1), (_, u1_done), _, (_, s2), _, (_, u2, _), (_, u2_done), _ = events
    assert pairs1 > 0  # the update had pairs to learn from
    assert s1 == u1 and u1_done != u1  # step 1 scored by the RM before its update, which changed it
    assert s2 == u1_done == u2  # step 2 scored by the RM as updated in step 1
    for r in seen:  # advantages are GRPO's on the RM rewards
        expected = group_advantages(torch.tensor(r.rewards).view(2, 4)).flatten()
        assert [a[0] for a in r.advantages if a] == pytest.approx(
            [float(x) for x, a in zip(expected, r.advantages) if a], abs=1e-6)
    rows = read_jsonl(data_dir / "cooper-order" / "metrics.jsonl")
    for key in ("reward", "accuracy", "rm_heldout_acc", "rm_pairs", "rm_skipped", "rm_loss", "neg_rule",
                "rm_rollout_agreement"):
        assert key in rows[0], key
    assert rows[0]["rm_pairs"] == pairs1
    info = json.loads((data_dir / "cooper-order" / "rm_pretrain.json").read_text())
    assert info["questions"] == 3 and info["triples"] >= 6 and info["heldout_pairs"] > 0


def test_static_reward_model_is_never_updated(data_dir):
    trainer = Trainer(cooper_config(data_dir, update_rm=False), data_dir / "cooper-static")
    trainer.verifier = even_length
    trainer.method.prepare_reward_model()
    before = fingerprint(trainer.method.rm)
    trainer.run(max_steps=2)
    assert fingerprint(trainer.method.rm) == before
    rows = read_jsonl(data_dir / "cooper-static" / "metrics.jsonl")
    assert "rm_pairs" not in rows[0] and rows[0]["rm_heldout_acc"] == rows[1]["rm_heldout_acc"]
    # the static and the co-trained runs start from the same pretrained reward model
    cooper = Trainer(cooper_config(data_dir), data_dir / "cooper-shared")
    assert cooper.method.pretrain_key() == trainer.method.pretrain_key()


def test_interrupted_and_resumed_run_ends_with_identical_policy_and_reward_model(data_dir):
    cfg = cooper_config(data_dir)
    straight = Trainer(cfg, data_dir / "cooper-straight")
    straight.verifier = even_length
    straight.run()

    first = Trainer(cfg, data_dir / "cooper-resumed")
    first.verifier = even_length
    first.run(max_steps=2)
    resumed = Trainer(cfg, data_dir / "cooper-resumed", resume=True)
    resumed.verifier = even_length
    assert resumed.start_step == 2 and resumed.method.rm is not None  # the RM came from the checkpoint
    resumed.run()
    assert_weights_moved(straight.policy, cfg.model)

    for (name, a), b in zip(straight.policy.state_dict().items(), resumed.policy.state_dict().values()):
        assert torch.equal(a, b), name
    for (name, a), b in zip(straight.method.rm.model.state_dict().items(), resumed.method.rm.model.state_dict().values()):
        assert torch.equal(a, b), name
    opt_a, opt_b = straight.method.rm.optimizer.state_dict(), resumed.method.rm.optimizer.state_dict()
    assert opt_a["state"].keys() == opt_b["state"].keys()
    for k in opt_a["state"]:
        assert torch.equal(opt_a["state"][k]["exp_avg_sq"], opt_b["state"][k]["exp_avg_sq"])
    drop = ("gen_time", "update_time", "step_time", "gen_tokens_per_s", "tokens_per_s")
    rows_a = [{k: v for k, v in r.items() if k not in drop} for r in read_jsonl(data_dir / "cooper-straight" / "metrics.jsonl")]
    rows_b = [{k: v for k, v in r.items() if k not in drop} for r in read_jsonl(data_dir / "cooper-resumed" / "metrics.jsonl")]
    assert rows_a == rows_b and [r["step"] for r in rows_b] == [1, 2, 3, 4]
    assert sum(r["rm_pairs"] for r in rows_a) > 0
    assert (data_dir / "cooper-straight" / "final_rm" / "config.json").is_file()


# -- evaluation tasks ---------------------------------------------------------------


def test_cooper_eval_tasks_use_the_papers_sampling():
    from suite.evaluate import load_task_config, task_data, task_manager

    manager = task_manager()
    for task, dataset in [("gsm8k_cooper", "gsm8k"), ("math500_cooper", "math500"), ("svamp_cooper", "svamp")]:
        cfg = load_task_config(manager, task)
        gen = cfg["generation_kwargs"]
        assert cfg["repeats"] == 8 and gen["do_sample"] is True
        assert gen["temperature"] == 0.7 and gen["top_p"] == 0.95
        assert task_data(task) == (dataset, "test")


def test_svamp_is_one_yaml_with_an_inline_dataset(tmp_path):
    """The SVAMP task declares its source inline; rows shaped like the hub's are mapped to records."""
    import yaml

    from suite.evaluate import TASKS_DIR
    from tasks.utils import load_records

    spec = yaml.load((TASKS_DIR / "svamp_cooper.yaml").read_text(), Loader=yaml.BaseLoader)["dataset_kwargs"]["spec"]
    spec = {**spec, "mirror_files": {"test": "svamp/test.jsonl"}}
    mirror = tmp_path / "mirror" / "svamp"
    mirror.mkdir(parents=True)
    (mirror / "test.jsonl").write_text(json.dumps({"ID": "x-1", "Body": "Ann has 3 pens.", "Question": "How many pens "
                                                   "does she have after buying 2?", "Equation": "( 3.0 + 2.0 )",
                                                   "Answer": 5.0, "Type": "Addition"}) + "\n")
    rows = load_records("svamp", "test", str(tmp_path / "data"), spec=spec, mirror=str(tmp_path / "mirror"))["test"]
    assert rows[0]["prompt"] == "Ann has 3 pens. How many pens does she have after buying 2?"
    assert is_correct("\\boxed{5}", rows[0]["answers"])


def test_hacking_plot_gives_each_run_one_colour_in_every_panel(tmp_path, monkeypatch):
    # The rule-based run logs no reward-model columns; the runs after it must keep their colours in the RM
    # panels (a shared colour cycle per panel would give the static RM the rule run's colour there).
    from types import SimpleNamespace

    import pandas as pd

    from suite.reports import cooper as cooper_report

    figures = []
    monkeypatch.setattr(cooper_report, "save_figure", lambda fig, path: figures.append(fig))
    rm_cols = {"rm_reward_wrong": [0.1, 0.2], "rm_heldout_acc": [0.5, 0.6]}
    logs = {"rule": (SimpleNamespace(label="rule"), pd.DataFrame({"step": [1, 2], "reward": [0.0, 1.0],
                                                                   "accuracy": [0.0, 1.0]})),
            "static": (SimpleNamespace(label="static"), pd.DataFrame({"step": [1, 2], "reward": [0.1, 0.1],
                                                                       "accuracy": [0.0, 0.0], **rm_cols})),
            "cooper": (SimpleNamespace(label="cooper"), pd.DataFrame({"step": [1, 2], "reward": [0.2, 0.9],
                                                                       "accuracy": [0.0, 0.0], **rm_cols}))}
    assert cooper_report.plot_hacking(logs, "cooper", tmp_path / "hacking.png")
    axes = figures[0].axes
    colour = {}
    for ax in axes:
        for line in ax.lines:
            if not line.get_label().startswith("_"):
                colour.setdefault(line.get_label(), set()).add(line.get_color())
    assert {k: len(v) for k, v in colour.items()} == {"rule": 1, "static": 1, "cooper": 1}
    assert len({next(iter(v)) for v in colour.values()}) == 3
    assert [ax.get_title() for ax in axes][2] == "RM reward on rollouts math-verify rejects"
    assert sorted(line.get_label() for line in axes[3].lines if not line.get_label().startswith("_")) == [
        "cooper", "static"]


def test_report_negatives_table_sums_the_step_counts_and_shows_pretraining(tmp_path):
    """The report's RM-data row: pretraining counts and time from rm_pretrain.json, RL-step counts summed."""
    from types import SimpleNamespace

    import pandas as pd

    from suite.reports.cooper import negatives_table

    (tmp_path / "coop").mkdir()
    (tmp_path / "coop" / "rm_pretrain.json").write_text(json.dumps({
        "triples": 10, "positives": 3, "negatives_sampled": 5, "negatives_assistant": 1, "negatives_rule": 1,
        "heldout_acc_before": 0.25, "heldout_acc_after": 0.75, "heldout_pairs": 4, "time_s": 90.0}))
    log = pd.DataFrame({"step": [1, 2], "rm_pairs": [2.0, 1.0], "rm_skipped": [2.0, 3.0], "neg_assistant": [1.0, 1.0],
                        "neg_rejected": [3.0, 0.0], "neg_rule": [1.0, 0.0], "neg_failed": [0.0, 1.0]})
    logs = {"coop": (SimpleNamespace(label="Cooper"), log), "rule": (SimpleNamespace(label="Rule"), log)}
    lines = negatives_table(logs, tmp_path)
    assert lines[-1] == "| Cooper | 10 | 3 | 5 | 1 | 1 | 25.0 → 75.0 (n = 4) | 1.5 min | 3 | 5 | 2 / 3 | 1 | 1 |"
    assert sum(line.startswith("| Rule") for line in lines) == 0  # no rm_pretrain.json: no reward model, no row
    assert lines[-3].count("|") == lines[-1].count("|")  # header and rows have the same columns


def test_the_report_shows_each_backbone_s_paper_table():
    import yaml

    from suite.reports.cooper import paper_table

    from pathlib import Path

    meta = yaml.safe_load(open(Path(__file__).resolve().parents[1] / "config" / "paper_numbers.yaml"))["cooper"]
    lines = paper_table(meta)
    captions = [line for line in lines if line.startswith("The paper's numbers")]
    assert len(captions) == 2 and "Qwen2.5-1.5B" in captions[0] and "Llama-3.2-1B" in captions[1]
    assert "| Model-based (static RM) | 36.32 | 59.35 | 20.70 | 0.22 | 7.39 | 24.80 |" in lines  # Llama's row
    single = paper_table({"paper_table": meta["paper_tables"][0]})  # one table still reads as before
    assert lines[:len(single)] == single and len(single) == 4 + 4
