"""The memory plan (suite/plan.py, ``python -m suite plan``) against numbers worked out by hand."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from suite.config import ConfigError, TrainConfig, load_profile
from suite.plan import GIB, KNOWN, check_profile, estimate, plan

REPO = Path(__file__).resolve().parent.parent
LLAMA_1B = "meta-llama/Llama-3.2-1B-Instruct"


def test_parameter_counts_match_the_published_ones():
    # Llama-3.2-1B by hand: embeddings 128256 x 2048 (tied head) + 16 layers x (q, o: 2048^2 each; k, v: 2048 x 512
    # each; MLP 3 x 2048 x 8192; two norms 2048 each) + the final norm
    layer = 2 * 2048 * 2048 + 2 * 2048 * 512 + 3 * 2048 * 8192 + 2 * 2048
    assert KNOWN[LLAMA_1B].params() == 128256 * 2048 + 16 * layer + 2048 == 1_235_814_400
    assert KNOWN["Qwen/Qwen2.5-7B-Instruct"].params() == 7_615_616_512  # the model card's 7.61B
    assert KNOWN["HuggingFaceTB/SmolLM2-135M-Instruct"].params() == 134_515_008


def test_a_one_billion_model_on_four_gpus_by_hand():
    cfg = TrainConfig(experiment="x", model=LLAMA_1B, micro_batch_size=2, max_prompt_tokens=100, max_new_tokens=50,
                      kl_coef=0.1, engine="vllm", vllm_gpu_memory_utilization=0.25)
    e = estimate(cfg, gpus=4, gpu_memory=80)
    p, layer = 1_235_814_400, 60_821_504
    h, kv, i, vocab, layers = 2048, 512, 8192, 128256, 16
    tokens = 2 * (100 + 50)
    expected = {
        "parameters": 4 * p / 4, "gradients": 4 * p / 4, "optimizer": 8 * p / 4, "reference": 4 * p / 4,
        "gathered layers": 2 * 2 * layer, "reward model": 0.0,
        "activations": tokens * layers * (8 * h + 2 * kv + 4 * i) * 2,
        "logits": 2 * 2 * 50 * vocab * 2 + 3 * 4 * (2 * 50 * vocab),  # the whole batch is one chunk here
        "vLLM": 0.25 * 80 * GIB,
    }
    assert e.parts == pytest.approx(expected)
    static = sum(expected[k] for k in ("parameters", "gradients", "optimizer", "reference", "gathered layers"))
    update = static + expected["activations"] + expected["logits"]
    assert e.peak == pytest.approx(max(static + expected["vLLM"], update))  # vLLM sleeps during the update
    # (6.18e9 training state + 0.24e9 gathered layers + 20 GiB of vLLM) / 2^30 = 25.98 GiB: generation is the peak
    assert e.peak / GIB == pytest.approx(25.98, abs=0.01) and e.fits
    # gradient checkpointing keeps each layer's input, plus one layer's full set while it is recomputed
    gc = estimate(dataclasses.replace(cfg, gradient_checkpointing=True), gpus=4, gpu_memory=80)
    assert gc.parts["activations"] == pytest.approx(tokens * (layers * h * 2 + (8 * h + 2 * kv + 4 * i) * 2))
    # no sleep mode: vLLM's share stays during the update; CPU offload: no training state on the GPU
    awake = estimate(dataclasses.replace(cfg, vllm_enable_sleep_mode=False), gpus=4, gpu_memory=80)
    assert awake.peak == pytest.approx(update + expected["vLLM"])
    off = estimate(dataclasses.replace(cfg, fsdp_cpu_offload=True), gpus=4, gpu_memory=80)
    assert off.parts["optimizer"] == off.parts["parameters"] == 0.0


def test_the_paper_profile_is_planned_per_experiment_and_the_check_names_what_does_not_fit():
    profile = load_profile(REPO / "config" / "paper.yaml")
    estimates = {e.experiment: e for e in plan(profile, 80)}
    trained = [name for name, exp in profile.experiments.items() if exp.train is not None]
    assert sorted(estimates) == sorted(trained)
    grpo = estimates["grpo_gsm8k"]
    assert grpo.gpus == profile.experiments["grpo_gsm8k"].resources["gpus"]
    small = dataclasses.replace(profile, experiments={"grpo_gsm8k": profile.experiments["grpo_gsm8k"]})
    small.experiments["grpo_gsm8k"] = dataclasses.replace(
        small.experiments["grpo_gsm8k"], train=dataclasses.replace(small.experiments["grpo_gsm8k"].train,
                                                                  gradient_checkpointing=False, micro_batch_size=8))
    with pytest.raises(ConfigError, match=r"experiments.grpo_gsm8k: needs ~\d+ GiB per GPU on 8 GPU\(s\) of 80 GiB; "
                                          r"fix: .*gradient_checkpointing"):
        check_profile(small, 80)
    fitted = dataclasses.replace(small.experiments["grpo_gsm8k"].train, gradient_checkpointing=True, micro_batch_size=2)
    small.experiments["grpo_gsm8k"] = dataclasses.replace(small.experiments["grpo_gsm8k"], train=fitted)
    check_profile(small, 80)  # fits: no error


def test_plan_command_prints_a_row_per_trained_experiment():
    out = subprocess.run([sys.executable, "-m", "suite", "plan", "--configfile", "config/paper.yaml",
                          "--gpu-memory", "141"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ") and "experiments" not in line]
    named = [name for line in rows for name in line.split(" | ")[0][2:].split(", ")]
    profile = load_profile(REPO / "config" / "paper.yaml")
    assert sorted(named) == sorted(n for n, exp in profile.experiments.items() if exp.train is not None)
    assert any(line.startswith("| grpo_gsm8k, ") and "| Qwen2.5-Math-7B | 8 |" in line for line in rows)
    assert "141 GiB GPUs" in out.stdout
    # --set overrides a training key everywhere: checkpointing shrinks the activations
    gc = subprocess.run([sys.executable, "-m", "suite", "plan", "--configfile", "config/paper.yaml",
                         "--set", "gradient_checkpointing=true"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "with gradient_checkpointing=true" in gc.stdout and gc.stdout != out.stdout


def test_the_paper_profile_passes_its_own_check_and_a_profile_that_cannot_fit_fails_before_any_job(tmp_path):
    """`resources.gpu_memory` makes validate (and the Snakefile) run the plan: the paper profile fits 80 GiB cards;
    without gradient checkpointing, or with Cooper on 4 ranks, it fails naming the experiment and the fix."""
    import yaml

    from suite.plan import check_planned_profile

    repo = Path(__file__).resolve().parent.parent
    assert check_planned_profile(load_profile(repo / "config" / "paper.yaml"))
    raw = yaml.safe_load((repo / "config" / "paper.yaml").read_text())
    raw["train_defaults"]["gradient_checkpointing"] = False
    raw["experiments"]["cooper"]["resources"]["gpus"] = 4
    bad = tmp_path / "paper.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as err:
        check_planned_profile(load_profile(bad))
    message = str(err.value)
    assert "experiments.grpo_gsm8k: needs ~" in message and "GiB per GPU on 8 GPU(s) of 80 GiB" in message
    assert "experiments.cooper: asks for 4 GPUs" in message and "resources: {gpus: 1}" in message
    result = subprocess.run([sys.executable, "-m", "suite", "validate", str(bad)], capture_output=True, text=True,
                            cwd=repo)
    assert result.returncode == 2 and "memory plan" in result.stderr
    del raw["resources"]["gpu_memory"]  # no card size given: nothing to plan against
    bad.write_text(yaml.safe_dump(raw))
    assert check_planned_profile(load_profile(bad)) is None
