"""ExGRPO (suite/algos/exgrpo.py): shaped loss, delayed start, mixed batches, selection, resume."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from suite.algos.exgrpo import ExGRPO, ExGRPOOptions, shaped_replay_loss
from suite.config import TrainConfig
from suite.io import read_jsonl
from suite.losses import aggregate
from suite.replay import Trajectory
from suite.rollout import Batch
from suite.tasks.arithmetic import LEVELS, evaluate_expression, generate_levels
from suite.trainer import Trainer
from tests.helpers import assert_weights_moved


def tiny_config(data_dir, **overrides):
    base = dict(experiment="x", method="exgrpo", model="tiny-llama", data_dir=str(data_dir), train_dataset="arithmetic_2d",
                steps=4, prompts_per_step=4, group_size=4, max_new_tokens=6, save_every=2, lr=1e-3,
                micro_batch_size=8, seed=3, scale_rewards=False, loss_agg="seq-mean-token-sum-norm")
    algo = overrides.pop("algo", {})
    return TrainConfig(**{**base, **overrides, "algo": algo})


def scripted(trainer, schedule):
    """Verifier marking ``schedule[s]`` rows of the s-th collect as correct, spread over the groups:
    row i of group g is the (i * groups + g)-th to be marked."""
    calls = {"n": 0}
    K = trainer.cfg.group_size
    rows = trainer.cfg.prompts_per_step * K

    def verifier(text, answers):
        step, row = divmod(calls["n"], rows)
        calls["n"] += 1
        g, i = divmod(row, K)
        return i * trainer.cfg.prompts_per_step + g < schedule[min(step, len(schedule) - 1)]

    trainer.verifier = verifier
    trainer.reward_fn = lambda text, answers: 0.0  # advantages play no part in these tests


# -- options ------------------------------------------------------------------
@pytest.mark.parametrize("key,value", [("replay_ratio", 1.0), ("question_weighting", "cubic"), ("bucket_sigma", 0.0),
                                       ("trajectory_selection", "max_entropy"), ("start_threshold", 1.5),
                                       ("shaping_gamma", -0.1), ("shaping", "yes")])
def test_bad_options_name_the_key(key, value):
    with pytest.raises(ValueError, match=f"algo.{key}"):
        ExGRPOOptions(**{key: value})


def test_profile_rejects_bad_exgrpo_option(data_dir):
    from suite.config import _check_algo_options

    with pytest.raises(ValueError, match="replay_ratio"):
        _check_algo_options(tiny_config(data_dir, algo={"replay_ratio": -0.5}), "profile")
    with pytest.raises(ValueError, match="unknown option"):
        _check_algo_options(tiny_config(data_dir, algo={"replay_fraction": 0.5}), "profile")


# -- the loss -----------------------------------------------------------------
def test_shaped_loss_and_gradient_against_hand_computed_numbers():
    # f(w) = w / (w + 0.1), w = exp(logp - recorded); d f / d logp = f'(w) w = 0.1 w / (w + 0.1)^2
    #   w = 1:   f = 1/1.1 = 0.909091,   df/dlogp = 0.1/1.21 = 0.0826446
    #   w = 0.5: f = 0.5/0.6 = 0.833333, df/dlogp = 0.05/0.36 = 0.138889
    #   w = 3:   f = 3/3.1 = 0.967742,   df/dlogp = 0.3/9.61 = 0.0312175
    recorded = torch.tensor([[-1.0, -2.0, -0.5]])
    logp = (recorded + torch.log(torch.tensor([[1.0, 0.5, 3.0]])).detach()).requires_grad_(True)
    adv = torch.tensor([[2.0, -1.0, 0.5]])
    loss, f = shaped_replay_loss(logp, recorded, adv, gamma=0.1)
    assert f[0].tolist() == pytest.approx([0.909091, 0.833333, 0.967742], abs=1e-6)
    # loss = -A f: -2 * 0.909091, +0.833333, -0.5 * 0.967742
    assert loss[0].tolist() == pytest.approx([-1.818182, 0.833333, -0.483871], abs=1e-6)
    loss.sum().backward()
    # d(-A f)/dlogp = -A f'(w) w
    assert logp.grad[0].tolist() == pytest.approx([-0.165289, 0.138889, -0.0156088], abs=1e-6)
    # without shaping: -A w, gradient -A w
    logp.grad = None
    loss, f = shaped_replay_loss(logp, recorded, adv, gamma=None)
    loss.sum().backward()
    assert loss[0].tolist() == pytest.approx([-2.0, 0.5, -1.5], abs=1e-6)
    assert logp.grad[0].tolist() == pytest.approx([-2.0, 0.5, -1.5], abs=1e-6)


def loss_only_method(mixed, **options):
    m = ExGRPO.__new__(ExGRPO)
    m.cfg = SimpleNamespace(clip_eps_low=0.2, clip_eps_high=0.2, kl_coef=0.0, kl_estimator="k3")
    m.options, m.mixed, m._sums = ExGRPOOptions(**options), mixed, {}
    return m


def mixed_batch():
    # row 0 fresh (tokens with ratio 1.5 and 0.5), row 1 replayed (w = 1 and 0.5, padded to 2 tokens + pad)
    old = torch.tensor([[0.0, 0.0, 0.0], [-1.0, -1.0, 0.0]])
    logp = torch.tensor([[math.log(1.5), math.log(0.5), 0.0], [-1.0, -1.0 + math.log(0.5), 0.0]], requires_grad=True)
    batch = Batch(input_ids=None, attention_mask=None, position_ids=None, completion_ids=None,
                  loss_mask=torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]]),
                  advantages=torch.tensor([[1.0, 1.0, 0.0], [0.5, 0.5, 0.0]]),
                  old_logp=old, has_old_logp=torch.tensor([False, True]), off_policy=torch.tensor([False, True]))
    return batch, logp, old


def test_token_loss_mixes_unclipped_fresh_and_shaped_replayed_tokens():
    batch, logp, old = mixed_batch()
    per_token, stats = loss_only_method(mixed=True).token_loss(batch, logp, old, None)
    # fresh, replay started: -A r = -1.5, -0.5 (no clip); replayed: -0.5 f(1) = -0.454545, -0.5 f(0.5) = -0.416667
    assert per_token[0, :2].tolist() == pytest.approx([-1.5, -0.5])
    assert per_token[1, :2].tolist() == pytest.approx([-0.454545, -0.416667], abs=1e-6)
    assert stats["clip_frac"] == 0.0
    # sum over tokens / max length (3) / rows (2): (-2 - 0.871212) / 6 = -0.478535
    total = aggregate(per_token, batch.loss_mask, "seq-mean-token-sum-norm", total_tokens=4, total_seqs=2, max_len=3)
    assert total.item() == pytest.approx(-0.478535, abs=1e-6)
    # before replay starts the fresh tokens use the clipped surrogate: r = 1.5 -> 1.2, r = 0.5 stays (A > 0)
    per_token, stats = loss_only_method(mixed=False).token_loss(batch, logp, old, None)
    assert per_token[0, :2].tolist() == pytest.approx([-1.2, -0.5])
    assert stats["clip_frac"] == pytest.approx(1 / 4)  # one of the 4 trained tokens
    # ablation: clipped fresh tokens even after the start, replayed tokens without shaping
    per_token, _ = loss_only_method(mixed=True, unclipped_after_start=False, shaping=False).token_loss(batch, logp, old, None)
    assert per_token[0, :2].tolist() == pytest.approx([-1.2, -0.5])
    assert per_token[1, :2].tolist() == pytest.approx([-0.5, -0.25])


# -- the method inside the trainer --------------------------------------------
def test_delayed_start_switches_exactly_above_the_threshold(data_dir):
    # 4 prompts x 4 rollouts = 16 rows; the threshold 0.375 = 6/16 exactly
    cfg = tiny_config(data_dir, algo={"start_threshold": 0.375})
    t = Trainer(cfg, data_dir / "exg-delay")
    scripted(t, [6, 6, 7, 7, 7])
    m = t.method
    r = m.collect(0)
    assert np.mean(r.correct) == 0.375 and not m.started  # at the threshold: not above it
    assert r.metrics["replay_active"] == 0.0 and len(m.buffer) == 0  # nothing stored before the start
    r = m.collect(1)
    assert not m.started
    r = m.collect(2)  # 7/16 > 0.375: replay from the next step on
    assert m.started and r.metrics["replay_active"] == 0.0 and len(m.buffer) == 0
    r = m.collect(3)  # replay on; the buffer is still empty, so this batch is all fresh, and is stored
    assert r.metrics["replay_active"] == 1.0 and r.metrics["replayed_groups"] == 0.0
    assert len(m.buffer) == 4  # 7 correct spread over 4 groups: k = 2, 2, 2, 1, all stored
    assert {k: len(v) for k, v in m.buffer.buckets().items()} == {1: 1, 2: 3}
    r = m.collect(4)
    assert r.metrics["replayed_groups"] == 2.0 and sum(r.off_policy) == 2  # floor(0.5 * 4) groups replayed


def test_without_delay_replay_is_on_from_the_first_step(data_dir):
    t = Trainer(tiny_config(data_dir, algo={"delayed_start": False}), data_dir / "exg-nodelay")
    scripted(t, [5])
    r = t.method.collect(0)
    assert r.metrics["replay_active"] == 1.0 and len(t.method.buffer) > 0


def test_all_correct_groups_retire_their_questions(data_dir):
    t = Trainer(tiny_config(data_dir), data_dir / "exg-retire")
    scripted(t, [16, 0])  # every rollout of step 1 correct: its 4 questions retire even before replay starts
    r = t.method.collect(0)
    first = {p for p in r.prompts}
    assert len(t.method.buffer.retired) == 4 and r.metrics["retired_questions"] == 4.0
    # retired questions are skipped when fresh questions are drawn (they come again only after an epoch)
    t.method.cursor = 0
    r = t.method.collect(1)
    assert not first & set(r.prompts)


def preload(method, n_questions, per_question=2):
    """Put ``n_questions`` records of the training set in the buffer with made-up correct trajectories."""
    recs = method.trainer.records[-n_questions:]
    for j, rec in enumerate(recs):
        trajs = [Trajectory([5 + j, 6 + i, 7], [-0.1 * (i + 1)] * 3, step=1) for i in range(per_question)]
        method.buffer.update(rec["id"], 1 + j % 3, trajs)
    return recs


def test_mixed_batch_composition(data_dir):
    cfg = tiny_config(data_dir, prompts_per_step=5, algo={"delayed_start": False, "trajectory_selection": "random"})
    t = Trainer(cfg, data_dir / "exg-compose")
    scripted(t, [0])  # nothing correct, so the batch does not change the buffer
    recs = preload(t.method, 3)
    r = t.method.collect(0)
    K, B = 4, 5
    assert len(r) == B * K and r.group == [g for g in range(B) for _ in range(K)]
    replayed = int(B * 0.5)  # floor(rho * prompts) = 2 replayed groups, 3 fresh groups
    assert r.metrics["replayed_groups"] == replayed
    for g in range(B):
        rows = [i for i in range(len(r)) if r.group[i] == g]
        assert len({tuple(r.prompt_ids[i]) for i in rows}) == 1  # one question per group
        flags = [r.off_policy[i] for i in rows]
        if g < replayed:  # 1 replayed trajectory (first) + K - 1 fresh rollouts
            assert flags == [True] + [False] * (K - 1)
            i = rows[0]
            stored = t.method.buffer.trajectories[r_qid(t, r, i)]
            match = [s for s in stored if s.completion_ids == r.completion_ids[i]]
            assert match and r.old_logp[i] == match[0].logp  # pi_recorded travels with the trajectory
            assert all(r.old_logp[j] is None for j in rows[1:])
        else:
            assert flags == [False] * K
    assert {r_qid(t, r, i) for i in range(len(r)) if r.off_policy[i]} <= {rec["id"] for rec in recs}


def r_qid(t, r, i):
    prompt = r.prompts[i]
    return next(rec["id"] for rec in t.records if rec["prompt"] == prompt)


def test_minimum_entropy_selection_under_the_current_policy(data_dir):
    cfg = tiny_config(data_dir, prompts_per_step=2, algo={"delayed_start": False})
    t = Trainer(cfg, data_dir / "exg-select")
    scripted(t, [0])
    (rec,) = preload(t.method, 1, per_question=3)
    stored = t.method.buffer.trajectories[rec["id"]]
    prompt = t.prompt_ids(rec)
    # entropies computed independently, one row at a time
    from suite.rollout import Rollouts, collate

    means = []
    for s in stored:
        one = Rollouts(prompt_ids=[prompt], completion_ids=[s.completion_ids], loss_mask=[[1] * 3],
                       advantages=[[0.0] * 3], rewards=[0.0], correct=[True], group=[0])
        with torch.no_grad():
            _, ent = t.completion_logprobs(t.policy, collate(one, [0], t.tokenizer.pad_token_id))
        means.append(float(ent[0].mean()))
    _, scored = t.method.score([prompt] * 3, [s.completion_ids for s in stored])
    assert scored == pytest.approx(means, abs=1e-5)
    r = t.method.collect(0)
    chosen = r.completion_ids[r.off_policy.index(True)]
    assert chosen == stored[int(np.argmin(means))].completion_ids


def test_grpo_equivalence_when_nothing_is_replayed(data_dir):
    """With no replay (rho = 0, never started) ExGRPO draws, samples and updates exactly as GRPO."""
    kw = dict(steps=2, save_every=5, prompts_per_step=2)
    exg = Trainer(tiny_config(data_dir, **kw, algo={"replay_ratio": 0.0, "start_threshold": 0.99,
                                                    "retire_from_training": False}), data_dir / "exg-eq-a")
    grpo = Trainer(tiny_config(data_dir, **kw, method="grpo"), data_dir / "exg-eq-b")
    for t in (exg, grpo):
        t.reward_fn = lambda text, answers: float(len(text) % 2)
        t.verifier = lambda text, answers: False
        t.run()
    for (name, a), b in zip(exg.policy.state_dict().items(), grpo.policy.state_dict().values()):
        assert torch.equal(a, b), name


def test_resume_with_a_non_empty_buffer_ends_identically(data_dir):
    cfg = tiny_config(data_dir, steps=3, prompts_per_step=2, algo={"delayed_start": False})

    def make(out, resume=False):
        t = Trainer(cfg, data_dir / out, resume=resume)
        t.reward_fn = lambda text, answers: float(len(text) % 2)
        t.verifier = lambda text, answers: bool(len(text) % 2)
        return t

    straight = make("exg-straight")
    straight.run()
    first = make("exg-resumed")
    first.run(max_steps=2)
    assert len(first.method.buffer) > 0  # the checkpoint carries a non-empty buffer
    resumed = make("exg-resumed", resume=True)
    assert resumed.start_step == 2 and resumed.method.buffer.state_dict() == first.method.buffer.state_dict()
    resumed.run()
    assert_weights_moved(straight.policy, cfg.model)
    for (name, a), b in zip(straight.policy.state_dict().items(), resumed.policy.state_dict().values()):
        assert torch.equal(a, b), name
    assert straight.method.state_dict() == resumed.method.state_dict()
    drop = ("gen_time", "update_time", "step_time", "gen_tokens_per_s", "tokens_per_s")
    rows = [[{k: v for k, v in row.items() if k not in drop} for row in read_jsonl(data_dir / out / "metrics.jsonl")]
            for out in ("exg-straight", "exg-resumed")]
    assert rows[0] == rows[1] and [row["step"] for row in rows[1]] == [1, 2, 3]
    assert rows[0][-1]["replayed_groups"] == 1.0  # floor(0.5 * 2) groups replayed at the step after the resume
    for key in ("buffer_questions", "retired_questions", "bucket_1", "entropy_fresh", "accuracy_fresh"):
        assert key in rows[0][-1], key


# -- the difficulty levels ----------------------------------------------------
def test_arithmetic_levels():
    assert evaluate_expression([47, 38, 12], ["+", "*"]) == 47 + 38 * 12
    assert evaluate_expression([47, 38, 12], ["-", "-"]) == 47 - 38 - 12
    train, test = generate_levels("train", 40), generate_levels("test", 5)
    assert len(train) == 40 * len(LEVELS) and len(test) == 5 * len(LEVELS)
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}
    assert [r["metadata"]["level"] for r in test[:len(LEVELS)]] == sorted(LEVELS)  # interleaved by level
    for r in train:
        expr = r["prompt"].removeprefix("What is ").removesuffix("?")
        assert str(eval(expr)) == r["answers"][0]  # noqa: S307 - our own generated digits and operators
    assert generate_levels("train", 40) == train  # deterministic
    with pytest.raises(ValueError, match="unknown arithmetic level"):
        generate_levels("train", 5, levels=[99])


# -- the report hook ----------------------------------------------------------
def test_report_hook_summarises_replay_and_levels(tmp_path):
    from suite.io import write_jsonl
    from suite.reports.exgrpo import report

    runs, results, out = tmp_path / "runs", tmp_path / "results", tmp_path / "out"
    exps = [SimpleNamespace(name=n, label=n.upper(), train=object(), eval_tasks=["arithmetic_levels"])
            for n in ("onpolicy", "exg")]
    write_jsonl(runs / "onpolicy" / "metrics.jsonl",
                [{"step": s, "accuracy": 0.1 * s, "entropy": 1.0} for s in range(1, 7)])
    write_jsonl(runs / "exg" / "metrics.jsonl", [
        {"step": s, "accuracy": 0.5, "accuracy_fresh": 0.1 * s, "replay_active": float(s > 2),
         "replayed_groups": 2.0 if s > 3 else 0.0, "buffer_questions": float(s), "buffer_trajectories": 2.0 * s,
         "retired_questions": float(s // 2), "bucket_1": 1.0, "bucket_2": float(s - 1), "bucket_3": 0.0,
         "entropy_fresh": 0.8, "entropy_replayed": 0.4 if s > 3 else None} for s in range(1, 7)])
    for name, accs in (("onpolicy", [1.0, 0.0]), ("exg", [1.0, 1.0])):
        write_jsonl(results / "evals" / name / "arithmetic_levels.json.samples.jsonl",
                    [{"id": f"arithlv{lv}-test-{i}", "metrics": {"acc": a}}
                     for i in range(2) for lv, a in zip((1, 7), accs)])
    profile = SimpleNamespace(of_paper=lambda paper: exps,
                              eval_path=lambda res, name, task: res / "evals" / name / f"{task}.json")
    text = "\n".join(report(profile, "exgrpo", None, results, runs, out))
    # fresh accuracy: first 5 steps mean 0.3, last 5 steps mean 0.4; replay from step 3; 6 questions / 12 trajectories
    assert "| EXG | 6 | 30.0 → 40.0 | 3 | 6 / 12 | 3 | 1.5 | 0.4 | 0.8 |" in text
    assert "| ONPOLICY | 6 | 30.0 → 40.0 | — | — | — | — | — | 1 |" in text  # GRPO: all fresh, entropy 1
    assert "| EXG | 100.0 | 100.0 |" in text and "| ONPOLICY | 100.0 | 0.0 |" in text
    assert (out / "replay.png").is_file() and (out / "buckets.png").is_file()


def test_report_gain_over_onpolicy_per_benchmark_with_its_standard_error():
    import pandas as pd

    from suite.reports.exgrpo import gain_table

    def row(exp, method, task, value, stderr, metric="acc"):
        return {"experiment": exp, "label": exp.upper(), "method": method, "task": task, "metric": metric,
                "value": value, "stderr": stderr}

    df = pd.DataFrame([
        row("base", "base", "arith", 0.30, 0.05),  # the untrained model is not part of the comparison
        row("onp", "grpo", "arith", 0.40, 0.03), row("onp", "grpo", "math", 0.10, 0.04),
        row("ex", "exgrpo", "arith", 0.52, 0.04), row("ex", "exgrpo", "math", 0.08, 0.03),
        row("ex", "exgrpo", "math", 0.5, 0.1, metric="pass_at_k"),  # other metrics are ignored
        row("ex", "exgrpo", "train", 0.9, None, metric="final_reward"),
    ])
    lines = gain_table(df, {"gain_over_onpolicy": {"text": "+3.5 (the abstract)"}})
    assert "ONP" in lines[0] and lines[0].endswith("the paper: +3.5 (the abstract):")
    assert lines[2] == "| run | arith | math |"
    # 52 - 40 = +12.0, SE = sqrt(3² + 4²) = 5.0; 8 - 10 = -2.0, SE = sqrt(3² + 4²) = 5.0
    assert lines[-1] == "| EX | +12.0 ± 5.0 | -2.0 ± 5.0 |"
    assert gain_table(df[df.method != "grpo"], {}) == []  # no on-policy run: no table
