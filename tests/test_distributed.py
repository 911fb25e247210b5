"""Many ranks, one trainer (suite/distributed.py): 2 ranks on the CPU (gloo, FSDP2) against 1 process, resume
across world sizes, the gathered state dict, chunked log-probs, gradient checkpointing, refusals, and the colocated
vLLM engine against a stub ``vllm`` module (no GPU and no vLLM here)."""

from __future__ import annotations

import importlib.machinery
import json
import os
import signal
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from suite import distributed
from suite.config import TrainConfig
from suite.losses import selected_logprobs_and_entropy
from suite.rollout import Rollouts, SamplingParams, collate
from suite.trainer import Trainer

REPO = Path(__file__).resolve().parent.parent
DRIVER = REPO / "tests" / "dist_driver.py"


def config(data_dir, **overrides) -> dict:
    base = dict(experiment="d", model="tiny-llama", data_dir=str(data_dir), train_dataset="arithmetic_2d", steps=4,
                prompts_per_step=4, group_size=3, max_new_tokens=10, save_every=2, lr=1e-3, micro_batch_size=4,
                kl_coef=0.05, seed=3, bf16=False, generation_seed="group")
    return {**base, **overrides}


def launch(cfg: dict, out: Path, ranks: int, *extra: str) -> None:
    """Train ``cfg`` into ``out``: one plain process, or ``torchrun --nproc_per_node ranks``."""
    path = out.parent / f"{out.name}.json"
    path.write_text(json.dumps(cfg))
    launcher = [sys.executable] if ranks == 1 else [sys.executable, "-m", "torch.distributed.run",
                                                     "--standalone", "--nproc_per_node", str(ranks)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([*launcher, str(DRIVER), str(path), str(out), *extra], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and its ranks (a session of their own)
        raise
    assert proc.returncode == 0, stderr[-4000:]


def metric(out: Path, key: str) -> list[float]:
    return [row[key] for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())]


def losses(out: Path) -> list[float]:
    return metric(out, "loss")


def weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(out / "final" / "model.safetensors"))


