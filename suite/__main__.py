"""Command line: ``python -m suite <command>``; the Snakefile calls these commands.

    prepare   write data/<name>/<split>.jsonl from the hub, a local mirror, or a generator
    train     train one experiment of a profile
    evaluate  evaluate a checkpoint on one lm-eval task
    report    build a paper's tables and plots from results
    rescore   score saved responses again after a scorer fix (no generation)
    regress   compare fresh results with committed baselines
    validate  check a profile (the Snakefile does this before any work)
"""

from __future__ import annotations

import argparse
import json
import sys


def _prepare(args):
    from .data import prepare

    print(prepare(args.name, args.split, args.data_dir, mirror=args.mirror))


def _train(args):
    from .config import load_profile
    from .trainer import train

    profile = load_profile(args.config)
    train(profile.experiment(args.experiment), out_dir=args.out, resume=args.resume, max_steps=args.max_steps)


def _evaluate(args):
    from .evaluate import evaluate

    overrides = json.loads(args.overrides) if args.overrides else None
    result = evaluate(args.model, args.task, args.out, data_dir=args.data_dir, limit=args.limit,
                      overrides=overrides, seed=args.seed, batch_size=args.batch_size,
                      backend=args.backend, config_hash=args.config_hash)
    print(json.dumps(result["metrics"]))


def _report(args):
    from .config import load_profile
    from .report import build_report

    build_report(load_profile(args.config), args.paper, args.results, args.runs, args.out)


def _regress(args):
    from .regress import main as regress_main

    sys.exit(regress_main(args.results, args.baseline, args.tolerances, update=args.update))


def _validate(args):
    from .config import load_profile

    profile = load_profile(args.config)
    print(f"{args.config}: valid, {len(profile.experiments)} experiments")


def _rescore(args) -> None:
    from .evaluate import rescore

    failed = []
    for path in args.results:
        try:
            result = rescore(path)
        except (ValueError, FileNotFoundError) as err:  # TaskConfigError is a ValueError
            failed.append(path)
            print(f"not rescored: {err}", file=sys.stderr)
            continue
        before, after = result["rescored"]["previous"], result["metrics"]
        change = ", ".join(f"{k} {before[k]['value']:.4f} -> {after[k]['value']:.4f}" for k in after)
        print(f"{path}: {change}")
    if failed:
        sys.exit(f"{len(failed)} of {len(args.results)} files not rescored (left unchanged): {' '.join(failed)}")


def _optional_int(text: str) -> int | None:
    return int(text) if text.strip() else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m suite", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="write a dataset split to data/")
    p.add_argument("name")
    p.add_argument("--split", default="test")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--mirror", default=None, help="local mirror folder (default: $RLREPRO_DATA_MIRROR, else the hub)")
    p.set_defaults(func=_prepare)

    p = sub.add_parser("train", help="train one experiment of a profile")
    p.add_argument("--config", required=True)
    p.add_argument("--experiment", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true",
                   help="continue from the latest checkpoint in --out written by the same config "
                        "(checkpoints of another config are moved to checkpoints.stale/)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (for testing resume)")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="evaluate a checkpoint on one task")
    p.add_argument("--model", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--data-dir", default="data")
    p.add_argument("--limit", type=_optional_int, default=None, help="first N problems ('' = all)")
    p.add_argument("--overrides", default=None, help="JSON merged into the task config")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--backend", choices=["hf", "vllm"], default=None)
    p.add_argument("--config-hash", default=None)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("rescore", help="score saved responses again with the current scorer (no generation)")
    p.add_argument("results", nargs="+", help="results JSON files (their .samples.jsonl beside them)")
    p.set_defaults(func=_rescore)

    p = sub.add_parser("report", help="tables and plots for one paper")
    p.add_argument("--config", required=True)
    p.add_argument("--paper", required=True)
    p.add_argument("--results", required=True, help="results root of the profile")
    p.add_argument("--runs", required=True, help="training runs root of the profile")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_report)

    p = sub.add_parser("regress", help="compare results with baselines")
    p.add_argument("--results", required=True)
    p.add_argument("--baseline", required=True)
    p.add_argument("--tolerances", default="config/tolerances.yaml")
    p.add_argument("--update", action="store_true", help="copy the fresh tables over the baselines")
    p.set_defaults(func=_regress)

    p = sub.add_parser("validate", help="validate a profile")
    p.add_argument("config")
    p.set_defaults(func=_validate)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
