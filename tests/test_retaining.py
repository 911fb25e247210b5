"""Retaining by Doing (issue 7): data, rewards, the RL and SFT losses, Iterative-SFT, resume, Δ_g / Δ_d."""

import dataclasses
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from suite.algos import sft as sft_module
from suite.algos.rbd_grpo import RBDGRPO
from suite.algos.sft import SFT, sft_token_loss
from suite.config import ConfigError, Experiment, TrainConfig, parse_profile
from suite.io import read_jsonl
from suite.losses import aggregate
from suite.rewards import REWARDS, VERIFIERS
from suite.rollout import collate
from suite.tasks import retaining
from suite.trainer import Trainer

REPO = Path(__file__).resolve().parent.parent
MIRROR = REPO / "tests" / "fixtures" / "mirror"


@pytest.fixture(scope="module")
def rbd_data(tmp_path_factory):
    from suite.data import prepare

    root = tmp_path_factory.mktemp("rbd-data")
    for name, split in [("countdown", "train"), ("ifeval_like", "train"), ("mmlu", "train"), ("mmlu", "test")]:
        prepare(name, split, root, mirror=MIRROR)
    return root


def config(data_dir, **overrides):
    base = dict(experiment="rbd", method="sft", model="tiny-llama", data_dir=str(data_dir), train_dataset="countdown",
                prompt_template="plain", reward="countdown", verifier="countdown", steps=2, prompts_per_step=2,
                max_new_tokens=160, lr=1e-3, save_every=10, seed=3, algo={"data": "expert", "prompts": 4})
    return TrainConfig(**{**base, **overrides})


# --- data and rewards ---------------------------------------------------------------------------


def test_procedural_splits_are_disjoint_and_carry_the_reward_spec():
    train, test = retaining.countdown_split("train", 300), retaining.countdown_split("test", 100)
    key = lambda r: (tuple(sorted(r["metadata"]["numbers"])), r["metadata"]["target"])  # noqa: E731
    assert len(train) == 300 and len(test) == 100 and not {key(r) for r in train} & {key(r) for r in test}
    assert json.loads(train[0]["answers"][0]) == {"numbers": train[0]["metadata"]["numbers"],
                                                  "target": train[0]["metadata"]["target"]}
    a, b = retaining.ifeval_like_split("train", 200), retaining.ifeval_like_split("test", 50)
    assert not {r["prompt"] for r in a} & {r["prompt"] for r in b}
    assert retaining.countdown_split("test", 20) == test[:20]  # the first n do not depend on n


def test_easy_countdown_dataset_has_small_solvable_puzzles(tmp_path):
    """``countdown_easy`` (scripts/target_signal.py): 2-3 numbers and the target in 1..20, each puzzle solvable
    (its expert expression passes the countdown verifier)."""
    from suite.data import load_records, prepare
    from suite.rewards import get_verifier

    prepare("countdown_easy", "train", tmp_path)
    records = load_records("countdown_easy", "train", tmp_path)
    assert len(records) == 1000
    verifier = get_verifier("countdown")
    for r in records[:200]:
        numbers, target = r["metadata"]["numbers"], r["metadata"]["target"]
        assert 2 <= len(numbers) <= 3 and all(1 <= x <= 20 for x in numbers) and 1 <= target <= 20
        assert verifier(f"\\boxed{{{r['metadata']['solution']}}}", r["answers"])
    assert {len(r["metadata"]["numbers"]) for r in records} == {2, 3}


def test_mmlu_arc_ifeval_from_the_mirror():
    train, test = retaining.mmlu_split("train", str(MIRROR)), retaining.mmlu_split("test", str(MIRROR))
    assert len(train) + len(test) == 30 and not {r["id"] for r in train} & {r["id"] for r in test}
    assert all(r["id"].startswith("mmlu-test-") for r in test)  # dev questions only ever train
    assert test[0]["prompt"].endswith('Reason about it and answer with "The answer is: <option>"')
    arc = {r["id"]: r for r in retaining.arc_challenge("test", str(MIRROR))}
    assert len(arc) == 7  # the five-option question is dropped
    assert arc["arc-4"]["answers"] == ["C"] and "C. wind" in arc["arc-4"]["prompt"]  # "3) wind" relabelled
    assert arc["arc-5"]["metadata"]["choices"] == ["solid", "liquid", "gas"]
    ifeval = retaining.ifeval("test", str(MIRROR))
    assert len(ifeval) == 7  # the number_paragraphs prompt is not covered by our checkers
    assert "ifeval-9006" not in {r["id"] for r in ifeval}


