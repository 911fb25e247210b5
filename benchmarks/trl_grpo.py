"""One GRPO setting, built for both trainers: ours (:class:`suite.trainer.Trainer`) and TRL's ``GRPOTrainer``.

The setting is the foundation issue's: SmolLM2-135M-Instruct, 4 prompts x 4 samples, 64 new tokens,
lr 1e-5 (constant), no KL, T = 1, 2-digit addition prompts with the math instruction, math-verify reward,
AdamW (0.9, 0.999), gradient clipping at 1, seed 0. TRL runs with gradient checkpointing off (its default
is on, which is slower on this CPU) and a constant learning rate (its default decays linearly to 0 over
``max_steps``, which would halve the mean step size of a 30-step run).
"""

from __future__ import annotations

from pathlib import Path

from suite.config import TrainConfig
from suite.data import load_records, prepare
from suite.models import SMOLLM2
from suite.prompts import render
from suite.rewards.math import math_reward

PROMPTS, GROUP, NEW_TOKENS, LR, SEED = 4, 4, 64, 1e-5, 0
DATASET, TEMPLATE = "arithmetic_2d", "math"


def prepare_data(root: Path) -> Path:
    prepare(DATASET, "train", root)
    return root


def our_config(data_dir: Path, steps: int, model: str = SMOLLM2, experiment: str = "bench",
               bf16: bool | str = "auto") -> TrainConfig:
    return TrainConfig(experiment=experiment, model=model, data_dir=str(data_dir), train_dataset=DATASET,
                       prompt_template=TEMPLATE, steps=steps, prompts_per_step=PROMPTS, group_size=GROUP,
                       max_new_tokens=NEW_TOKENS, lr=LR, micro_batch_size=PROMPTS * GROUP, kl_coef=0.0,
                       bf16=bf16, seed=SEED, save_every=steps)


def trl_dataset(data_dir: Path):
    from datasets import Dataset

    records = load_records(DATASET, "train", data_dir)
    return Dataset.from_list([{"prompt": [{"role": "user", "content": render(TEMPLATE, r["prompt"])}],
                               "answers": r["answers"]} for r in records])


def trl_reward(completions, answers, **_):
    return [math_reward(c[0]["content"], a) for c, a in zip(completions, answers)]


def trl_trainer(model, tokenizer, dataset, out_dir: Path, precision: str, max_steps: int, callbacks=()):
    import trl

    args = trl.GRPOConfig(
        output_dir=str(out_dir), per_device_train_batch_size=PROMPTS * GROUP, num_generations=GROUP,
        max_completion_length=NEW_TOKENS, learning_rate=LR, lr_scheduler_type="constant", beta=0.0,
        bf16=precision == "bf16", use_cpu=True, gradient_checkpointing=False, max_steps=max_steps,
        logging_steps=1, report_to="none", save_strategy="no", seed=SEED, temperature=1.0, disable_tqdm=True,
    )
    return trl.GRPOTrainer(model=model, reward_funcs=[trl_reward], args=args, train_dataset=dataset,
                           processing_class=tokenizer, callbacks=list(callbacks))
