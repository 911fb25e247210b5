"""Reward curves of our GRPO trainer and TRL's GRPOTrainer over a full run, same setting and seed.

    python -m benchmarks.reward_curves --steps 30 --out results/bench/curves_vs_trl

runs both trainers one after the other on the setting of :mod:`benchmarks.trl_grpo` and writes
``curves.csv`` (trainer, step, batch reward, response length, step seconds), ``curves.png`` (per-step
reward and a 5-step moving mean) and ``summary.md`` (mean batch reward over the first and last
``window`` steps, with a standard error over those steps, and each trainer's seconds per step).

Both trainers start from the same weights with seed 0, but each draws its own prompt order and samples,
so the curves are two draws of one experiment, not one trajectory twice: compare the level they reach
against the step-to-step noise, which the summary reports. Run it with nothing else busy on the CPU only
if the seconds per step matter to you (the rewards do not depend on load).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from suite.io import write_text
from suite.models import SMOLLM2, load_model

from .trl_grpo import our_config, prepare_data, trl_dataset, trl_trainer


def run_ours(data_dir: Path, steps: int, work: Path, model: str) -> pd.DataFrame:
    from suite.trainer import Trainer

    out = work / "ours"
    Trainer(our_config(data_dir, steps, model=model, experiment="curves-ours"), out).run()
    rows = pd.read_json(out / "metrics.jsonl", lines=True)
    return pd.DataFrame({"trainer": "rlrepro", "step": rows.step, "reward": rows.reward,
                         "response_length": rows.response_length, "step_time": rows.step_time})


def run_trl(data_dir: Path, steps: int, work: Path, model: str, precision: str) -> pd.DataFrame:
    from transformers import TrainerCallback

    logged: list[dict] = []

    class Log(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "reward" in logs:
                logged.append({"step": state.global_step, "reward": logs["reward"],
                               "response_length": logs.get("completions/mean_length", math.nan),
                               "step_time": logs.get("step_time", time.perf_counter() - self.t0)})

    policy, tokenizer = load_model(model)
    trainer = trl_trainer(policy, tokenizer, trl_dataset(data_dir), work / "trl", precision, steps, callbacks=[Log()])
    trainer.train()
    return pd.DataFrame(logged).assign(trainer=f"TRL GRPOTrainer ({precision})")


def summarise(curves: pd.DataFrame, window: int) -> pd.DataFrame:
    """Per trainer: mean batch reward over the first and the last ``window`` steps (± SE over steps), s/step."""
    rows = []
    for name, c in curves.groupby("trainer", sort=False):
        c = c.sort_values("step")
        first, last = c.reward.head(window), c.reward.tail(window)
        rows.append({"trainer": name, "steps": len(c),
                     "first": first.mean(), "first_se": first.std(ddof=1) / math.sqrt(len(first)),
                     "last": last.mean(), "last_se": last.std(ddof=1) / math.sqrt(len(last)),
                     "s_per_step": c.step_time.mean()})
    return pd.DataFrame(rows)


def markdown(summary: pd.DataFrame, window: int, command: str) -> str:
    lines = [f"Mean batch reward (%) over the first and last {window} steps, ± SE over those steps; seconds per "
             "step (generation + update, mean over the run).", "",
             f"| trainer | steps | first {window} | last {window} | s/step |", "|---|---|---|---|---|"]
    for r in summary.itertuples():
        lines.append(f"| {r.trainer} | {r.steps} | {100 * r.first:.1f} ± {100 * r.first_se:.1f} | "
                     f"{100 * r.last:.1f} ± {100 * r.last_se:.1f} | {r.s_per_step:.1f} |")
    lines += ["", f"Made by `{command}`.", ""]
    return "\n".join(lines)


def plot(curves: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    from suite.report import save_figure  # sets the Agg backend

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, c in curves.groupby("trainer", sort=False):
        c = c.sort_values("step")
        line, = ax.plot(c.step, 100 * c.reward, alpha=0.35, lw=1)
        ax.plot(c.step, 100 * c.reward.rolling(5, min_periods=1).mean(), color=line.get_color(), lw=2, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("batch reward (%)")
    ax.set_title("GRPO reward per step (thin) and 5-step mean (thick)")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--window", type=int, default=10, help="steps averaged at the start and at the end")
    ap.add_argument("--trl-precision", choices=["fp32", "bf16"], default="bf16",
                    help="TRL's precision (bf16 is its faster one here; tests/bench)")
    ap.add_argument("--model", default=SMOLLM2)
    ap.add_argument("--out", type=Path, default=Path("results/bench/curves_vs_trl"))
    args = ap.parse_args(argv)
    if not 2 <= args.window <= args.steps:
        ap.error(f"--window must be in [2, --steps] (a standard error needs two steps); got {args.window}")
    command = " ".join(["python -m benchmarks.reward_curves", *(sys.argv[1:] if argv is None else argv)])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data_dir = prepare_data(work / "data")
        curves = pd.concat([run_ours(data_dir, args.steps, work, args.model),
                            run_trl(data_dir, args.steps, work, args.model, args.trl_precision)], ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "curves.csv", curves.to_csv(index=False))
    summary = summarise(curves, args.window)
    write_text(args.out / "summary.md", markdown(summary, args.window, command))
    plot(curves, args.out / "curves.png")
    print(markdown(summary, args.window, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