@pytest.mark.parametrize("make,reward", [
    (lambda: retaining.countdown_split("train", 20), "countdown"),
    (lambda: retaining.ifeval_like_split("train", 20), "ifeval_like"),
    (lambda: retaining.mmlu_split("train", str(MIRROR)), "mmlu_choice"),
])
def test_expert_responses_earn_the_training_reward(make, reward):
    for rec in make():
        assert REWARDS[reward](retaining.expert_response(rec), rec["answers"]) == 1.0, rec["id"]
        assert VERIFIERS[reward](retaining.expert_response(rec), rec["answers"]) is True


def test_rewards_on_constructed_answers():
    spec = [json.dumps({"numbers": [3, 5, 8], "target": 16})]
    assert REWARDS["countdown"]("so \\boxed{(8 - 5) * 3 + 8}", spec) == 0.0  # 8 reused
    assert REWARDS["countdown"]("\\boxed{8 * (5 - 3)}", spec) == 1.0
    assert REWARDS["countdown"]("\\boxed{8 + 8}", spec) == 0.0  # 8 twice, 3 and 5 missing
    inst = [json.dumps({"instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase"],
                        "kwargs": [{}, {}]})]
    assert REWARDS["ifeval_like"]("all lowercase and no commas", inst) == 1.0
    assert REWARDS["ifeval_like"]("all lowercase, with a comma", inst) == 0.0
    assert REWARDS["mmlu_choice"]("I think... The answer is: C", ["C"]) == 1.0
    assert REWARDS["mmlu_choice"]("The answer is: C. No wait, the answer is B", ["C"]) == 0.0
    with pytest.raises(ValueError, match="JSON object"):
        REWARDS["countdown"]("\\boxed{1}", ["16"])


def test_task_hooks_score_like_the_rewards():
    sys.path.insert(0, str(REPO / "tasks"))
    import rbd_utils

    doc = {"answers": [json.dumps({"instruction_id_list": ["punctuation:no_comma", "startend:quotation"],
                                   "kwargs": [{}, {}]})]}
    assert rbd_utils.process_instructions(doc, [["no commas here"]]) == {"acc": 0.0, "inst_acc": 0.5}
    assert rbd_utils.process_instructions(doc, [['"no commas here"']]) == {"acc": 1.0, "inst_acc": 1.0}
    assert rbd_utils.process_choice({"answers": ["B"]}, [["The answer is: B"]]) == {"acc": 1.0}
    cd = {"answers": [json.dumps({"numbers": [2, 3], "target": 6})]}
    assert rbd_utils.process_countdown(cd, [["\\boxed{2 * 3}"]]) == {"acc": 1.0}


# --- RL: GRPO of the reference code -------------------------------------------------------------


def test_k2_kl_and_the_rl_token_loss_against_hand_computed_numbers():
    method = RBDGRPO.__new__(RBDGRPO)
    method.cfg = SimpleNamespace(clip_eps_low=0.2, clip_eps_high=0.2, kl_coef=0.05, kl_estimator="k2")
    logp = torch.tensor([[math.log(0.5), math.log(0.25)], [math.log(0.5), 0.0]], requires_grad=True)
    ref = torch.tensor([[math.log(0.25), math.log(0.25)], [math.log(0.5), 0.0]])
    batch = SimpleNamespace(advantages=torch.tensor([[1.5, 1.5], [-0.5, 0.0]]),
                            loss_mask=torch.tensor([[1.0, 1.0], [1.0, 0.0]]))
    loss, stats = method.token_loss(batch, logp, logp.detach(), ref)
    # token (0,0): delta = ln 0.5 - ln 0.25 = ln 2; k2 = 0.5 ln(2)^2 = 0.240227; loss = -1.5 + 0.05 * 0.240227
    # token (0,1): delta = 0 -> loss = -1.5;  token (1,0): ratio 1, A = -0.5, delta 0 -> loss = +0.5
    assert loss[0].tolist() == pytest.approx([-1.487989, -1.5], abs=1e-6)
    assert loss[1, 0].item() == pytest.approx(0.5, abs=1e-6)
    assert stats["kl"] == pytest.approx(0.240227 / 3, abs=1e-6)  # masked mean over the 3 trained tokens
    # seq-mean-token-mean: ((-1.487989 - 1.5) / 2 + 0.5 / 1) / 2 = -0.496997
    total = aggregate(loss, batch.loss_mask, "seq-mean-token-mean", total_tokens=3, total_seqs=2, max_len=2)
    assert total.item() == pytest.approx(-0.496997, abs=1e-6)
    # gradient per token: (-A + beta * (logp - ref)) / (tokens of its sequence * sequences)
    total.backward()
    assert logp.grad[0].tolist() == pytest.approx([(-1.5 + 0.05 * math.log(2)) / 4, -1.5 / 4], abs=1e-6)
    assert logp.grad[1, 0].item() == pytest.approx(0.5 / 2, abs=1e-6)


