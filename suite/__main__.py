"""Command line: ``python -m suite <command>``; the Snakefile calls these commands.

    prepare   write data/<name>/<split>.jsonl from the hub, a local mirror, or a generator
    train     train one experiment of a profile
    evaluate  evaluate a checkpoint on one lm-eval task
    report    build a paper's tables and plots from results
    rescore   score saved responses again after a scorer fix (no generation)
    regress   compare fresh results with committed baselines
    validate  check a profile (the Snakefile does this before any work)
    plan      estimated GPU memory per experiment of a profile, and whether it fits (--check fails if not)

An error prints one message naming the file, key or line and the fix, and exits with status 2
(``regress`` exits 1 when a score drifts); ``--debug`` or ``RLREPRO_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

ERROR_EXIT = 2
DEBUG_ENV = "RLREPRO_DEBUG"
# locals that name the file being written, innermost frame first (torch.save's `f`, safetensors' `filename`)
_PATH_LOCALS = ("f", "filename", "file", "path", "name_or_buffer", "save_directory", "tmp", "out", "target")


def _prepare(args):
    from .data import prepare

    print(prepare(args.name, args.split, args.data_dir, mirror=args.mirror))


def set_threads(n: int | None) -> None:
    """Give torch ``n`` intra-op threads (the cores Snakemake gave the job, ``threads:``), so that jobs running
    side by side do not oversubscribe the machine; None keeps torch's default (all cores)."""
    if n is None:
        return
    if n < 1:
        raise ValueError(f"--threads {n}: must be at least 1")
    import torch

    torch.set_num_threads(n)
    print(f"torch threads: {n}", file=sys.stderr)


def _train(args):
    set_threads(args.threads)
    from .config import load_profile
    from .trainer import train

    profile = load_profile(args.config)
    train(profile.experiment(args.experiment), out_dir=args.out, resume=args.resume, max_steps=args.max_steps)


def _evaluate(args):
    set_threads(args.threads)
    from .evaluate import evaluate

    from .config import check_overrides, check_task_yaml, tasks_dir
    from .evaluate import CUSTOM_TASKS

    try:
        overrides = json.loads(args.overrides) if args.overrides else None
    except json.JSONDecodeError as err:
        raise ValueError(f"--overrides is not valid JSON ({err}): {args.overrides!r}") from None
    if args.task not in CUSTOM_TASKS and (tasks_dir() / f"{args.task}.yaml").is_file():
        check_task_yaml(args.task)  # a YAML syntax error is named here, not reported as an unknown task
    check_overrides(args.task, overrides, where="--overrides")
    result = evaluate(args.model, args.task, args.out, data_dir=args.data_dir, limit=args.limit,
                      overrides=overrides, seed=args.seed, batch_size=args.batch_size,
                      backend=args.backend, config_hash=args.config_hash, bf16=_bf16_arg(args.bf16),
                      generation_rows=args.generation_rows)
    print(json.dumps(result["metrics"]))


def _bf16_arg(text: str) -> bool | str:
    return {"true": True, "false": False}.get(text, text)


def _report(args):
    from .config import load_profile
    from .report import build_report

    build_report(load_profile(args.config), args.paper, args.results, args.runs, args.out)


def _regress(args):
    from .regress import main as regress_main

    sys.exit(regress_main(args.results, args.baseline, args.tolerances, update=args.update))


def _plan(args):
    from .config import load_profile
    from .plan import check_profile, plan, table

    profile = load_profile(args.config)
    if args.set:
        import dataclasses

        import yaml

        changes = {}
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"--set {item!r}: write KEY=VALUE")
            changes[key] = yaml.safe_load(value)
        for exp in profile.experiments.values():
            if exp.train is not None:
                exp.train = dataclasses.replace(exp.train, **changes)
    where = f" with {', '.join(args.set)}" if args.set else ""
    print(f"# {args.config}{where}: estimated memory per GPU (GiB) on {args.gpu_memory:g} GiB GPUs (suite/plan.py)\n")
    print(table(plan(profile, args.gpu_memory)))
    if args.check:
        check_profile(profile, args.gpu_memory)


def _validate(args):
    from .config import load_profile

    from .claims import check_profile_claims
    from .plan import check_planned_profile

    profile = load_profile(args.config)
    planned = check_planned_profile(profile)
    claims = check_profile_claims(profile)
    tasks = sorted(profile.raw["eval"]["tasks"])
    runs = len(profile.experiments)
    groups = len(profile.groups())
    print(f"{args.config}: valid, {groups} experiments" + (f" ({runs} runs with their seeds)" if runs != groups else "")
          + f", {len(tasks)} eval tasks, {claims} paper claims tested "
          "(keys and types, ranges, group sizes, methods and options, models, datasets, task YAMLs, eval overrides"
          + (f"; memory plan: every GPU job fits {profile.raw['resources']['gpu_memory']} GiB GPUs)" if planned else ")"))


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


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be an integer >= 1")
    return value


