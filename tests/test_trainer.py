"""The shared training loop: layout, loss mask, resume equivalence, checkpoints, metrics."""

import json

import pytest
import torch

from suite.config import TrainConfig
from suite.io import read_jsonl
from suite.rollout import Rollouts, collate, trim_at_eos
from suite.trainer import Trainer, train
from tests.helpers import assert_weights_moved


def tiny_config(data_dir, **overrides):
    base = dict(experiment="t", model="tiny-llama", data_dir=str(data_dir), train_dataset="arithmetic_2d",
                steps=4, prompts_per_step=2, group_size=4, max_new_tokens=12, save_every=2, lr=1e-3,
                micro_batch_size=3, kl_coef=0.05, seed=7)
    return TrainConfig(**{**base, **overrides})


def test_collate_layout_and_positions():
    r = Rollouts(prompt_ids=[[5, 6, 7], [8]], completion_ids=[[1, 2], [3, 4, 9]], loss_mask=[[1, 1], [1, 0, 1]],
                 advantages=[[0.5, 0.5], [-1, -1, -1]], rewards=[1, 0], correct=[True, False], group=[0, 0])
    b = collate(r, [0, 1], pad_id=0)
    assert b.input_ids.tolist() == [[5, 6, 7, 1, 2, 0], [0, 0, 8, 3, 4, 9]]
    assert b.attention_mask.tolist() == [[1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1]]
    assert b.position_ids.tolist() == [[0, 1, 2, 3, 4, 4], [0, 0, 0, 1, 2, 3]]
    assert b.loss_mask.tolist() == [[1, 1, 0], [1, 0, 1]]
    assert b.advantages.tolist() == [[0.5, 0.5, 0.0], [-1, -1, -1]]
    assert not b.has_old_logp.any()


def test_trim_at_eos_keeps_the_eos_and_drops_padding():
    assert trim_at_eos([4, 5, 2, 7, 7], eos_ids={2}, pad_id=0) == [4, 5, 2]
    assert trim_at_eos([4, 5, 0, 0], eos_ids={2}, pad_id=0) == [4, 5]


def test_collate_lists_the_distinct_prompts_only_when_rows_share_one():
    r = Rollouts(prompt_ids=[[5, 6, 7], [8], [5, 6, 7]], completion_ids=[[1], [2], [3]], loss_mask=[[1]] * 3,
                 advantages=[[0.0]] * 3, rewards=[0, 0, 0], correct=[False] * 3, group=[0, 1, 0])
    b = collate(r, [0, 1, 2], pad_id=0)
    assert b.distinct_prompts.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert b.distinct_prompt_mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert b.prompt_of_row.tolist() == [0, 1, 0]
    # the full layout is there too, and agrees
    assert torch.equal(b.input_ids[:, :3], b.distinct_prompts[b.prompt_of_row])
    assert collate(r, [0, 1], pad_id=0).prompt_of_row is None


