"""Per-paper tables and plots from evaluation results and training logs.

Writes, under ``results/<profile>/<paper>/``:

- ``table.csv``: one row per (experiment, task, metric) with our value, its standard
  error, n, and the paper's reported number where ``config/paper_numbers.yaml`` has one;
  training runs add rows for the last step's metrics (task ``train``);
- ``table.md``: the same as a readable table (ours ± se, paper's number beside it);
- ``curves.png``: reward and accuracy per training step of every trained experiment;
- ``evals.png``: benchmark bars per task and experiment;
- anything a paper's ``extra_report`` hook (``config/paper_numbers.yaml``) adds: a function
  ``(profile, paper, df, results, runs, out) -> list of markdown lines`` that may write its own plots.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from . import import_object  # noqa: E402
from .config import REPO, Profile  # noqa: E402
from .io import atomic_path, read_jsonl, write_text  # noqa: E402

PAPER_NUMBERS = REPO / "config" / "paper_numbers.yaml"
HEADLINE = ("acc", "f1", "success_rate", "em")  # the metric a task's bar shows: first one it has
TRAIN_METRICS = ("reward", "accuracy", "entropy", "kl", "response_length", "step_time")
CURVES = ("reward", "accuracy")


def paper_numbers(paper: str) -> dict:
    if not PAPER_NUMBERS.is_file():
        return {}
    return (yaml.safe_load(PAPER_NUMBERS.read_text()) or {}).get(paper, {})


class ReportError(ValueError):
    pass


def read_result(path: Path) -> dict:
    """An evaluation's results JSON, checked for what the report reads; a missing, cut-off or foreign
    file fails naming it and the fix."""
    path = Path(path)
    fix = ("delete it and run its evaluation again (snakemake re-creates a deleted result; by hand: "
           f"python -m suite evaluate --model ... --task {path.stem} --out {path})")
    if not path.is_file():
        raise ReportError(f"{path}: no evaluation result; run the evaluation first "
                          f"(snakemake --cores all, or python -m suite evaluate ... --out {path})")
    try:
        result = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ReportError(f"{path}: not a complete results JSON ({err}; cut off while it was written?): {fix}") from None
    problem = None
    if not isinstance(result, dict) or not isinstance(result.get("metrics"), dict) or "n" not in result:
        problem = "it lacks the keys 'metrics' and 'n' of a file written by `python -m suite evaluate`"
    else:
        for name, m in result["metrics"].items():
            if not isinstance(m, dict) or not isinstance(m.get("value"), (int, float)) or "stderr" not in m:
                problem = f"metric {name!r} lacks a numeric 'value' or its 'stderr'"
                break
    if problem:
        raise ReportError(f"{path}: not a complete results file ({problem}): {fix}")
    return result


def collect(profile: Profile, paper: str, results: Path, runs: Path) -> pd.DataFrame:
    reported = paper_numbers(paper).get("numbers", {})
    rows = []
    for exp in profile.of_paper(paper):
        for task in exp.eval_tasks:
            result = read_result(profile.eval_path(results, exp.name, task))
            previous = (result.get("rescored") or {}).get("previous", {})
            for metric, m in result["metrics"].items():
                rows.append({
                    "experiment": exp.name, "label": exp.label, "method": exp.method, "task": task,
                    "metric": metric, "value": m["value"], "stderr": m["stderr"], "n": result["n"],
                    "paper_value": reported.get(exp.name, {}).get(task, {}).get(metric),
                    "rescored_from": previous.get(metric, {}).get("value"),
                })
        metrics_file = runs / exp.name / "metrics.jsonl"
        if exp.train is not None and metrics_file.is_file():
            log = read_jsonl(metrics_file)
            if not log:  # a run that stopped before its first step finished
                continue
            last = log[-1]
            train = {f"final_{m}": last[m] for m in TRAIN_METRICS if m in last}
            if all("step_time" in row for row in log):  # the run's training time, the sum over its steps
                train["train_minutes"] = sum(row["step_time"] for row in log) / 60
            for metric, value in train.items():
                rows.append({"experiment": exp.name, "label": exp.label, "method": exp.method, "task": "train",
                             "metric": metric, "value": value, "stderr": None,
                             "n": last["step"], "paper_value": None, "rescored_from": None})
    return pd.DataFrame(rows)


def markdown_table(df: pd.DataFrame) -> str:
    evals = df[df.task != "train"]
    cells = {}
    for _, r in evals.iterrows():
        text = f"{100 * r.value:.1f}" + (f" ± {100 * r.stderr:.1f}" if pd.notna(r.stderr) else "")
        if pd.notna(r.paper_value):
            text += f" ({r.paper_value:g})"
        if pd.notna(r.rescored_from):
            text += " †"
        cells[(r.label, f"{r.task} {r.metric}")] = text
    labels = list(dict.fromkeys(evals.label))
    columns = list(dict.fromkeys(f"{t} {m}" for t, m in zip(evals.task, evals.metric)))
    lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for label in labels:
        lines.append(f"| {label} | " + " | ".join(cells.get((label, c), "—") for c in columns) + " |")
    return "\n".join(lines)


def rescored_note(df: pd.DataFrame) -> str:
    """Which scores were rescored from saved responses (``python -m suite rescore``) and what they were."""
    rescored = df[df.rescored_from.notna()]
    if rescored.empty:
        return ""
    changed = [f"{r.label} {r.task} {r.metric} {100 * r.rescored_from:.1f} → {100 * r.value:.1f}"
               for _, r in rescored.iterrows() if abs(r.rescored_from - r.value) > 1e-12]
    return ("† Rescored from the saved responses with the current scorer (`python -m suite rescore`, no new "
            "generation) after a scorer fix; " + ("changed: " + "; ".join(changed) if changed else "no score changed")
            + ". A trained model's *training* used the scorer of its time (see the paper's docs).")


def training_table(df: pd.DataFrame) -> str:
    train = df[df.task == "train"]
    if train.empty:
        return ""
    wide = train.pivot_table(index="label", columns="metric", values="value", sort=False)
    lines = ["| run | " + " | ".join(wide.columns) + " |", "|---" * (len(wide.columns) + 1) + "|"]
    for label, row in wide.iterrows():
        lines.append(f"| {label} | " + " | ".join(f"{v:.3g}" for v in row) + " |")
    return "\n".join(lines)


def training_logs(profile: Profile, paper: str, runs: str | Path) -> dict[str, tuple]:
    """Every trained experiment of ``paper`` that has a training log: name -> (experiment, log frame)."""
    logs = {}
    for exp in profile.of_paper(paper):
        path = Path(runs) / exp.name / "metrics.jsonl"
        if exp.train is not None and path.is_file():
            logs[exp.name] = (exp, pd.DataFrame(read_jsonl(path)))
    return logs


def plot_curves(profile: Profile, paper: str, runs: Path, out: Path) -> bool:
    logs = training_logs(profile, paper, runs)
    if not logs:
        return False
    fig, axes = plt.subplots(1, len(CURVES), figsize=(5 * len(CURVES), 3.5))
    for ax, metric in zip(axes, CURVES):
        for exp, log in logs.values():
            ax.plot(log.step, log[metric], alpha=0.35)
            smooth = log[metric].rolling(5, min_periods=1).mean()
            ax.plot(log.step, smooth, label=exp.label, color=ax.lines[-1].get_color())
        ax.set_xlabel("step")
        ax.set_ylabel(f"batch {metric}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{paper}: training curves (faint: per step, solid: 5-step mean)")
    save_figure(fig, out)
    return True


def settings_table(profile: Profile, paper: str) -> str:
    """One row per trained experiment: the hyperparameters that set its scale."""
    from .algos import get_method

    rows = []
    for exp in profile.of_paper(paper):
        c = exp.train
        if c is None:
            continue
        rows.append(f"| {exp.label} | {exp.method} | {c.model} | {c.train_dataset} | {c.steps} | "
                    f"{get_method(exp.method).batch_description(c)} | {c.max_new_tokens} | {c.lr:g} | "
                    f"{c.kl_coef:g} | {c.temperature:g} |")
    if not rows:
        return ""
    return "\n".join(["| run | method | model | train data | steps | batch per step | new tokens | lr | KL β | T |",
                      "|---|---|---|---|---|---|---|---|---|---|", *rows])


def plot_evals(df: pd.DataFrame, paper: str, out: Path) -> None:
    evals = df[df.task != "train"]
    headline = {task: next(m for m in HEADLINE + tuple(g.metric) if m in set(g.metric))
                for task, g in evals.groupby("task", sort=False)}
    evals = evals[[headline[t] == m for t, m in zip(evals.task, evals.metric)]]
    wide = evals.pivot_table(index="task", columns="label", values="value", sort=False)
    errs = evals.pivot_table(index="task", columns="label", values="stderr", sort=False).reindex_like(wide)
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(wide)), 3.5))
    (100 * wide).plot.bar(ax=ax, yerr=100 * errs.fillna(0), capsize=2, rot=0)
    ax.set_ylabel("score (%)")
    ax.set_ylim(bottom=0)
    ax.set_xticklabels([f"{t}\n({headline[t]})" for t in wide.index])
    ax.set_title(f"{paper}: benchmark scores")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, out)


def save_figure(fig, path: Path, dpi: int = 120, tight: bool = True) -> None:
    """Lay out (unless the caller already did), write the PNG atomically, close the figure."""
    if tight:
        fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)


def build_report(profile: Profile, paper: str, results: str | Path, runs: str | Path, out: str | Path) -> pd.DataFrame:
    results, runs, out = Path(results), Path(runs), Path(out)
    df = collect(profile, paper, results, runs)
    if df.empty:
        raise ValueError(f"profile {profile.name!r} has no results for paper {paper!r}")
    with atomic_path(out / "table.csv") as tmp:
        df.to_csv(tmp, index=False)
    has_curves = plot_curves(profile, paper, runs, out / "curves.png")
    plot_evals(df, paper, out / "evals.png")
    meta = paper_numbers(paper)
    parts = [
        f"# {meta.get('title', paper)} — profile `{profile.name}`",
        "",
        f"Scale: {profile.raw.get('scale_note', 'as configured').strip().rstrip('.')}.",
        "",
        "Scores in %, ± one standard error over problems; the paper's number, where it reports one, in brackets"
        + (f" ({meta['source']})." if meta.get("source") else "."),
        "",
        markdown_table(df),
    ]
    note = rescored_note(df)
    if note:
        parts += ["", note]
    if meta.get("note"):
        parts += ["", meta["note"].strip()]
    extra = meta.get("extra_report")  # "module:function" adding this paper's own tables and plots
    if extra:
        hook = import_object(extra, f"config/paper_numbers.yaml: {paper}.extra_report")
        parts += ["", *hook(profile, paper, df, results, runs, out)]
    train = training_table(df)
    if train:
        parts += ["", "Last training step (final_*) and training time (train_minutes: the sum of step_time over the "
                  "run's steps, as logged):", "", train]
    settings = settings_table(profile, paper)
    if settings:
        parts += ["", "Training settings (as run; the profile's comments say how they were scaled from the paper):",
                  "", settings]
    for exp in profile.of_paper(paper):  # the per-step logs behind the curves travel with the report
        log = runs / exp.name / "metrics.jsonl"
        if exp.train is not None and log.is_file():
            write_text(out / f"{exp.name}.metrics.jsonl", log.read_text())
    parts += ["", "![benchmarks](evals.png)"] + (["", "![training curves](curves.png)"] if has_curves else [])
    parts += ["", f"Made by `snakemake --cores all {results}/{paper}/table.md "
                  f"--configfile config/{profile.name}.yaml` "
                  f"(rule `report`, `python -m suite report --paper {paper}`).", ""]
    write_text(out / "table.md", "\n".join(parts))
    return df
