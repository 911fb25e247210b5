"""Trainer speed: seconds per GRPO step, ours against TRL's GRPOTrainer, same model and settings.

Setting (the foundation issue's): SmolLM2-135M-Instruct, 4 prompts x 4 samples, 64 new tokens,
lr 1e-5, no KL, 2-digit addition prompts with the math instruction, math-verify reward.
TRL runs at its fastest here: fp32 and bf16 both measured, gradient checkpointing off.
A bf16 matmul measures this machine's peak, to put each trainer's throughput against it
(train FLOPs ~ 6 x parameters x tokens; generation FLOPs ~ 2 x parameters x generated tokens).

    pytest tests/bench/test_trainer_speed.py -m bench --benchmark-json results/bench/trainer.json
    python scripts/bench_report.py results/bench/trainer.json

Run with nothing else busy: one other process on 2 cores makes timings 2-6x worse.
"""

from __future__ import annotations

import itertools
import time

import pytest
import torch

from benchmarks.trl_grpo import GROUP, PROMPTS, our_config, prepare_data, trl_dataset, trl_trainer
from suite.models import SMOLLM2, load_model
from suite.precision import describe_hardware

pytestmark = pytest.mark.bench


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return prepare_data(tmp_path_factory.mktemp("bench-data"))


def _n_params() -> int:
    model, _ = load_model(SMOLLM2)
    return sum(p.numel() for p in model.parameters())


def test_bf16_matmul_peak(benchmark):
    n = 2048
    a, b = torch.randn(n, n, dtype=torch.bfloat16), torch.randn(n, n, dtype=torch.bfloat16)
    benchmark.pedantic(torch.matmul, args=(a, b), rounds=10, warmup_rounds=2, iterations=1)
    benchmark.extra_info["flops"] = 2 * n**3


@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_ours(benchmark, data_dir, tmp_path, precision):
    """Ours at its default (``bf16: auto``: bf16 where the CPU has bf16 instructions) and at fp32 (what ``auto``
    picks on an AVX2-only CPU, to compare with TRL's fp32 step)."""
    from suite.trainer import Trainer

    cfg = our_config(data_dir, steps=1000, bf16="auto" if precision == "auto" else False)
    trainer = Trainer(cfg, tmp_path / "ours")
    steps, tokens = itertools.count(), []

    def one_step():
        step = next(steps)
        trainer._seed(step)
        rollouts = trainer.method.collect(step)
        trainer.update(rollouts)
        tokens.append((sum(map(len, rollouts.prompt_ids)) + sum(map(len, rollouts.completion_ids)),
                       sum(map(len, rollouts.completion_ids)), sum(rollouts.rewards) / len(rollouts)))

    benchmark.pedantic(one_step, rounds=4, warmup_rounds=1, iterations=1)
    _record(benchmark, tokens[1:])
    benchmark.extra_info["bf16"] = trainer.bf16


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_trl(benchmark, data_dir, tmp_path, precision):
    pytest.importorskip("trl")
    from transformers import TrainerCallback

    dataset = trl_dataset(data_dir)

    class Tokens(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "completions/mean_length" in logs:
                seen.append(logs)

    seen: list[dict] = []
    rounds = itertools.count()

    def setup():
        model, tokenizer = load_model(SMOLLM2)
        trainer = trl_trainer(model, tokenizer, dataset, tmp_path / f"trl-{next(rounds)}", precision, max_steps=1,
                              callbacks=[Tokens()])
        return (trainer,), {}

    benchmark.pedantic(lambda trainer: trainer.train(), setup=setup, rounds=4, warmup_rounds=1, iterations=1)
    logs = seen[1:]
    _, tokenizer = load_model(SMOLLM2)
    texts = [tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
             for row in dataset.select(range(100))]
    prompt_len = sum(len(ids) for ids in tokenizer(texts)["input_ids"]) / len(texts)
    completion = sum(log["completions/mean_length"] for log in logs) / len(logs) * PROMPTS * GROUP
    _record(benchmark, [(prompt_len * PROMPTS * GROUP + completion, completion,
                         sum(log["reward"] for log in logs) / len(logs))])


def _record(benchmark, rows):
    benchmark.extra_info["tokens_per_step"] = sum(r[0] for r in rows) / len(rows)
    benchmark.extra_info["completion_tokens_per_step"] = sum(r[1] for r in rows) / len(rows)
    benchmark.extra_info["reward"] = sum(r[2] for r in rows) / len(rows)
    benchmark.extra_info["n_params"] = _n_params()
    benchmark.extra_info["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
    benchmark.extra_info["hardware"] = describe_hardware()