def test_truncated_completions_get_reward_zero_and_correct_ones_are_logged(rbd_data, tmp_path):
    cfg = config(rbd_data, method="rbd_grpo", prompts_per_step=1, group_size=5, max_new_tokens=6, kl_coef=0.0,
                 algo={"log_correct": True})
    trainer = Trainer(cfg, tmp_path / "rl")
    eos = trainer.tokenizer.eos_token_id
    fixed = [[5, 6, eos], [5, 6, 7, 8, 9, 10], [5, eos], [5, 6, 7, 8, 9, eos], [7]]
    trainer.generate = lambda prompts, n, max_new_tokens=None: [list(c) for c in fixed]
    trainer.reward_fn = lambda text, answers: 1.0
    trainer.verifier = lambda text, answers: True
    r = trainer.method.collect(0)
    # completion 1 hit the 6-token budget without EOS -> 0; completion 3 used 6 tokens but ended with EOS -> kept
    assert r.rewards == [1.0, 0.0, 1.0, 1.0, 1.0]
    # mean 0.8, sample std sqrt((4 * 0.2^2 + 0.8^2) / 4) = sqrt(0.2) = 0.447214 -> A = 0.447214, -1.788854
    assert [a[0] for a in r.advantages] == pytest.approx([0.447214, -1.788854, 0.447214, 0.447214, 0.447214], abs=1e-5)
    rows = read_jsonl(tmp_path / "rl" / "correct_samples.jsonl")
    assert [row["completion_ids"] for row in rows] == [fixed[i] for i in (0, 2, 3, 4)]
    assert {row["id"] for row in rows} == {trainer.records_for_step(0, 1)[0]["id"]} and rows[0]["step"] == 1


# --- SFT ----------------------------------------------------------------------------------------


def test_sft_token_loss_hand_computed():
    logp = torch.log(torch.tensor([[0.5, 0.25, 0.125]]))
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss = aggregate(sft_token_loss(logp), mask, "token-mean", total_tokens=2, total_seqs=1, max_len=3)
    assert loss.item() == pytest.approx((math.log(2) + math.log(4)) / 2, abs=1e-6)  # 1.039721


def test_sft_loss_is_cross_entropy_on_assistant_tokens_only(rbd_data, tmp_path):
    trainer = Trainer(config(rbd_data, bf16=False), tmp_path / "sft")
    r = trainer.method.collect(0)
    rec = trainer.method.by_id[trainer.method.pool[0][0]]
    assert r.texts[0] in [retaining.expert_response(trainer.method.by_id[rid]) for rid, _ in trainer.method.pool]
    assert all(c[-1] == trainer.tokenizer.eos_token_id for c in r.completion_ids)  # the model learns to stop
    assert trainer.tokenizer.decode(trainer.method.pool[0][1], skip_special_tokens=True) == retaining.expert_response(rec)
    batch = collate(r, [0], trainer.tokenizer.pad_token_id)
    logp, _ = trainer.completion_logprobs(trainer.policy, batch)
    per_token, stats = trainer.method.token_loss(batch, logp, logp.detach(), None)
    ours = aggregate(per_token, batch.loss_mask, "token-mean", total_tokens=float(batch.loss_mask.sum()),
                     total_seqs=1, max_len=trainer.cfg.max_new_tokens)
    # the same number the reference's way: labels = -100 on the prompt, cross-entropy of shifted logits
    prompt, completion = r.prompt_ids[0], r.completion_ids[0]
    ids = torch.tensor([prompt + completion])
    labels = torch.tensor([[-100] * len(prompt) + completion])
    with torch.no_grad():
        logits = trainer.policy(input_ids=ids).logits
    reference = F.cross_entropy(logits[0, :-1], labels[0, 1:], ignore_index=-100)
    assert ours.item() == pytest.approx(reference.item(), abs=1e-4)
    assert stats["nll"] == pytest.approx(reference.item(), abs=1e-4)


