"""Does the base model ever solve a candidate RL target task? Correct samples per task, before any training.

    RLREPRO_DATA_MIRROR=../shared/data python scripts/target_signal.py \
        --out results/mini/retaining/target_signal.md

For each Retaining-by-Doing target (IFEval-style prompts, MMLU, and Countdown made easy: 2-3 numbers and
the target in 1..20, dataset ``countdown_easy``), samples ``--samples`` completions for each of the first
``--prompts`` training prompts with the trainer's own engine and chat template (T = 0.8 and the mini RL runs'
plain prompt template), and counts the completions the task's verifier accepts. A task with no correct sample
gives GRPO no signal and Self-SFT no data, which is why mini trains on the first two only (docs/retaining.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from suite.config import TrainConfig
from suite.data import load_records, prepare
from suite.io import write_text
from suite.models import SMOLLM2
from suite.rewards import get_verifier
from suite.trainer import Trainer

TASKS = {  # dataset -> verifier
    "ifeval_like": "ifeval_like",
    "mmlu": "mmlu_choice",
    "countdown_easy": "countdown",
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=24)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--max-new-tokens", type=int, default=192)
    ap.add_argument("--model", default=SMOLLM2)
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="write the Markdown table here (printed in any case)")
    args = ap.parse_args(argv)
    for name in ("prompts", "samples", "max_new_tokens"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1; got {getattr(args, name)}")
    command = " ".join(["python scripts/target_signal.py", *(sys.argv[1:] if argv is None else argv)])
    for dataset in TASKS:
        prepare(dataset, "train", args.data_dir)
    cfg = TrainConfig(experiment="target-signal", model=args.model, data_dir=args.data_dir, train_dataset="ifeval_like",
                      prompt_template="plain", temperature=args.temperature, max_new_tokens=args.max_new_tokens,
                      seed=args.seed)
    out_dir = Path(args.data_dir) / "logs" / "target-signal"
    trainer = Trainer(cfg, out_dir)
    lines = [f"Base model {args.model}: correct samples among the first {args.prompts} training prompts x "
             f"{args.samples} samples (T = {args.temperature}, up to {args.max_new_tokens} new tokens, plain template).",
             "", "| target task | verifier | correct samples | prompts with a correct sample | seconds |",
             "|---|---|---|---|---|"]
    for dataset, verifier_name in TASKS.items():
        verifier = get_verifier(verifier_name)
        records = load_records(dataset, "train", args.data_dir)[:args.prompts]
        trainer._seed(0)
        start = time.perf_counter()
        texts = trainer.decode(trainer.generate([trainer.prompt_ids(r) for r in records], args.samples))
        correct = [verifier(text, rec["answers"]) for text, rec in
                   zip(texts, [r for r in records for _ in range(args.samples)])]
        solved = sum(any(correct[i * args.samples:(i + 1) * args.samples]) for i in range(len(records)))
        lines.append(f"| {dataset} | {verifier_name} | {sum(correct)} / {len(correct)} | {solved} / {len(records)} | "
                     f"{time.perf_counter() - start:.0f} |")
    lines += ["", f"Made by `{command}`.", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_text(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