def assert_same_run(a: Path, b: Path, steps: int = 4) -> None:
    la, lb = losses(a), losses(b)
    assert len(la) == len(lb) == steps
    assert la == pytest.approx(lb, rel=1e-4, abs=1e-6), f"loss per step: {la} vs {lb}"
    ga, gb = metric(a, "grad_norm"), metric(b, "grad_norm")
    assert ga == pytest.approx(gb, rel=1e-4), f"gradient norm per step: {ga} vs {gb}"
    wa, wb = weights(a), weights(b)
    assert sorted(wa) == sorted(wb)
    worst = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
    assert worst < 1e-4, f"final weights differ by {worst}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    """GRPO (with a KL reference) and ExGRPO (replay buffer, from step 1), each on 1 and 2 ranks; GRPO interrupted
    after its step-2 checkpoint and resumed on the other world size."""
    from suite.data import prepare

    root = tmp_path_factory.mktemp("dist")
    for name in ("frozen_lake_seeds", "countdown"):
        prepare(name, "train", data_dir)
    grpo = config(data_dir)
    exgrpo = config(data_dir, method="exgrpo", kl_coef=0.0, algo={"delayed_start": False, "replay_ratio": 0.5})
    # MS-GRPO: multi-turn episodes, rows drawn per update, per-episode weights over the whole batch (kl on)
    msgrpo = config(data_dir, method="msgrpo", train_dataset="frozen_lake_seeds", group_size=2, max_new_tokens=6,
                    micro_batch_size=3, max_prompt_tokens=128, kl_coef=0.01, seed=5,
                    algo={"game_kwargs": {"max_steps": 3}, "update_samples": 5, "sampling": "softmax"})
    # SFT on expert answers: no sampling, one row per prompt
    sft = config(data_dir, method="sft", train_dataset="countdown", prompt_template="plain", reward="countdown",
                 verifier="countdown", group_size=1, max_new_tokens=600, micro_batch_size=3, kl_coef=0.0,
                 algo={"data": "expert", "prompts": 16})
    out = {}
    for name, cfg in (("grpo", grpo), ("exgrpo", exgrpo), ("msgrpo", msgrpo), ("sft", sft)):
        for ranks in (1, 2):
            out[name, ranks] = root / f"{name}-{ranks}"
            launch(cfg, out[name, ranks], ranks)
    out["grpo-gc", 2] = root / "grpo-gc-2"  # gradient checkpointing under FSDP2
    launch({**grpo, "gradient_checkpointing": True}, out["grpo-gc", 2], 2)
    for first, then in ((1, 2), (2, 1)):
        out["resume", first, then] = root / f"resume-{first}-{then}"
        launch(grpo, out["resume", first, then], first, "--max-steps", "2")
        assert not (out["resume", first, then] / "final").exists()
        launch(grpo, out["resume", first, then], then, "--resume")
    return out


@pytest.mark.parametrize("method", ["grpo", "exgrpo", "msgrpo", "sft"])
def test_two_ranks_take_the_updates_of_one_process(runs, method):
    """Same global batch and seed, fp32: the same loss at every step and the same final weights (GRPO with its KL
    reference sharded too; ExGRPO with its replay buffer replicated, generation split by group and gathered; MS-GRPO's
    episodes played on both ranks' shares of each turn, its per-episode weights over the whole batch; SFT)."""
    assert json.loads((runs[method, 2] / "world.json").read_text()) == {"size": 2, "sharded": True}
    assert json.loads((runs[method, 1] / "world.json").read_text()) == {"size": 1, "sharded": False}
    assert_same_run(runs[method, 1], runs[method, 2])


def test_exgrpo_replays_at_two_ranks(runs):
    rows = [json.loads(line) for line in (runs["exgrpo", 2] / "metrics.jsonl").read_text().splitlines()]
    assert any(row["replayed_groups"] > 0 for row in rows), "the buffer never replayed: the test would prove little"
    one = [json.loads(line) for line in (runs["exgrpo", 1] / "metrics.jsonl").read_text().splitlines()]
    for a, b in zip(one, rows):
        assert a["replayed_groups"] == b["replayed_groups"] and a["buffer_questions"] == b["buffer_questions"]
        assert a["entropy_fresh"] == pytest.approx(b["entropy_fresh"], rel=1e-4)


def test_two_ranks_with_gradient_checkpointing_take_the_updates_of_one_process(runs):
    assert_same_run(runs["grpo", 1], runs["grpo-gc", 2])


@pytest.mark.parametrize("first,then", [(1, 2), (2, 1)])
def test_resume_on_another_number_of_ranks_ends_where_the_straight_run_ends(runs, first, then):
    assert_same_run(runs["grpo", 1], runs["resume", first, then])


def test_the_gathered_state_dict_is_the_unsharded_models(runs):
    from suite.models import load_model

    model, _ = load_model("tiny-llama")
    expected = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert json.loads((runs["grpo", 2] / "gathered.json").read_text()) == expected
    # and the checkpoint written from it holds what an unsharded save holds (tied head not written twice)
    assert sorted(weights(runs["grpo", 2])) == sorted(weights(runs["grpo", 1]))


def test_chunked_logprobs_and_entropies_equal_the_unchunked_ones():
    torch.manual_seed(0)
    logits = torch.randn(3, 11, 97, dtype=torch.float64).float().requires_grad_()
    tokens = torch.randint(0, 97, (3, 11))
    whole = selected_logprobs_and_entropy(logits, tokens)
    (grad_whole,) = torch.autograd.grad((whole[0] * torch.arange(11)).sum(), logits)
    chunked = selected_logprobs_and_entropy(logits, tokens, chunk_elements=97 * 4)  # 9 chunks of 4 positions
    (grad_chunked,) = torch.autograd.grad((chunked[0] * torch.arange(11)).sum(), logits)
    assert torch.equal(whole[0], chunked[0]) and torch.equal(whole[1], chunked[1])
    assert torch.equal(grad_whole, grad_chunked)
    # a bf16 input (the autocast path) too
    half = logits.detach().bfloat16()
    assert all(torch.equal(a, b) for a, b in zip(selected_logprobs_and_entropy(half, tokens),
                                                  selected_logprobs_and_entropy(half, tokens, chunk_elements=97)))


def _rollouts(trainer: Trainer) -> Rollouts:
    prompts = [trainer.prompt_ids(trainer.records[0]), trainer.prompt_ids(trainer.records[1])]
    torch.manual_seed(0)
    completions = trainer.generate(prompts, n=2, max_new_tokens=8)
    n = len(completions)
    return Rollouts(prompt_ids=[p for p in prompts for _ in range(2)], completion_ids=completions,
                    loss_mask=[[1] * len(c) for c in completions],
                    advantages=[[1.0 if i % 2 else -1.0] * len(c) for i, c in enumerate(completions)],
                    rewards=[0.0] * n, correct=[False] * n, group=[i // 2 for i in range(n)])


def test_gradient_checkpointing_gives_the_same_gradients_and_update(data_dir, tmp_path):
    cfg = TrainConfig(**config(data_dir, kl_coef=0.0, micro_batch_size=2))
    plain = Trainer(cfg, tmp_path / "plain")
    checkpointed = Trainer(TrainConfig(**config(data_dir, kl_coef=0.0, micro_batch_size=2,
                                                gradient_checkpointing=True)), tmp_path / "gc")
    assert checkpointed.policy.is_gradient_checkpointing and not plain.policy.is_gradient_checkpointing
    r = _rollouts(plain)

    def grads(t: Trainer):
        t.policy.zero_grad()
        batch = collate(r, list(range(len(r))), t.tokenizer.pad_token_id)
        batch.prompt_of_row = None
        logp, _ = t.completion_logprobs(t.policy, batch)
        t.backward((logp * batch.loss_mask * batch.advantages).sum(), batch)
        return [p.grad.clone() for p in t.policy.parameters()]

    for a, b in zip(grads(plain), grads(checkpointed)):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5)
    # the update itself (the shared-prompt pass is off under checkpointing): same loss and gradient norm (AdamW's
    # first step, about lr * sign(grad), would magnify rounding in near-zero gradients, so weights are not compared)
    stats = [t.update(r) for t in (plain, checkpointed)]
    assert stats[0]["loss"] == pytest.approx(stats[1]["loss"], rel=1e-5, abs=1e-7)
    assert stats[0]["grad_norm"] == pytest.approx(stats[1]["grad_norm"], rel=1e-5)


def test_group_seeding_samples_a_group_alike_wherever_it_sits(data_dir, tmp_path):
    """generation_seed: group: a prompt group's samples depend on (seed, step, prompt), not on the other prompts of
    the call or on torch's stream, which is what lets two ranks sample what one process samples."""
    t = Trainer(TrainConfig(**config(data_dir)), tmp_path / "g")
    a, b = t.prompt_ids(t.records[0]), t.prompt_ids(t.records[1])
    torch.manual_seed(1)
    both = t.generate([a, b], n=3)
    torch.manual_seed(2)
    alone = t.generate([b], n=3)
    assert both[3:] == alone
    t._seed(1)  # another step: other samples
    assert t.generate([a, b], n=3) != both


def test_what_several_ranks_cannot_run_is_refused(data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(distributed, "setup", lambda: distributed.World(rank=0, size=2))
    with pytest.raises(ValueError, match="method 'cooper' does not run on 2 ranks"):
        Trainer(TrainConfig(**config(data_dir, method="cooper", kl_coef=0.0)), tmp_path / "cooper")
    with pytest.raises(ValueError, match="prompts_per_step = 1 with 2 ranks"):
        Trainer(TrainConfig(**config(data_dir, prompts_per_step=1)), tmp_path / "one")
    with pytest.raises(ValueError, match="generation_seed = 'step' with 2 ranks"):
        Trainer(TrainConfig(**config(data_dir, generation_seed="step")), tmp_path / "step")


# -- the colocated vLLM engine, against a stub vllm module -------------------------------------------------------
class _StubLLM:
    def __init__(self, **kwargs):
        self.kwargs, self.calls, self.loaded, self.requests = kwargs, [], [], []
        runner = types.SimpleNamespace(model=types.SimpleNamespace(load_weights=self._load))
        self.llm_engine = types.SimpleNamespace(model_executor=types.SimpleNamespace(
            driver_worker=types.SimpleNamespace(worker=types.SimpleNamespace(model_runner=runner))))

    def _load(self, weights):
        self.calls.append("load_weights")
        self.loaded.extend(name for name, _ in weights)

    def sleep(self, level):
        self.calls.append(f"sleep({level})")

    def wake_up(self, tags=None):
        self.calls.append(f"wake_up({','.join(tags) if tags else ''})")

    def reset_prefix_cache(self):
        self.calls.append("reset_prefix_cache")

    def generate(self, prompts, sampling, use_tqdm=False):
        self.calls.append("generate")
        self.requests.extend(zip(prompts, sampling))
        return [types.SimpleNamespace(outputs=[types.SimpleNamespace(token_ids=[7] * s.kwargs["max_tokens"])
                                               for _ in range(s.kwargs["n"])]) for s in sampling]


@pytest.fixture
def stub_vllm(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    vllm.LLM = _StubLLM
    vllm.SamplingParams = lambda **kwargs: types.SimpleNamespace(kwargs=kwargs)
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids}
    vllm.inputs = inputs
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)
    return vllm


def test_vllm_engine_sleeps_wakes_seeds_and_truncates(stub_vllm, data_dir, tmp_path):
    from suite.vllm_engine import VLLMEngine

    engine = VLLMEngine("model-dir", tokenizer=None, seed=5, gpu_memory_utilization=0.4, max_model_len=20,
                        tensor_parallel_size=1, enable_sleep_mode=True)
    llm = engine.llm
    assert llm.kwargs["enable_sleep_mode"] and llm.kwargs["max_model_len"] == 20 and llm.kwargs["seed"] == 5
    assert llm.calls == ["sleep(1)"]  # built asleep: the trainer's optimizer state comes next
    out = engine.generate([[1] * 5, [2] * 25, [3] * 18], SamplingParams(max_new_tokens=8, n=2, seed=1234))
    assert llm.calls[1:] == ["wake_up()", "generate", "sleep(1)"]
    sent = [(p["prompt_token_ids"][0], s.kwargs) for p, s in llm.requests]
    assert [first for first, _ in sent] == [1, 3]  # the prompt past max_model_len is not sent
    assert [kw["max_tokens"] for _, kw in sent] == [8, 2]  # at most the room left under max_model_len
    assert [kw["seed"] for _, kw in sent] == [1234, 1236]  # seed + the prompt's index in the call
    assert out == [[7] * 8, [7] * 8, [], [], [7] * 2, [7] * 2]  # empty: that episode ends truncated
    model = torch.nn.Linear(2, 2)
    llm.calls.clear()
    engine.sync_weights(model)
    assert llm.calls == ["wake_up(weights)", "load_weights", "load_weights", "reset_prefix_cache", "sleep(1)"]
    assert llm.loaded == ["weight", "bias"]


def test_the_trainer_passes_a_seed_per_group_and_pushes_weights_to_vllm(stub_vllm, data_dir, tmp_path):
    t = Trainer(TrainConfig(**config(data_dir, engine="vllm", kl_coef=0.0, vllm_max_model_len=512)), tmp_path / "v")
    llm = t.engine.llm
    prompts = [t.prompt_ids(t.records[0]), t.prompt_ids(t.records[1])]
    t._seed(0)
    llm.calls.clear()
    t.generate(prompts, n=3)
    assert llm.calls.count("generate") == 1  # the groups' seeded requests go to vLLM together
    first = [s.kwargs["seed"] for _, s in llm.requests]
    assert len(first) == 2 and first[0] != first[1]  # one seed per group
    llm.requests.clear()
    t.generate([prompts[0]] * 2, n=1)  # a group of two identical rows (ExGRPO's layout): two seeds, two samples
    assert [s.kwargs["seed"] for _, s in llm.requests] == [first[0], first[0] + 1]
    llm.requests.clear()
    t.generate(prompts[1:], n=3)
    assert llm.requests[0][1].kwargs["seed"] == first[1]  # a group's seed does not depend on the call's other prompts
    llm.requests.clear()
    t._seed(1)
    t.generate(prompts[1:], n=3)
    assert llm.requests[0][1].kwargs["seed"] != first[1]  # another step, another seed
    llm.calls.clear()
    t._sync_engine()
    assert llm.calls[0] == "wake_up(weights)" and llm.calls[-2:] == ["reset_prefix_cache", "sleep(1)"]
    assert set(llm.loaded) == set(t.policy.state_dict())
    # generation_seed: auto seeds per group with vLLM even in one process (a resumed GPU run repeats its samples)
    auto = Trainer(TrainConfig(**config(data_dir, engine="vllm", kl_coef=0.0, generation_seed="auto")), tmp_path / "a")
    assert auto.group_seeding


def test_gpu_check_script_runs_its_cpu_parts():
    """scripts/gpu_check.sh (meant for a GPU) with --device cpu --tiny: FSDP2 over a group of one gives the plain
    path's losses on tiny-llama at fp32."""
    proc = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), "--device", "cpu", "--tiny", "--steps", "2"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "gpu_check: PASS" in proc.stdout
    check = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith('{"check": "tiny-llama')))
    assert check["same"] and len(check["fsdp"]) == 2


