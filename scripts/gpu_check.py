"""The GPU check of issue 17 (scripts/gpu_check.sh runs it): FSDP2 + gradient checkpointing + bf16 on one GPU.

For a randomly initialised model of SmolLM2-135M's shape and of Llama-3.2-1B's (no hub: built from a config, with
tiny-llama's tokenizer), it trains a few GRPO steps with HF generation on the device and reports the step time and
the peak memory against ``python -m suite plan``'s estimate for the same settings. Then it trains tiny-llama at
fp32 on the device (FSDP2 over one rank) and on the CPU (the plain path) and checks the losses agree.

    python scripts/gpu_check.py                  # on a GPU
    python scripts/gpu_check.py --device cpu --tiny   # the CPU parts only (tests/test_distributed.py)

Prints one JSON line per measurement and a final verdict; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SHAPES = {"smollm2-135m-shape": "HuggingFaceTB/SmolLM2-135M-Instruct", "llama-1b-shape": "meta-llama/Llama-3.2-1B-Instruct"}


def random_model(root: Path, name: str, known: str) -> str:
    """A checkpoint directory: a Llama of ``known``'s shape with random weights and tiny-llama's tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from suite.models import load_model
    from suite.plan import KNOWN

    s = KNOWN[known]
    _, tokenizer = load_model("tiny-llama")
    config = LlamaConfig(vocab_size=s.vocab, hidden_size=s.hidden, intermediate_size=s.intermediate,
                         num_hidden_layers=s.layers, num_attention_heads=s.heads, num_key_value_heads=s.kv_heads,
                         tie_word_embeddings=s.tied, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    out = root / name
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def train(cfg, out: Path) -> list[dict]:
    from suite import distributed
    from suite.trainer import Trainer

    trainer = Trainer(cfg, out)
    trainer.reward_fn = lambda text, answers: float(len(text) % 2)  # rewards that differ within a group
    trainer.run()
    del trainer
    distributed.teardown()
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--tiny", action="store_true", help="only the tiny-llama loss check")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    import torch

    from suite.config import TrainConfig
    from suite.data import prepare
    from suite.plan import GIB, estimate

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu --tiny for the CPU parts", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="gpu_check."))
    prepare("arithmetic_2d", "train", root / "data")
    base = dict(experiment="gpu_check", data_dir=str(root / "data"), train_dataset="arithmetic_2d", steps=args.steps,
                prompts_per_step=4, group_size=4, max_new_tokens=64, max_prompt_tokens=64, lr=1e-5, engine="hf",
                micro_batch_size=8, save_every=1000, seed=0)
    ok = True
    if not args.tiny:
        total = torch.cuda.get_device_properties(0).total_memory / GIB
        for name, known in SHAPES.items():
            cfg = TrainConfig(**base, model=random_model(root, name, known), fsdp=True, gradient_checkpointing=True,
                              bf16=True)
            torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            rows = train(cfg, root / f"run-{name}")
            peak = torch.cuda.max_memory_allocated() / GIB
            planned = estimate(cfg, gpus=1, gpu_memory=total).peak / GIB
            record = {"check": name, "steps": len(rows), "wall_s": round(time.perf_counter() - start, 1),
                      "step_time_s": [round(r["step_time"], 3) for r in rows], "peak_gib": round(peak, 2),
                      "plan_gib": round(planned, 2), "loss": [r["loss"] for r in rows]}
            print(json.dumps(record), flush=True)
            ok &= all(r["loss"] == r["loss"] for r in rows)  # finite; the peak against the plan is reported, not judged
    # tiny-llama at fp32: FSDP2 over one rank on the device == the plain CPU path
    tiny = dict(base, model="tiny-llama", bf16=False, max_new_tokens=12, kl_coef=0.05, lr=1e-3, generation_seed="group")
    on_device = train(TrainConfig(**tiny, fsdp=True), root / "tiny-device") if args.device == "cuda" else None
    if on_device is None:  # CPU: FSDP2 over a group of one against the plain path
        on_device = train(TrainConfig(**tiny, fsdp=True), root / "tiny-fsdp")
    plain = train(TrainConfig(**tiny), root / "tiny-plain") if args.device == "cpu" else None
    if plain is None:
        plain = _cpu_losses(tiny, root)
    a, b = [r["loss"] for r in on_device], [r["loss"] for r in plain]
    same = all(abs(x - y) <= 1e-4 + 1e-3 * abs(y) for x, y in zip(a, b)) and len(a) == len(b)
    print(json.dumps({"check": "tiny-llama fp32 loss, FSDP2 on " + args.device + " vs plain CPU", "fsdp": a,
                      "cpu": b, "same": same}), flush=True)
    ok &= same
    print("gpu_check: " + ("PASS" if ok else "FAIL"), flush=True)
    return 0 if ok else 1


def _cpu_losses(tiny: dict, root: Path) -> list[dict]:
    """The plain CPU path's losses, in a child process (this one has CUDA)."""
    import subprocess

    out = root / "tiny-cpu"
    code = ("import json,sys; sys.path.insert(0, %r); from scripts.gpu_check import train; from suite.config import "
            "TrainConfig; train(TrainConfig(**json.loads(%r)), __import__('pathlib').Path(%r))"
            % (str(Path(__file__).resolve().parent.parent), json.dumps(tiny), str(out)))
    subprocess.run([sys.executable, "-c", code], check=True, env={**__import__("os").environ, "CUDA_VISIBLE_DEVICES": ""})
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


if __name__ == "__main__":
    sys.exit(main())