def _always_correct(trainer, monkeypatch):
    trainer.verifier = lambda text, answers: True
    monkeypatch.setattr(sft_module, "finished", lambda t, ids: True)


def test_iterative_sft_regenerates_from_the_current_weights(rbd_data, tmp_path, monkeypatch):
    cfg = config(rbd_data, max_new_tokens=8, lr=5e-2, algo={"data": "iterative", "prompts": 2, "samples_per_prompt": 2,
                                                          "epoch_steps": 1})
    trainer = Trainer(cfg, tmp_path / "iter")
    _always_correct(trainer, monkeypatch)
    trainer._seed(0)
    r0 = trainer.method.collect(0)
    pool0 = list(trainer.method.pool)
    trainer.update(r0)
    trainer._seed(1)
    trainer.method.collect(1)
    assert trainer.method.pool_epoch == 1 and (tmp_path / "iter" / "sft_pool" / "epoch_1.jsonl").is_file()
    pool1 = list(trainer.method.pool)
    assert pool1 != pool0

    def epoch1_pool_of(state_dict, out):
        other = Trainer(cfg, tmp_path / out)
        _always_correct(other, monkeypatch)
        if state_dict is not None:
            other.policy.load_state_dict(state_dict)
            other.engine.sync_weights(other.policy)
        other.method.records = other.records_for_step(0, 2)
        other._seed(1)
        other.method._build_pool(1)
        return list(other.method.pool)

    # same seed, initial weights: other samples; same seed, the updated weights: the same samples
    assert epoch1_pool_of(None, "fresh") != pool1
    assert epoch1_pool_of(trainer.policy.state_dict(), "copy") == pool1


def test_self_sft_samples_once(rbd_data, tmp_path, monkeypatch):
    cfg = config(rbd_data, max_new_tokens=8, algo={"data": "self", "prompts": 2, "samples_per_prompt": 2,
                                                   "epoch_steps": 1})
    trainer = Trainer(cfg, tmp_path / "self")
    _always_correct(trainer, monkeypatch)
    calls = []
    generate = trainer.engine.generate
    trainer.engine.generate = lambda prompts, params: calls.append(params) or generate(prompts, params)
    trainer.run()
    assert len(calls) == 1 and calls[0].n == 2 and calls[0].temperature == 0.8
    assert [row["sft_epoch"] for row in read_jsonl(tmp_path / "self" / "metrics.jsonl")] == [0, 1]


def test_sft_on_rl_traces_reads_the_rl_runs_log(rbd_data, tmp_path):
    runs = tmp_path / "runs"
    cfg = config(rbd_data, algo={"data": "rl_traces", "traces_from": "rl"})
    with pytest.raises(FileNotFoundError, match="log_correct"):
        Trainer(cfg, runs / "sft").method.collect(0)
    probe = Trainer(config(rbd_data), runs / "probe")
    rid = probe.records[5]["id"]
    trace = {"step": 1, "id": rid, "completion": "x", "completion_ids": [7, 8, probe.tokenizer.eos_token_id]}
    (runs / "rl").mkdir(parents=True)
    (runs / "rl" / "correct_samples.jsonl").write_text(json.dumps(trace) + "\n" + json.dumps(trace) + "\n")
    trainer = Trainer(cfg, runs / "sft")
    r = trainer.method.collect(0)
    assert trainer.method.pool == [(rid, [7, 8, probe.tokenizer.eos_token_id])]  # duplicates kept once
    assert r.completion_ids == [[7, 8, probe.tokenizer.eos_token_id]] * 2 and r.prompts[0] == probe.records[5]["prompt"]


def test_an_empty_pool_leaves_the_weights_unchanged(rbd_data, tmp_path):
    cfg = config(rbd_data, max_new_tokens=4, steps=1, algo={"data": "self", "prompts": 2, "samples_per_prompt": 1})
    trainer = Trainer(cfg, tmp_path / "empty")
    trainer.verifier = lambda text, answers: False
    before = {k: v.clone() for k, v in trainer.policy.state_dict().items()}
    trainer.run()
    assert all(torch.equal(before[k], v) for k, v in trainer.policy.state_dict().items())
    assert read_jsonl(tmp_path / "empty" / "metrics.jsonl")[0]["pool_size"] == 0


