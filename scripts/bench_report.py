"""Summarise a pytest-benchmark JSON of tests/bench as a Markdown table.

    python scripts/bench_report.py results/bench/trainer.json > results/bench/trainer.md  # test_trainer_speed.py
    python scripts/bench_report.py results/bench/kernels.json > results/bench/kernels.md  # test_kernels.py
"""

import json
import sys


def kernels(runs: dict) -> None:
    def mean(name: str) -> float:
        return runs[name]["stats"]["mean"]

    print("| choice | alternative | ours | alternative's time | ours' time | ratio |")
    print("|---|---|---|---|---|---|")
    rows = [("next-token draw, 16 x 49152", "torch.multinomial", "inverse CDF",
             "test_sampling[multinomial]", "test_sampling[inverse_cdf]", 1e3, "ms")]
    for tokens in (128, 512, 1024):
        rows.append((f"training attention, rows of {tokens} tokens", "SDPA", "eager",
                     f"test_training_attention[{tokens}-sdpa]", f"test_training_attention[{tokens}-eager]", 1, "s"))
    rows.append(("generation attention, 4 prompts x 4 samples x 64 tokens", "SDPA", "eager",
                 "test_decoding_attention[sdpa]", "test_decoding_attention[eager]", 1, "s"))
    for choice, alt, ours, alt_name, our_name, scale, unit in rows:
        if alt_name in runs and our_name in runs:
            a, o = mean(alt_name), mean(our_name)
            print(f"| {choice} | {alt} | {ours} | {scale * a:.2f} {unit} | {scale * o:.2f} {unit} | {a / o:.2f}x |")
    print("\nratio = the alternative's mean time / ours (above 1: ours is faster).")


def main(path: str) -> None:
    runs = {b["name"]: b for b in json.load(open(path))["benchmarks"]}
    if "test_bf16_matmul_peak" not in runs:
        return kernels(runs)
    peak = runs["test_bf16_matmul_peak"]
    peak_flops = peak["extra_info"]["flops"] / peak["stats"]["min"]
    rows = []
    for name, label in [("test_ours", "rlrepro (bf16 autocast)"), ("test_trl[fp32]", "TRL GRPOTrainer fp32"),
                        ("test_trl[bf16]", "TRL GRPOTrainer bf16")]:
        if name not in runs:
            continue
        b = runs[name]
        info, sec = b["extra_info"], b["stats"]["mean"]
        n = info["n_params"]
        flops = 6 * n * info["tokens_per_step"] + 2 * n * info["completion_tokens_per_step"]
        rows.append((label, sec, b["stats"]["stddev"], info["tokens_per_step"] / sec, flops / sec / peak_flops,
                     info["reward"]))
    ours = rows[0][1]
    trl_best = min(r[1] for r in rows[1:])
    print(f"bf16 matmul peak (2048^3): {peak_flops / 1e9:.0f} GFLOP/s\n")
    print("| trainer | s/step (mean ± sd) | tokens/s | share of bf16 peak | batch reward |")
    print("|---|---|---|---|---|")
    for label, sec, sd, tps, util, reward in rows:
        print(f"| {label} | {sec:.1f} ± {sd:.1f} | {tps:.0f} | {100 * util:.1f}% | {reward:.3f} |")
    print(f"\nSpeed-up over TRL at its faster precision: {trl_best / ours:.2f}x fewer seconds per step.")
    print("\nShare of peak counts the FLOPs of one full pass per row (6 x parameters x tokens to train, 2 x parameters "
          "per generated token): rlrepro computes a group's shared prompt once, so its share is an effective one.")


if __name__ == "__main__":
    main(sys.argv[1])
