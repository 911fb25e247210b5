"""Where a training step's time goes, on the trainer benchmark's setting (benchmarks/trl_grpo.py).

    python -m benchmarks.profile_step [--steps 4] [--bf16 auto|true|false] [--ops]

Times, per step after one warm-up step: generation (split into the shared prompt prefill and the decoding loop),
rewards, the update's forward passes, backward passes, the optimizer step and the sampler's weight refresh; with
``--ops`` the heaviest torch operators of one step (torch.profiler). Run with nothing else busy.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.trl_grpo import our_config, prepare_data
from suite.precision import describe_hardware


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--bf16", default="auto", choices=["auto", "true", "false"])
    ap.add_argument("--ops", action="store_true", help="also list the heaviest torch operators of one step")
    args = ap.parse_args(argv)
    from suite.trainer import Trainer

    bf16 = {"auto": "auto", "true": True, "false": False}[args.bf16]
    tmp = Path(tempfile.mkdtemp(prefix="profile-step-"))
    trainer = Trainer(our_config(prepare_data(tmp / "data"), steps=1000, bf16=bf16), tmp / "run")
    totals: dict[str, float] = collections.defaultdict(float)

    def timed(name, fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                totals[name] += time.perf_counter() - t0
        return wrapper

    engine = trainer.engine
    engine._shared_prompt_cache = timed("generation: shared prompt prefill", engine._shared_prompt_cache)
    engine.generate = timed("generation (all)", engine.generate)
    engine.sync_weights = timed("sampler weight refresh", engine.sync_weights)
    trainer.reward_fn = timed("rewards", trainer.reward_fn)
    trainer.completion_logprobs = timed("update: forward + log-probs", trainer.completion_logprobs)
    trainer.optimizer.step = timed("update: AdamW step", trainer.optimizer.step)
    real_backward = torch.Tensor.backward
    torch.Tensor.backward = timed("update: backward", real_backward)
    rows = []
    try:
        for step in range(args.steps + 1):
            totals.clear()
            trainer._seed(step)
            t0 = time.perf_counter()
            rollouts = trainer.method.collect(step)
            t1 = time.perf_counter()
            trainer.update(rollouts)
            t2 = time.perf_counter()
            if step:  # step 0 warms up
                rows.append({**totals, "collect": t1 - t0, "update (all)": t2 - t1, "step": t2 - t0,
                             "tokens": sum(map(len, rollouts.completion_ids))})
        if args.ops:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as prof:
                trainer._seed(args.steps + 1)
                trainer.update(trainer.method.collect(args.steps + 1))
    finally:
        torch.Tensor.backward = real_backward
    hw = describe_hardware()
    print(f"CPU: {hw['cpu']}, torch capability {hw['cpu_capability']}, native bf16: {hw['native_bf16_cpu']}, "
          f"{hw['torch_threads']} threads; precision: {'bf16' if trainer.bf16 else 'fp32'}; "
          f"mean of {len(rows)} steps\n")
    mean = {k: sum(r.get(k, 0.0) for r in rows) / len(rows) for k in rows[0]}
    decode = mean["generation (all)"] - mean.get("generation: shared prompt prefill", 0.0)
    order = [("generation (all)", mean["generation (all)"]),
             ("  shared prompt prefill", mean.get("generation: shared prompt prefill", 0.0)),
             ("  decoding loop (up to 64 token steps, 16 rows)", decode),
             ("rewards", mean.get("rewards", 0.0)),
             ("update (all)", mean["update (all)"]),
             ("  forward + log-probs", mean.get("update: forward + log-probs", 0.0)),
             ("  backward", mean.get("update: backward", 0.0)),
             ("  AdamW step", mean.get("update: AdamW step", 0.0)),
             ("  sampler weight refresh", mean.get("sampler weight refresh", 0.0)),
             ("step", mean["step"])]
    print("| part | s/step | share |\n|---|---|---|")
    for name, sec in order:
        print(f"| {name} | {sec:.2f} | {100 * sec / mean['step']:.0f}% |")
    print(f"\ngenerated tokens per step: {mean['tokens']:.0f}")
    if args.ops:
        print("\n```\n" + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15) + "\n```")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
