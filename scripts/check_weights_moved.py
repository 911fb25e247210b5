"""Check that every trained method of a profile changed its model's weights (CI runs this after the smoke DAG).

    python scripts/check_weights_moved.py --config config/smoke.yaml --runs runs/smoke

For each trained experiment, compares ``<runs>/<experiment>/final`` with the model it started from and
prints the largest absolute change per run; exits 1 naming the methods none of whose runs moved its weights
(every advantage or gradient was 0: the runs proved only that the code runs), and lists, without failing, a
run that did not move while other runs of its method did (an ablation without signal at this scale).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


def max_change(final: Path, initial: str) -> float:
    from safetensors.torch import load_file

    from suite.models import resolve_model

    after = load_file(str(final / "model.safetensors"))
    before = load_file(str(Path(resolve_model(initial)) / "model.safetensors"))
    missing = sorted(set(before) ^ set(after))
    if missing:
        raise SystemExit(f"{final}: weights {missing[:3]} are not in both checkpoints")
    return max(float((after[k].float() - before[k].float()).abs().max()) for k in before)


def main(argv: list[str] | None = None) -> int:
    from suite.config import load_profile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--runs", required=True)
    args = parser.parse_args(argv)
    profile = load_profile(args.config)
    still, moved_methods = [], set()
    for name, exp in profile.experiments.items():
        if exp.train is None:
            continue
        final = Path(args.runs) / name / "final"
        if not (final / "model.safetensors").is_file():
            raise SystemExit(f"{final}: no trained model; run the workflow first")
        change = max_change(final, exp.train.model)
        print(f"{name:28s} {exp.method:9s} max |Δw| = {change:.3g}")
        if not change > 0 or not torch.isfinite(torch.tensor(change)):
            still.append((name, exp.method))
        else:
            moved_methods.add(exp.method)
    stuck = sorted({method for _, method in still} - moved_methods)
    if still:
        print(f"note: weights did not move in {', '.join(n for n, _ in still)}", file=sys.stderr)
    if stuck:
        print(f"no run of method(s) {', '.join(stuck)} moved its weights", file=sys.stderr)
        return 1
    print(f"every trained method moved its weights ({', '.join(sorted(moved_methods))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