def test_a_step_with_nothing_to_learn_from_takes_no_optimizer_step(rbd_data, tmp_path):
    """An empty pool must leave AdamW alone: no step count increment, no moment decay, no weight decay
    (a learning rate of 0 would still advance fused AdamW's step and decay its moments)."""
    from suite.rollout import Rollouts

    cfg = config(rbd_data, max_new_tokens=4, steps=3, weight_decay=0.1,
                 algo={"data": "self", "prompts": 2, "samples_per_prompt": 1})
    trainer = Trainer(cfg, tmp_path / "skip")
    trainer.verifier = lambda text, answers: False  # the pool stays empty
    rec = trainer.records[0]
    trainer.update(Rollouts(prompt_ids=[trainer.prompt_ids(rec)], completion_ids=[[5, 6, 7]], loss_mask=[[1, 1, 1]],
                            advantages=[[0.0] * 3], rewards=[1.0], correct=[True], group=[0]))  # one real step first
    state = {k: {n: v.clone() for n, v in s.items()} for k, s in trainer.optimizer.state_dict()["state"].items()}
    weights = {k: v.clone() for k, v in trainer.policy.state_dict().items()}
    assert state and all(float(s["step"]) == 1 for s in state.values())
    empty = trainer.method.collect(1)
    assert empty.completion_ids == [[]] and empty.metrics["pool_size"] == 0
    stats = trainer.update(empty)
    assert stats["update_skipped"] == 1.0 and stats["grad_norm"] == 0.0
    after = trainer.optimizer.state_dict()["state"]
    for k, s in state.items():
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(after[k][name], s[name]), (k, name)
    assert all(torch.equal(weights[k], v) for k, v in trainer.policy.state_dict().items())
    assert all(g["lr"] == pytest.approx(cfg.lr) for g in trainer.optimizer.param_groups)  # schedule untouched
    assert trainer.scheduler.last_epoch == 2  # the schedule still advanced one step per training step


def test_interrupted_and_resumed_sft_run_ends_with_identical_weights(rbd_data, tmp_path, monkeypatch):
    # epoch_steps 3: the run resumes at step 2, inside epoch 0 (pool from the checkpoint), and redraws at step 3
    cfg = config(rbd_data, steps=4, save_every=2, max_new_tokens=8, lr=1e-2,
                 algo={"data": "iterative", "prompts": 2, "samples_per_prompt": 2, "epoch_steps": 3})
    straight = Trainer(cfg, tmp_path / "straight")
    _always_correct(straight, monkeypatch)
    straight.run()
    first = Trainer(cfg, tmp_path / "resumed")
    _always_correct(first, monkeypatch)
    first.run(max_steps=2)
    resumed = Trainer(cfg, tmp_path / "resumed", resume=True)
    _always_correct(resumed, monkeypatch)
    assert resumed.start_step == 2 and resumed.method.pool_epoch == 0 and resumed.method.pool
    resumed.run()
    for (name, a), b in zip(straight.policy.state_dict().items(), resumed.policy.state_dict().values()):
        assert torch.equal(a, b), name
    assert straight.method.state_dict() == resumed.method.state_dict()
    drop = ("gen_time", "update_time", "step_time", "gen_tokens_per_s", "tokens_per_s")
    rows = [[{k: v for k, v in row.items() if k not in drop} for row in read_jsonl(tmp_path / d / "metrics.jsonl")]
            for d in ("straight", "resumed")]
    assert rows[0] == rows[1] and [row["sft_epoch"] for row in rows[1]] == [0, 0, 0, 1]


def test_options_and_temperature_are_checked(rbd_data, tmp_path):
    with pytest.raises(ValueError, match="algo.data = 'bogus'"):
        SFT.Options(data="bogus")
    with pytest.raises(ValueError, match="algo.traces_from"):
        SFT.Options(data="rl_traces")
    with pytest.raises(ValueError, match="algo.samples_per_prompt"):
        SFT.Options(data="self", samples_per_prompt=0)
    with pytest.raises(ValueError, match="train.temperature"):
        Trainer(config(rbd_data, temperature=0.8), tmp_path / "t")
    with pytest.raises(ValueError, match="algo.prompts = 99999"):
        Trainer(config(rbd_data, algo={"prompts": 99999}), tmp_path / "t2")
    raw = {"profile": "x", "model": "tiny-llama", "data": {"dir": "d"}, "runs_dir": "r", "results_dir": "s",
           "eval": {"tasks": {"countdown": {}}},
           "experiments": {"e": {"paper": "retaining", "method": "sft", "eval_tasks": ["countdown"],
                                 "train": {"algo": {"data": "expert", "epochs": 2}}}}}
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['epochs'\]"):
        parse_profile(raw)