def _written_path(err: BaseException) -> str | None:
    """The file an error was writing: the OSError's filename, else a path-like local of the innermost frame
    that has one (torch.save's ``f``, safetensors' ``filename``, our ``path``)."""
    for e in (err, err.__cause__, err.__context__):
        if isinstance(e, OSError) and e.filename:
            return str(e.filename)
        if getattr(e, "path", None):
            return str(e.path)
    tb, frames = err.__traceback__, []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        for name in _PATH_LOCALS:
            value = frame.f_locals.get(name)
            if isinstance(value, (str, os.PathLike)) and str(value):
                return str(value)
            if hasattr(value, "name") and isinstance(getattr(value, "name"), str) and hasattr(value, "write"):
                return value.name
    return None


def error_message(err: BaseException) -> str:
    """One readable message for an error that ends a command."""
    from .io import DiskFullError, is_disk_full

    if isinstance(err, DiskFullError):
        return str(err)
    if is_disk_full(err):
        return str(DiskFullError(_written_path(err)))
    text = str(err).strip() or "(no message)"
    if isinstance(err, KeyError) and len(err.args) == 1:
        text = f"key {err.args[0]!r} is missing"
    expected = isinstance(err, (ValueError, OSError)) and not isinstance(err, (UnicodeError,))
    return text if expected else f"{type(err).__name__}: {text}"


def _format_warning(message, category, filename, lineno, line=None, _default=warnings.formatwarning):
    from .io import SuiteWarning

    if issubclass(category, SuiteWarning):
        return f"warning: {message}\n"
    return _default(message, category, filename, lineno, line)


def debug_requested(args=None) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.formatwarning = _format_warning
    if debug_requested(args):
        args.func(args)
        return
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as err:  # noqa: BLE001 - every error ends in one message, the traceback on request
        print(f"error: {error_message(err)}", file=sys.stderr)
        print(f"(python -m suite --debug ... or {DEBUG_ENV}=1 shows the traceback)", file=sys.stderr)
        sys.exit(ERROR_EXIT)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m suite", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help=f"show the traceback of an error (or {DEBUG_ENV}=1)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help=f"show the traceback of an error (or {DEBUG_ENV}=1)")
    compute = argparse.ArgumentParser(add_help=False)
    compute.add_argument("--threads", type=int, default=None,
                         help="torch intra-op threads (the Snakefile passes the job's `threads`); default: all cores")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", parents=[common], help="write a dataset split to data/")
    p.add_argument("name")
    p.add_argument("--split", default="test")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--mirror", default=None, help="local mirror folder (default: $RLREPRO_DATA_MIRROR, else the hub)")
    p.set_defaults(func=_prepare)

    p = sub.add_parser("train", parents=[common, compute], help="train one experiment of a profile")
    p.add_argument("--config", required=True)
    p.add_argument("--experiment", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true",
                   help="continue from the latest checkpoint in --out written by the same config "
                        "(checkpoints of another config are moved to checkpoints.stale/)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (for testing resume)")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", parents=[common, compute], help="evaluate a checkpoint on one task")
    p.add_argument("--model", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--data-dir", default="data")
    p.add_argument("--limit", type=_optional_int, default=None, help="first N problems ('' = all)")
    p.add_argument("--overrides", default=None, help="JSON merged into the task config")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=_positive_int, default=16)
    p.add_argument("--backend", choices=["rlrepro", "hf", "vllm"], default=None,
                   help="rlrepro: lm-eval's hf model generating through our rollout engine (the default without "
                        "vLLM and a GPU); hf: lm-eval's own; vllm: GPU")
    p.add_argument("--bf16", choices=["auto", "true", "false"], default="false",
                   help="rlrepro backend: generate in bf16 (auto: where the CPU/GPU computes it natively); "
                        "default false: fp32 on the CPU, scores independent of the CPU type")
    p.add_argument("--generation-rows", type=_positive_int, default=None,
                   help="rlrepro backend: rows per generation batch (default: the larger of --batch-size and 128)")
    p.add_argument("--config-hash", default=None)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("rescore", parents=[common], help="score saved responses again with the current scorer (no generation)")
    p.add_argument("results", nargs="+", help="results JSON files (their .samples.jsonl beside them)")
    p.set_defaults(func=_rescore)

    p = sub.add_parser("report", parents=[common], help="tables and plots for one paper")
    p.add_argument("--config", required=True)
    p.add_argument("--paper", required=True)
    p.add_argument("--results", required=True, help="results root of the profile")
    p.add_argument("--runs", required=True, help="training runs root of the profile")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_report)

    p = sub.add_parser("regress", parents=[common], help="compare results with baselines")
    p.add_argument("--results", required=True)
    p.add_argument("--baseline", required=True)
    p.add_argument("--tolerances", default="config/tolerances.yaml")
    p.add_argument("--update", action="store_true", help="copy the fresh tables over the baselines")
    p.set_defaults(func=_regress)

    p = sub.add_parser("validate", parents=[common], help="validate a profile")
    p.add_argument("config")
    p.set_defaults(func=_validate)

    p = sub.add_parser("plan", parents=[common], help="estimated GPU memory per experiment of a profile; fits or not")
    p.add_argument("--configfile", "--config", dest="config", required=True)
    p.add_argument("--gpu-memory", type=float, default=80.0, help="GiB per GPU (default 80)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a training key in every experiment (YAML value), e.g. gradient_checkpointing=true")
    p.add_argument("--check", action="store_true",
                   help="exit 2 naming each experiment that asks for GPUs and does not fit them, and its fix")
    p.set_defaults(func=_plan)

    return parser


if __name__ == "__main__":
    main()