@pytest.mark.parametrize("bf16", [False, True])
def test_a_shared_prompt_pass_gives_the_logprobs_and_gradients_of_one_pass_per_row(data_dir, bf16):
    """Two prompts of different lengths, three completions each, rows interleaved: the shared-prompt path
    (one pass per distinct prompt, keys and values gathered per row) equals a full pass over every row."""
    trainer = Trainer(tiny_config(data_dir, kl_coef=0.0, bf16=bf16), data_dir / f"run-shared-{bf16}")
    prompts = [trainer.prompt_ids(trainer.records[0]), trainer.prompt_ids(trainer.records[1])[:-3]]
    torch.manual_seed(0)  # the sampled completions (and so the test) do not depend on earlier tests' draws
    completions = trainer.generate(prompts, n=3, max_new_tokens=8)
    order = [0, 3, 1, 4, 2, 5]
    kept = [completions[i][:8 - i] for i in order]  # rows of different lengths (a sample may also stop early)
    r = Rollouts(prompt_ids=[prompts[i // 3] for i in order], completion_ids=kept,
                 loss_mask=[[1] * len(c) for c in kept], advantages=[[1.0] * len(c) for c in kept],
                 rewards=[0.0] * 6, correct=[False] * 6, group=[i // 3 for i in order])
    assert len(set(map(len, r.prompt_ids))) == 2

    def logp_and_grads(shared: bool):
        batch = collate(r, list(range(6)), trainer.tokenizer.pad_token_id)
        assert batch.prompt_of_row is not None
        if not shared:
            batch.prompt_of_row = None
        trainer.policy.zero_grad()
        logp, entropy = trainer.completion_logprobs(trainer.policy, batch)
        (logp * batch.loss_mask).sum().backward()
        return logp.detach() * batch.loss_mask, entropy * batch.loss_mask, [p.grad.clone() for p in trainer.policy.parameters()]

    shared, full = logp_and_grads(True), logp_and_grads(False)
    tol = dict(atol=0.05, rtol=0.05) if bf16 else dict(atol=1e-5, rtol=1e-4)
    assert torch.allclose(shared[0], full[0], **tol)
    assert torch.allclose(shared[1], full[1], **tol)
    assert all(torch.allclose(a, b, **tol) for a, b in zip(shared[2], full[2]))


def test_masked_tokens_do_not_contribute(data_dir):
    """Tokens with loss_mask 0 (observations) leave the loss and its gradient unchanged."""
    trainer = Trainer(tiny_config(data_dir, kl_coef=0.0), data_dir / "run-mask")
    prompt = trainer.prompt_ids(trainer.records[0])
    completion = trainer.generate([prompt], n=1)[0][:6]
    assert len(completion) == 6

    def loss_and_grad(advantages):
        r = Rollouts(prompt_ids=[prompt], completion_ids=[completion], loss_mask=[[1, 1, 0, 0, 1, 1]],
                     advantages=[advantages], rewards=[1.0], correct=[True], group=[0])
        trainer.policy.zero_grad()
        batch = collate(r, [0], trainer.tokenizer.pad_token_id)
        logp, _ = trainer.completion_logprobs(trainer.policy, batch)
        per_token, _ = trainer.method.token_loss(batch, logp, logp.detach(), None)
        from suite.losses import aggregate

        loss = aggregate(per_token, batch.loss_mask, "token-mean", total_tokens=4, total_seqs=1, max_len=6)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in trainer.policy.parameters() if p.grad is not None]

    loss_a, grad_a = loss_and_grad([1.0, 1.0, 0.0, 0.0, 1.0, 1.0])
    loss_b, grad_b = loss_and_grad([1.0, 1.0, 1e6, -1e6, 1.0, 1.0])
    assert loss_a == loss_b
    assert all(torch.equal(a, b) for a, b in zip(grad_a, grad_b))


def test_interrupted_and_resumed_run_ends_with_identical_weights(data_dir):
    cfg = tiny_config(data_dir)
    def make(out, resume=False):
        t = Trainer(cfg, data_dir / out, resume=resume)
        t.reward_fn = lambda text, answers: float(len(text) % 2)  # rewards that differ within a group
        return t

    straight = make("run-straight")
    straight.run()

    first = make("run-resumed")
    first.run(max_steps=2)  # "crash" after the step-2 checkpoint
    assert not (data_dir / "run-resumed" / "final").exists()
    resumed = make("run-resumed", resume=True)
    assert resumed.start_step == 2
    resumed.run()
    assert_weights_moved(straight.policy, cfg.model)  # else equal weights would prove nothing

    for (name, a), b in zip(straight.policy.state_dict().items(), resumed.policy.state_dict().values()):
        assert torch.equal(a, b), name
    drop = ("gen_time", "update_time", "step_time", "gen_tokens_per_s", "tokens_per_s")
    rows_a = [{k: v for k, v in r.items() if k not in drop} for r in read_jsonl(data_dir / "run-straight" / "metrics.jsonl")]
    rows_b = [{k: v for k, v in r.items() if k not in drop} for r in read_jsonl(data_dir / "run-resumed" / "metrics.jsonl")]
    assert rows_a == rows_b and [r["step"] for r in rows_b] == [1, 2, 3, 4]


def test_method_setup_runs_once_before_the_first_step_and_not_when_nothing_is_left(data_dir):
    """One-off work (Cooper's RM pretraining) happens in setup, outside step 1's timed collect."""
    cfg = tiny_config(data_dir, steps=4, save_every=2)
    trainer = Trainer(cfg, data_dir / "run-setup")
    calls = []
    collect = trainer.method.collect
    trainer.method.setup = lambda: calls.append("setup")
    trainer.method.collect = lambda step: calls.append(f"collect {step}") or collect(step)
    trainer.run(max_steps=2)
    assert calls == ["setup", "collect 0", "collect 1"]
    resumed = Trainer(cfg, data_dir / "run-setup", resume=True)
    assert resumed.start_step == 2
    resumed.method.setup = lambda: calls.append("setup again")
    resumed.run(max_steps=2)  # nothing left before max_steps: no setup
    assert calls[-1] == "collect 1"
    resumed.run()  # steps 3-4: setup again, once, in this process
    assert calls[3:] == ["setup again"] and (data_dir / "run-setup" / "final").is_dir()


def test_checkpoint_contents_and_stale_config(data_dir):
    out = data_dir / "run-ckpt"
    Trainer(tiny_config(data_dir), out).run(max_steps=2)
    ckpt = out / "checkpoints" / "step_000002"
    assert (ckpt / "config.json").is_file() and (ckpt / "model.safetensors").is_file()
    state = torch.load(ckpt / "trainer_state.pt", weights_only=False)
    assert state["step"] == 2 and {"optimizer", "scheduler", "rng", "method"} <= set(state)
    # a different config does not resume from these checkpoints: they are moved aside, kept
    fresh = Trainer(tiny_config(data_dir, lr=2e-3), out, resume=True)
    assert fresh.start_step == 0 and (out / "checkpoints.stale" / "step_000002").is_dir()


def test_metrics_and_done_file(data_dir):
    from types import SimpleNamespace

    out = data_dir / "run-metrics"
    last = train(SimpleNamespace(train=tiny_config(data_dir, steps=2, save_every=5), name="t", method="grpo"), out)
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    for key in ("reward", "accuracy", "kl", "entropy", "response_length", "grad_norm", "step_time", "tokens_per_s",
                "clip_frac", "loss", "lr"):
        assert key in rows[0], key
    done = json.loads((out / "done.json").read_text())
    assert done["steps"] == 2 and done["last_metrics"]["step"] == last["step"] == 2
    assert (out / "final" / "model.safetensors").is_file()


def test_kl_is_zero_before_the_first_update_and_grows_after(data_dir):
    trainer = Trainer(tiny_config(data_dir, steps=2, save_every=5), data_dir / "run-kl")
    trainer.reward_fn = lambda text, answers: float(len(text) % 2)  # any reward with within-group variance
    trainer.run()
    rows = read_jsonl(data_dir / "run-kl" / "metrics.jsonl")
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # policy == reference at step 1
    assert rows[1]["kl"] > 1e-6


def test_no_reference_model_when_kl_is_zero(data_dir):
    trainer = Trainer(tiny_config(data_dir, kl_coef=0.0), data_dir / "run-noref")
    assert trainer.ref is None


def test_multiple_ppo_epochs_use_recorded_old_logprobs(data_dir):
    trainer = Trainer(tiny_config(data_dir, kl_coef=0.0, ppo_epochs=2), data_dir / "run-epochs")
    trainer.reward_fn = lambda text, answers: float(len(text) % 2)
    rollouts = trainer.method.collect(0)
    trainer.fill_old_logprobs(rollouts)
    batch = collate(rollouts, [0], trainer.tokenizer.pad_token_id)
    with torch.no_grad():
        logp, _ = trainer.completion_logprobs(trainer.policy, batch)
    length = len(rollouts.completion_ids[0])
    assert rollouts.old_logp[0] == pytest.approx(logp[0, :length].tolist(), abs=1e-5)
    stats = trainer.update(rollouts)
    assert stats["grad_norm"] > 0
    assert 0 < stats["clip_frac"] < 1  # lr 1e-3 moves the ratio out of [0.8, 1.2] on some tokens by epoch 2


def test_a_save_cut_short_is_never_resumed_and_is_cleaned_up(data_dir):
    """A checkpoint save that died (disk full) leaves ``step_N.partial``: resume takes the last complete one,
    the next save removes the partial, and rotation counts complete checkpoints only."""
    cfg = tiny_config(data_dir, steps=4, save_every=1, keep_checkpoints=2)
    out = data_dir / "run-partial"
    Trainer(cfg, out).run(max_steps=2)
    partial = out / "checkpoints" / "step_000003.partial"
    partial.mkdir()
    (partial / "trainer_state.pt").write_bytes(b"cut short")  # what a full disk leaves
    resumed = Trainer(cfg, out, resume=True)
    assert resumed.start_step == 2
    resumed.run(max_steps=3)
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["step_000002", "step_000003"]


def test_a_completed_run_keeps_its_final_model_and_drops_its_resume_state(data_dir):
    from types import SimpleNamespace

    out = data_dir / "run-prune"
    train(SimpleNamespace(train=tiny_config(data_dir, steps=2, save_every=1), name="t", method="grpo"), out)
    assert (out / "final" / "model.safetensors").is_file() and (out / "done.json").is_file()
    assert not (out / "checkpoints").exists()
    # an interrupted run keeps them, to resume from
    train(SimpleNamespace(train=tiny_config(data_dir, steps=3, save_every=1), name="t", method="grpo"),
          data_dir / "run-cut", max_steps=2)
    assert (data_dir / "run-cut" / "checkpoints" / "step_000002").is_dir()


def test_a_second_run_on_a_locked_out_dir_fails_naming_the_pid(data_dir):
    import os
    import subprocess
    import sys

    from suite.trainer import RunLockedError, run_lock

    out = data_dir / "run-locked"
    with run_lock(out):
        with pytest.raises(RunLockedError, match=rf"PID {os.getpid()}.*\.lock"):
            train(tiny_config(data_dir, steps=1), out)
        # another process is refused too (flock is per open file, so this is the real case)
        code = ("import sys; from suite.trainer import run_lock\n"
                "try:\n    run_lock(__import__('pathlib').Path(sys.argv[1])).__enter__()\n"
                "except Exception as e:\n    print(e); sys.exit(3)\n")
        done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True)
        assert done.returncode == 3 and f"PID {os.getpid()}" in done.stdout
    with run_lock(out):  # released when the holder is done
        pass


def test_resume_on_a_finished_run_does_nothing_and_says_so(data_dir, capsys):
    from types import SimpleNamespace

    cfg = tiny_config(data_dir, steps=2, save_every=5)
    out = data_dir / "run-finished"
    exp = SimpleNamespace(train=cfg, name="t", method="grpo")
    last = train(exp, out)
    stamp = (out / "final" / "model.safetensors").stat().st_mtime_ns
    capsys.readouterr()
    again = train(exp, out, resume=True)
    assert again["step"] == last["step"] == 2 and "already complete" in capsys.readouterr().err
    assert (out / "final" / "model.safetensors").stat().st_mtime_ns == stamp  # not retrained
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl")] == [1, 2]


@pytest.mark.parametrize("damage", ["trainer_state.pt", "model.safetensors"])
def test_an_unreadable_latest_checkpoint_falls_back_to_the_one_before(data_dir, damage, capsys):
    from suite.trainer import CheckpointError

    cfg = tiny_config(data_dir, steps=4, save_every=1, keep_checkpoints=3)
    out = data_dir / f"run-corrupt-{damage}"
    Trainer(cfg, out).run(max_steps=3)
    latest = out / "checkpoints" / "step_000003" / damage
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 3])  # a truncated file
    resumed = Trainer(cfg, out, resume=True)
    assert resumed.start_step == 2
    assert "step_000003" in capsys.readouterr().err
    for step in (1, 2):  # nothing loads: the run stops naming the files rather than starting over
        broken = out / "checkpoints" / f"step_{step:06d}" / damage
        broken.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"(?s)step_000003.*step_000002.*step_000001"):
        Trainer(cfg, out, resume=True)


def test_a_log_line_cut_by_a_crash_does_not_stop_the_resume(data_dir):
    """Disk full during an append leaves half a line at the end of metrics.jsonl: the next start drops it
    with a warning naming the file and the resumed run logs every step once."""
    cfg = tiny_config(data_dir, steps=4, save_every=2)
    out = data_dir / "run-cut-log"
    Trainer(cfg, out).run(max_steps=3)  # checkpoint at step 2, then step 3 logged
    log = out / "metrics.jsonl"
    log.write_text(log.read_text()[:-40])  # step 3's line cut short, no newline
    resumed = Trainer(cfg, out, resume=True)
    with pytest.warns(Warning, match=r"metrics\.jsonl: dropped its cut-off last line"):
        resumed.run()
    assert [r["step"] for r in read_jsonl(log)] == [1, 2, 3, 4]
