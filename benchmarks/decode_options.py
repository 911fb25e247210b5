"""Where decoding time goes on the CPU: the leads of issue 22 measured against each other in one run.

SmolLM2-135M-Instruct decodes 128 greedy tokens for 16 chat prompts (64 for the row-count arms: the same 16
prompts four times) through ``model.generate``, with each option changed alone:

- attention: eager (the rollout engine's CPU choice) or SDPA;
- cache: transformers' dynamic cache or its static cache (``cache_implementation="static"``), and the static
  cache with the forward pass compiled by ``torch.compile`` (first call, which compiles, reported apart);
- precision: fp32 or bf16 weights;
- rows per batch: 16 or 64 (decoding reads every weight once per token, whatever the number of rows).

    python -m benchmarks.decode_options [--tokens 128] [--out results/bench/decode.md]

Run with nothing else busy; each arm is timed ``--repeat`` times (default 1) and the fastest time kept.
"""

from __future__ import annotations

import argparse
import time

import torch

from suite.models import SMOLLM2, attention, load_model
from suite.precision import describe_hardware
from suite.rollout import left_pad


def prompts(tokenizer, n: int = 16) -> list[list[int]]:
    questions = [f"A farmer has {i + 3} cows and buys {2 * i + 5} more. Each cow gives {i + 2} liters of milk a day. "
                 "How many liters does he get a day? Let's think step by step." for i in range(n)]
    out = []
    for q in questions:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True)
        out.append(ids if isinstance(ids, list) else ids["input_ids"])
    return out


def decode(model, tokenizer, rows: list[list[int]], batch: int, tokens: int, impl: str, **kwargs) -> float:
    start = time.perf_counter()
    with attention(model, impl), torch.no_grad():
        for s in range(0, len(rows), batch):
            ids, mask = left_pad(rows[s:s + batch], tokenizer.pad_token_id)
            model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=tokens,
                           min_new_tokens=tokens, pad_token_id=tokenizer.pad_token_id, **kwargs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    model, tokenizer = load_model(SMOLLM2)
    model.eval()
    p16 = prompts(tokenizer)
    p64 = p16 * 4
    best = lambda f: min(f() for _ in range(args.repeat))  # noqa: E731
    rows = []

    def arm(name, rows_in, batch, impl, **kw):
        seconds = best(lambda: decode(model, tokenizer, rows_in, batch, args.tokens, impl, **kw))
        rows.append((name, len(rows_in), batch, seconds, seconds / (len(rows_in) * args.tokens) * 1e3))
        print(rows[-1], flush=True)

    decode(model, tokenizer, p16[:2], 2, 4, "eager")  # warm-up
    arm("fp32, eager (engine default on the CPU)", p16, 16, "eager")
    arm("fp32, SDPA", p16, 16, "sdpa")
    arm("fp32, SDPA, static cache", p16, 16, "sdpa", cache_implementation="static")
    arm("fp32, eager, 64 rows per batch", p64, 64, "eager")
    arm("fp32, SDPA, 64 rows per batch", p64, 64, "sdpa")
    model.to(torch.bfloat16)
    arm("bf16, eager", p16, 16, "eager")
    arm("bf16, SDPA", p16, 16, "sdpa")
    arm("bf16, eager, 64 rows per batch", p64, 64, "eager")
    arm("bf16, SDPA, 64 rows per batch", p64, 64, "sdpa")
    model.forward = torch.compile(model.forward, dynamic=False)
    first = decode(model, tokenizer, p16, 16, args.tokens, "sdpa", cache_implementation="static")
    arm("bf16, SDPA, static cache, torch.compile", p16, 16, "sdpa", cache_implementation="static")

    hw = describe_hardware()
    lines = [f"CPU: {hw['cpu']}, torch capability {hw['cpu_capability']}, native bf16: {hw['native_bf16_cpu']}, "
             f"{hw['torch_threads']} threads, torch {hw['torch']}", "",
             f"{args.tokens} greedy tokens per prompt (min_new_tokens = max_new_tokens), best of {args.repeat}.", "",
             "| option | prompts | rows per batch | s | ms per generated token | vs fp32 eager 16 rows |",
             "|---|---|---|---|---|---|"]
    base = rows[0][4]
    for name, n, batch, seconds, per in rows:
        lines.append(f"| {name} | {n} | {batch} | {seconds:.1f} | {per:.2f} | {base / per:.2f}x |")
    lines += ["", f"torch.compile's first call (compiling): {first:.0f} s."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        from suite.io import write_text

        write_text(args.out, "# Decoding options on the CPU\n\nMade by `python -m benchmarks.decode_options "
                   f"--out {args.out}`.\n\n" + text + "\n")


if __name__ == "__main__":
    main()
