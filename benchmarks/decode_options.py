"""Where decoding time goes on the CPU: the leads of issue 22 measured against each other in one run.

SmolLM2-135M-Instruct decodes ``--tokens`` greedy tokens (default 256, the evaluation benchmark's length) for 16
chat prompts (64 for the row-count arms: the same 16 prompts four times) through ``model.generate``, with each
option changed alone:

- attention: eager or SDPA (lm-eval's ``hf`` decodes with SDPA and transformers' dynamic cache);
- cache: transformers' dynamic cache (``torch.cat`` of the whole cache at every token), its static cache
  (``cache_implementation="static"``: attention over every preallocated position), or suite/kv_cache.py's
  preallocated cache (what the rollout engine uses on the CPU);
- precision: fp32 or bf16 weights;
- rows per batch: 16 or 64 (decoding reads every weight once per token, whatever the number of rows).

Every arm's tokens are compared with those of the first arm with as many prompts (fp32 SDPA, dynamic cache).

    python -m benchmarks.decode_options [--tokens 256] [--out results/bench/decode.md]

Run with nothing else busy; each arm is timed ``--repeat`` times (default 1) and the fastest time kept.
"""

from __future__ import annotations

import argparse
import time

import torch

from suite.kv_cache import preallocated_cache
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


def decode(model, tokenizer, rows: list[list[int]], batch: int, tokens: int, impl: str, cache: str = "dynamic",
           **kwargs) -> tuple[float, list[list[int]]]:
    out = []
    start = time.perf_counter()
    with attention(model, impl), torch.no_grad():
        for s in range(0, len(rows), batch):
            ids, mask = left_pad(rows[s:s + batch], tokenizer.pad_token_id)
            extra = dict(kwargs)
            if cache == "preallocated":
                extra["past_key_values"] = preallocated_cache()
            elif cache == "static":
                extra["cache_implementation"] = "static"
            gen = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=tokens,
                                 min_new_tokens=tokens, pad_token_id=tokenizer.pad_token_id, **extra)
            out.extend(gen[:, ids.shape[1]:].tolist())
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    model, tokenizer = load_model(SMOLLM2)
    model.eval()
    p16 = prompts(tokenizer)
    p64 = p16 * 4
    rows, reference = [], {}

    def arm(name, rows_in, batch, impl, cache="dynamic"):
        runs = [decode(model, tokenizer, rows_in, batch, args.tokens, impl, cache) for _ in range(args.repeat)]
        seconds, tokens = min(runs, key=lambda r: r[0])
        reference.setdefault(len(rows_in), tokens)
        differ = sum(a != b for a, b in zip(tokens, reference[len(rows_in)]))
        rows.append((name, len(rows_in), batch, seconds, seconds / (len(rows_in) * args.tokens) * 1e3, differ))
        print(rows[-1], flush=True)

    decode(model, tokenizer, p16[:2], 2, 4, "sdpa")  # warm-up
    arm("fp32, SDPA, dynamic cache (lm-eval's hf)", p16, 16, "sdpa")
    arm("fp32, eager, dynamic cache (the engine before)", p16, 16, "eager")
    arm("fp32, SDPA, static cache", p16, 16, "sdpa", "static")
    arm("fp32, eager, preallocated cache", p16, 16, "eager", "preallocated")
    arm("fp32, SDPA, preallocated cache (the engine now)", p16, 16, "sdpa", "preallocated")
    arm("fp32, SDPA, dynamic cache, 64 rows", p64, 64, "sdpa")
    arm("fp32, SDPA, preallocated cache, 64 rows", p64, 64, "sdpa", "preallocated")
    model.to(torch.bfloat16)
    arm("bf16, eager, dynamic cache", p16, 16, "eager")
    arm("bf16, SDPA, preallocated cache", p16, 16, "sdpa", "preallocated")
    arm("bf16, SDPA, preallocated cache, 64 rows", p64, 64, "sdpa", "preallocated")

    hw = describe_hardware()
    lines = [f"CPU: {hw['cpu']}, torch capability {hw['cpu_capability']}, native bf16: {hw['native_bf16_cpu']}, "
             f"{hw['torch_threads']} threads, torch {hw['torch']}", "",
             f"{args.tokens} greedy tokens per prompt (min_new_tokens = max_new_tokens), best of {args.repeat}; "
             "ms per generated token = seconds / (prompts x tokens).", "",
             "| option | prompts | rows per batch | s | ms per generated token | vs the first arm | rows whose tokens "
             "differ from the first fp32 arm's (same prompts) |",
             "|---|---|---|---|---|---|---|"]
    base = rows[0][4]
    for name, n, batch, seconds, per, differ in rows:
        lines.append(f"| {name} | {n} | {batch} | {seconds:.1f} | {per:.2f} | {base / per:.2f}x | {differ} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        from suite.io import write_text

        write_text(args.out, "# Decoding options on the CPU\n\nMade by `python -m benchmarks.decode_options "
                   f"--out {args.out}`.\n\n" + text + "\n")


if __name__ == "__main__":
    main()