def test_torchrun_runs_the_train_command(data_dir, tmp_path):
    """`torchrun --nproc_per_node 2 -m suite train` on a profile: rank 0 holds the lock and writes done.json, the
    losses are the one-process command's."""
    import yaml

    profile = {
        "profile": "t", "model": "tiny-llama", "data": {"dir": str(data_dir)}, "runs_dir": str(tmp_path / "runs"),
        "results_dir": str(tmp_path / "res"), "eval": {"tasks": {"gsm8k": {"limit": 2}}},
        "train_defaults": {"steps": 2, "prompts_per_step": 2, "group_size": 3, "lr": 1.0e-3, "max_new_tokens": 8,
                           "bf16": False, "generation_seed": "group", "save_every": 1},
        "experiments": {"grpo": {"paper": "toy", "method": "grpo", "eval_tasks": ["gsm8k"]}},
    }
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(profile))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    outs = {}
    for ranks in (1, 2):
        outs[ranks] = tmp_path / f"out-{ranks}"
        launcher = ([sys.executable] if ranks == 1 else
                    [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"])
        proc = subprocess.run([*launcher, "-m", "suite", "train", "--config", str(path), "--experiment", "grpo",
                               "--out", str(outs[ranks])], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=240, start_new_session=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
        done = json.loads((outs[ranks] / "done.json").read_text())
        assert done["steps"] == 2 and (outs[ranks] / "final").is_dir() and not (outs[ranks] / "checkpoints").exists()
    assert losses(outs[1]) == pytest.approx(losses(outs[2]), rel=1e-4, abs=1e-6)


def test_ranks_of_one_tensor_parallel_engine_generate_the_same_groups():
    from suite.distributed import World, generation_share

    alone = [list(generation_share(10, World(rank=r, size=4))) for r in range(4)]
    assert alone == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]
    paired = [list(generation_share(10, World(rank=r, size=4), tensor_parallel=2)) for r in range(4)]
    assert paired == [[0, 1, 2, 3, 4]] * 2 + [[5, 6, 7, 8, 9]] * 2