# --- metrics ------------------------------------------------------------------------------------


def _experiment(name, method, dataset=None, kl=0.0, data=None, tasks=()):
    train = None if method == "base" else TrainConfig(
        experiment=name, method=method, model="m", train_dataset=dataset, kl_coef=kl,
        algo={"data": data} if data else {})
    return Experiment(name=name, papers=["retaining"], method=method, model="m", train=train,
                      eval_tasks=list(tasks), label=name)


def test_gain_and_forgetting_on_a_hand_made_results_table(tmp_path):
    import pandas as pd

    from suite.reports.retaining import report, retaining_table

    tasks = ["countdown", "mmlu_reason", "ifeval"]
    exps = [_experiment("base", "base", tasks=tasks),
            _experiment("sft", "sft", "countdown", data="expert", tasks=tasks),
            dataclasses.replace(_experiment("rl", "rbd_grpo", "countdown", kl=0.05, tasks=tasks), seed=1),
            _experiment("rl_mmlu", "rbd_grpo", "mmlu", kl=0.0, tasks=["mmlu_reason", "countdown"])]
    acc = {"base": [0.10, 0.40, 0.30], "sft": [0.50, 0.30, 0.10], "rl": [0.45, 0.40, 0.28]}
    rows = [{"experiment": e, "label": e, "method": "x", "task": t, "metric": "acc", "value": v, "stderr": 0.01,
             "n": 100, "paper_value": None} for e, values in acc.items() for t, v in zip(tasks, values)]
    rows += [{"experiment": "rl_mmlu", "label": "rl_mmlu", "method": "x", "task": t, "metric": "acc", "value": v,
              "stderr": None, "n": 100, "paper_value": None} for t, v in [("mmlu_reason", 0.55), ("countdown", 0.04)]]
    rows += [{"experiment": "sft", "label": "sft", "method": "x", "task": "train", "metric": "final_reward",
              "value": 9.0, "stderr": None, "n": 1, "paper_value": None}]
    df = pd.DataFrame(rows)
    profile = SimpleNamespace(of_paper=lambda paper: exps, eval_path=lambda results, exp, task: results / exp / f"{task}.json")
    table = retaining_table(profile, "retaining", df).set_index("experiment")
    # SFT: gain 0.50 - 0.10 = 0.40; forgetting ((0.40 - 0.30) + (0.30 - 0.10)) / 2 = 0.15
    assert table.loc["sft", "gain"] == pytest.approx(0.40) and table.loc["sft", "forgetting"] == pytest.approx(0.15)
    # RL: gain 0.35; forgetting ((0.40 - 0.40) + (0.30 - 0.28)) / 2 = 0.01
    assert table.loc["rl", "gain"] == pytest.approx(0.35) and table.loc["rl", "forgetting"] == pytest.approx(0.01)
    # RL on MMLU: gain 0.55 - 0.40 = 0.15, one probe (countdown) 0.10 - 0.04 = 0.06
    assert table.loc["rl_mmlu", "gain"] == pytest.approx(0.15) and table.loc["rl_mmlu", "forgetting"] == pytest.approx(0.06)
    assert table.loc["rl_mmlu", "n_probes"] == 1
    assert list(table.method) == ["SFT", "RL (β=0.05)", "RL (β=0)"]
    # standard error of the gain: sqrt(0.01^2 + 0.01^2); of the forgetting: sqrt(4 * 0.01^2) / 2
    assert table.loc["sft", "gain_se"] == pytest.approx(math.sqrt(2) * 0.01)
    assert table.loc["sft", "forgetting_se"] == pytest.approx(0.01)
    lines = report(profile, "retaining", df, tmp_path, tmp_path, tmp_path)
    assert any("| countdown | SFT | 10.0 | 50.0 | +40.0 ± 1.4 | +15.0 ± 1.0 | 2 |" in line for line in lines)
    # a seeded run's row names its seed (the seeds of one method are otherwise rows alike)
    assert any(line.startswith("| countdown | RL (β=0.05) (seed 1) | 10.0 | 45.0 |") for line in lines)
    for name in ("retaining.csv", "retaining_scatter.png", "retaining_probes.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_task_yamls_load_and_name_their_data():
    from suite.evaluate import load_task_config, task_data, task_manager

    expected = {"countdown": ("countdown", "test"), "ifeval_like": ("ifeval_like", "test"), "mmlu_reason": ("mmlu", "test"),
                "arc_challenge": ("arc_challenge", "test"), "ifeval": ("ifeval", "test"),
                "math500_greedy": ("math500", "test")}
    manager = task_manager()
    for task, data in expected.items():
        assert task_data(task) == data, task
        cfg = load_task_config(manager, task)
        assert cfg["generation_kwargs"]["do_sample"] is False, task  # greedy, as in the paper


def test_an_rl_run_without_correct_samples_still_writes_the_traces_file(rbd_data, tmp_path):
    cfg = config(rbd_data, method="rbd_grpo", prompts_per_step=1, group_size=2, max_new_tokens=4, kl_coef=0.0,
                 algo={"log_correct": True})
    trainer = Trainer(cfg, tmp_path / "rl")
    trainer.verifier = lambda text, answers: False
    trainer.method.collect(0)
    assert (tmp_path / "rl" / "correct_samples.jsonl").read_text() == ""


def test_the_settings_table_says_what_an_sft_step_learns_from():
    base = dict(experiment="x", model="tiny-llama", method="sft", prompts_per_step=8, group_size=4)
    expert = TrainConfig(**base)
    selfsft = TrainConfig(**base, algo={"data": "self", "prompts": 64, "samples_per_prompt": 2})
    traces = TrainConfig(**base, algo={"data": "rl_traces", "traces_from": "rl"})
    assert SFT.batch_description(expert) == "8 examples (expert responses; all prompts)"
    assert SFT.batch_description(selfsft) == "8 examples (initial model's correct samples, 2 per prompt; 64 prompts)"
    assert SFT.batch_description(traces) == "8 examples (correct samples of rl; all prompts)"
    assert RBDGRPO.batch_description(TrainConfig(**{**base, "method": "rbd_grpo"})) == "8 prompts × 4 samples"


def test_answer_rates_count_responses_the_choice_parser_reads(tmp_path):
    from suite.io import write_jsonl
    from suite.reports.retaining import answer_rates

    exps = [_experiment("base", "base", tasks=["mmlu_reason", "arc_challenge", "ifeval"]),
            _experiment("sft", "sft", "ifeval_like", data="expert", tasks=["mmlu_reason", "ifeval"])]
    profile = SimpleNamespace(of_paper=lambda paper: exps, eval_path=lambda results, exp, task: results / exp / f"{task}.json")
    (tmp_path / "base").mkdir()
    (tmp_path / "sft").mkdir()
    write_jsonl(tmp_path / "base" / "mmlu_reason.json.samples.jsonl", [
        {"id": "a", "responses": ["The answer is: B"]}, {"id": "b", "responses": ["I think B."]},
        {"id": "c", "responses": ["**The answer is: (c)**"]}, {"id": "d", "responses": ["The answer is:"]}])
    write_jsonl(tmp_path / "base" / "arc_challenge.json.samples.jsonl", [{"id": "a", "responses": ["The answer is: A"]}])
    write_jsonl(tmp_path / "base" / "ifeval.json.samples.jsonl", [{"id": "a", "responses": ["The answer is: A"]}])
    write_jsonl(tmp_path / "sft" / "mmlu_reason.json.samples.jsonl", [
        {"id": "a", "responses": ["worth a closer look"]}, {"id": "b", "responses": ["The answer is: D"]}])
    rates = answer_rates(profile, "retaining", tmp_path)
    # base MMLU: "The answer is: B" and "(c)" are read, "I think B." and an empty answer are not: 2 / 4
    assert rates.loc["base", "mmlu_reason"] == pytest.approx(0.5)
    assert rates.loc["base", "arc_challenge"] == 1.0 and rates.loc["sft", "mmlu_reason"] == 0.5
    assert "ifeval" not in rates.columns and math.isnan(rates.loc["sft", "arc_challenge"])
    assert answer_rates(profile, "retaining", tmp_path / "elsewhere").empty
