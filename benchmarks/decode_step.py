"""One decoding step of SmolLM2-135M-Instruct on the CPU, and one sampling draw: the figures behind the engine's
cache, attention and top-k choices (suite/kv_cache.py, suite/models.py: cpu_attention, suite/rollout.py:
draw_from_top_k).

- a decoding step of 64 rows at 300 cached positions (fp32): transformers' dynamic cache with SDPA, and
  suite/kv_cache.py's preallocated cache with SDPA and with eager attention; ms per step (mean of 6 after 2
  warm-up steps) and the share of the step spent in ``aten::cat`` (torch.profiler, 3 steps);
- one draw for 80 rows over the 49,152-token vocabulary at T = 0.6 and top-k 50: transformers' warpers and the
  inverse-CDF sampler (``sampling_processors``) against ``draw_from_top_k``; ms per draw (mean of 20).

    python -m benchmarks.decode_step [--out results/bench/decode_step.md]

Run with nothing else busy.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import profile
from transformers import DynamicCache

from suite.kv_cache import preallocated_cache
from suite.models import SMOLLM2, attention, load_model
from suite.precision import describe_hardware
from suite.rollout import SamplingParams, draw_from_top_k, sampling_processors

ROWS, CACHED = 64, 300


@torch.no_grad()
def step(model, cache_kind: str, impl: str) -> tuple[float, float]:
    cache = DynamicCache() if cache_kind == "dynamic" else preallocated_cache()
    with attention(model, impl):
        model(input_ids=torch.randint(0, 1000, (ROWS, CACHED)), past_key_values=cache, use_cache=True)
        token = torch.randint(0, 1000, (ROWS, 1))

        def one():
            model(input_ids=token, past_key_values=cache, use_cache=True)
            cache.crop(-1)  # back to CACHED positions: every step sees the same cache

        for _ in range(2):
            one()
        start = time.perf_counter()
        for _ in range(6):
            one()
        ms = (time.perf_counter() - start) / 6 * 1e3
        with profile() as prof:
            for _ in range(3):
                one()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    cat = sum(e.self_cpu_time_total for e in events if e.key == "aten::cat")
    return ms, cat / total


def draw_ms(fn, repeat: int = 20) -> float:
    for _ in range(3):
        fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    model, _ = load_model(SMOLLM2)
    model.eval()
    hw = describe_hardware()
    lines = [f"CPU: {hw['cpu']}, torch capability {hw['cpu_capability']}, native bf16: {hw['native_bf16_cpu']}, "
             f"{hw['torch_threads']} threads, torch {hw['torch']}", "",
             f"One decoding step, fp32, {ROWS} rows at {CACHED} cached positions:", "",
             "| cache | attention | ms per step | share in aten::cat |", "|---|---|---|---|"]
    for cache_kind, impl in (("dynamic", "sdpa"), ("preallocated", "sdpa"), ("preallocated", "eager")):
        ms, cat = step(model, cache_kind, impl)
        lines.append(f"| {cache_kind} | {impl} | {ms:.0f} | {100 * cat:.0f}% |")
        print(lines[-1], flush=True)
    scores = torch.randn(80, model.config.vocab_size)
    params = SamplingParams(max_new_tokens=1, temperature=0.6, top_k=50)
    processors = sampling_processors(params)
    warpers = draw_ms(lambda: processors(None, scores).argmax(-1))
    top_k = draw_ms(lambda: draw_from_top_k(scores, params.top_k, params.temperature))
    lines += ["", f"One draw, 80 rows x {model.config.vocab_size} tokens, T = 0.6, top-k 50:", "",
              "| draw | ms |", "|---|---|", f"| warpers + inverse-CDF sampler | {warpers:.1f} |",
              f"| draw_from_top_k | {top_k:.1f} |"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        from suite.io import write_text

        write_text(args.out, f"# A decoding step and a draw on the CPU\n\nMade by `python -m benchmarks.decode_step "
                   f"--out {args.out}`.\n\n{text}\n")


if __name__ == "__main__":
    main()
