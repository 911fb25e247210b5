"""Summarise a pytest-benchmark JSON of tests/bench as a Markdown table.

    python scripts/bench_report.py results/bench/trainer.json > results/bench/trainer.md  # test_trainer_speed.py
    python scripts/bench_report.py results/bench/kernels.json > results/bench/kernels.md  # test_kernels.py
    python scripts/bench_report.py results/bench/eval.json > results/bench/eval.md        # test_eval_speed.py
"""

import json
from pathlib import Path
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


def hardware_line(runs: dict) -> str:
    """The CPU the figures hold for (every speed figure names its CPU)."""
    for b in runs.values():
        hw = b.get("extra_info", {}).get("hardware")
        if hw:
            bf16 = "native bf16 (AVX-512 BF16 / AMX)" if hw["native_bf16_cpu"] else "no native bf16 (AVX2-class)"
            return (f"CPU: {hw['cpu']}, torch capability {hw['cpu_capability']}, {bf16}, {hw['torch_threads']} "
                    f"torch threads, torch {hw['torch']}")
    return "CPU: not recorded"


def _responses(path: Path) -> list | None:
    return [json.loads(line)["responses"] for line in open(path)] if path.is_file() else None


def evaluation(runs: dict, samples_dir: Path) -> None:
    print(hardware_line(runs) + "\n")
    print("| task | problems x samples | arm | precision | s | s/problem | speed-up over hf | accuracy | "
          "greedy responses equal to hf's |")
    print("|---|---|---|---|---|---|---|---|---|")
    tasks = sorted({b["extra_info"]["task"] for b in runs.values() if "task" in b.get("extra_info", {})})
    for task in tasks:
        hf = runs.get(f"test_evaluate[{task}-hf]")
        if not hf:
            continue
        hf_responses = _responses(samples_dir / f"{task}-hf.json.samples.jsonl")
        for arm in ("rlrepro", "rlrepro-16", "rlrepro-fp32", "rlrepro-bf16", "hf"):
            run = runs.get(f"test_evaluate[{task}-{arm}]")
            if not run:
                continue
            info, seconds = run["extra_info"], run["stats"]["mean"]
            n, k = info["problems"], info["samples"] // info["problems"]
            same = "—"
            responses = _responses(samples_dir / f"{task}-{arm}.json.samples.jsonl")
            if task == "gsm8k" and arm != "hf" and responses and hf_responses:
                same = f"{sum(a == b for a, b in zip(responses, hf_responses))} / {len(responses)}"
            print(f"| {task} | {n} x {k} | {arm} | {info.get('precision', 'fp32')} | {seconds:.0f} | {seconds / n:.2f} | "
                  f"{hf['stats']['mean'] / seconds:.2f}x | {info['score']:.3f} | {same} |")
    print("\nspeed-up = hf's seconds / the arm's, whole `evaluate` call (model load included), same run; "
          "greedy agreement compares GSM8K responses problem by problem.")


def main(path: str) -> None:
    runs = {b["name"]: b for b in json.load(open(path))["benchmarks"]}
    if any(name.startswith("test_evaluate[") for name in runs):
        return evaluation(runs, Path(path).parent / "eval")
    if "test_bf16_matmul_peak" not in runs:
        return kernels(runs)
    peak = runs["test_bf16_matmul_peak"]
    peak_flops = peak["extra_info"]["flops"] / peak["stats"]["min"]
    rows = []
    auto = runs.get("test_ours[auto]", {}).get("extra_info", {}).get("bf16")
    for name, label in [("test_ours[auto]", f"rlrepro, bf16: auto ({'bf16' if auto else 'fp32'} here)"),
                        ("test_ours[fp32]", "rlrepro, fp32"), ("test_ours", "rlrepro (bf16 autocast)"),
                        ("test_trl[fp32]", "TRL GRPOTrainer fp32"), ("test_trl[bf16]", "TRL GRPOTrainer bf16")]:
        if name not in runs:
            continue
        b = runs[name]
        info, sec = b["extra_info"], b["stats"]["mean"]
        n = info["n_params"]
        flops = 6 * n * info["tokens_per_step"] + 2 * n * info["completion_tokens_per_step"]
        rows.append((label, sec, b["stats"]["stddev"], info["tokens_per_step"] / sec, flops / sec / peak_flops,
                     info["reward"]))
    ours = rows[0][1]
    trl = {label: sec for label, sec, *_ in rows if label.startswith("TRL")}
    trl_best = min(trl.values())
    print(hardware_line(runs) + "\n")
    print(f"bf16 matmul peak (2048^3): {peak_flops / 1e9:.0f} GFLOP/s\n")
    print("| trainer | s/step (mean ± sd) | tokens/s | share of bf16 peak | batch reward |")
    print("|---|---|---|---|---|")
    for label, sec, sd, tps, util, reward in rows:
        print(f"| {label} | {sec:.1f} ± {sd:.1f} | {tps:.0f} | {100 * util:.1f}% | {reward:.3f} |")
    print(f"\nSpeed-up over TRL at its faster precision: {trl_best / ours:.2f}x fewer seconds per step.")
    fp32 = {label: sec for label, sec, *_ in rows if label == "rlrepro, fp32"}
    if fp32 and "TRL GRPOTrainer fp32" in trl:
        print(f"Both in fp32 (what bf16: auto picks on a CPU without bf16 instructions): "
              f"{trl['TRL GRPOTrainer fp32'] / fp32['rlrepro, fp32']:.2f}x.")
    print("\nShare of peak counts the FLOPs of one full pass per row (6 x parameters x tokens to train, 2 x parameters "
          "per generated token): rlrepro computes a group's shared prompt once, so its share is an effective one.")


if __name__ == "__main__":
    main(sys.argv[1])
