"""Per-paper tables and plots from evaluation results and training logs.

Writes, under ``results/<profile>/<paper>/``:

- ``table.csv``: one row per (experiment, task, metric) with our value, its standard
  error, n, and the paper's reported number where ``config/paper_numbers.yaml`` has one;
  training runs add rows for the last step's metrics (task ``train``); ``group`` and ``seed``
  say which declared experiment and seed a row is (an experiment with ``seeds`` is one run per seed);
- ``table.md``: the paper's claims with a verdict each (``suite/claims.py``), then the scores as
  a readable table, one row per group (ours ± se, paper's number beside it; a group of several
  seeds shows the mean over seeds ± the standard error over seeds);
- ``verdicts.csv``: the verdict rows, when the paper has claims this profile tests;
- ``curves.png``: reward and accuracy per training step of every trained group (several seeds:
  their mean, with a min–max band);
- ``evals.png``: benchmark bars per task and group;
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

from . import claims, import_object, stats  # noqa: E402
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
        ident = {"group": exp.group, "seed": exp.seed, "group_label": exp.group_label}
        for task in exp.eval_tasks:
            result = read_result(profile.eval_path(results, exp.name, task))
            previous = (result.get("rescored") or {}).get("previous", {})
            for metric, m in result["metrics"].items():
                rows.append({
                    "experiment": exp.name, "label": exp.label, "method": exp.method, "task": task,
                    "metric": metric, "value": m["value"], "stderr": m["stderr"], "n": result["n"],
                    "paper_value": (reported.get(exp.name) or reported.get(exp.group) or {}).get(task, {}).get(metric),
                    "rescored_from": previous.get(metric, {}).get("value"), **ident,
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
                             "n": last["step"], "paper_value": None, "rescored_from": None, **ident})
    df = pd.DataFrame(rows)
    if not df.empty:
        df["seed"] = df["seed"].astype("Int64")  # whole numbers, empty without seeds
    return df


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """The evaluation rows of ``df`` (one per run) as one row per (group, task, metric): a group of several seeds
    gets the mean over its seeds, ± the standard error over seeds, ``n_seeds`` and the label "<label> (k seeds)";
    a group of one run keeps its row (its standard error over problems). A frame without ``group`` columns (one
    built by hand) treats each experiment as its own group."""
    evals = df[df.task != "train"].copy()
    if "group" not in evals:
        evals["group"] = evals["experiment"]
    if "group_label" not in evals:
        evals["group_label"] = evals["label"]
    rows = []
    for (_, task, metric), g in evals.groupby(["group", "task", "metric"], sort=False):
        first = g.iloc[0].to_dict()
        if len(g) == 1:
            rows.append({**first, "n_seeds": 1})
            continue
        mean, se = stats.mean_se(g.value.astype(float).tolist())
        rescored = g.rescored_from.dropna() if "rescored_from" in g else pd.Series(dtype=float)
        rows.append({**first, "experiment": first["group"], "label": f"{first['group_label']} ({len(g)} seeds)",
                     "value": mean, "stderr": se, "n_seeds": len(g), "seed": None,
                     "rescored_from": rescored.iloc[0] if len(rescored) else None})
    return pd.DataFrame(rows, columns=[*evals.columns, "n_seeds"] if not rows else None)


def markdown_table(df: pd.DataFrame) -> str:
    evals = aggregate(df)
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
    """Reward and accuracy per step, one line per group: a group of several seeds draws the mean over its seeds,
    with a band from the lowest to the highest seed (of the 5-step means)."""
    logs = training_logs(profile, paper, runs)
    if not logs:
        return False
    groups: dict[str, list] = {}
    for exp, log in logs.values():
        groups.setdefault(getattr(exp, "group", exp.name), []).append((exp, log))
    banded = any(len(members) > 1 for members in groups.values())
    fig, axes = plt.subplots(1, len(CURVES), figsize=(5 * len(CURVES), 3.5))
    for ax, metric in zip(axes, CURVES):
        for members in groups.values():
            exp = members[0][0]
            if len(members) == 1:
                log = members[0][1]
                if metric not in log:
                    continue
                ax.plot(log.step, log[metric], alpha=0.35)
                smooth = log[metric].rolling(5, min_periods=1).mean()
                ax.plot(log.step, smooth, label=exp.label, color=ax.lines[-1].get_color())
                continue
            per_seed = pd.concat({e.name: log.set_index("step")[metric] for e, log in members if metric in log},
                                 axis=1).sort_index()
            if per_seed.empty:
                continue
            smooth = per_seed.rolling(5, min_periods=1).mean()
            ax.plot(per_seed.index, per_seed.mean(axis=1), alpha=0.35)
            color = ax.lines[-1].get_color()
            ax.plot(smooth.index, smooth.mean(axis=1), color=color,
                    label=f"{getattr(exp, 'group_label', exp.label)} ({per_seed.shape[1]} seeds)")
            ax.fill_between(smooth.index, smooth.min(axis=1), smooth.max(axis=1), color=color, alpha=0.15)
        ax.set_xlabel("step")
        ax.set_ylabel(f"batch {metric}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    band = ";\nseveral seeds: their mean, band: min–max over the seeds of the 5-step mean" if banded else ""
    fig.suptitle(f"{paper}: training curves (faint: per step, solid: 5-step mean{band})")
    save_figure(fig, out)
    return True


def settings_table(profile: Profile, paper: str) -> str:
    """One row per trained experiment: the hyperparameters that set its scale."""
    from .algos import get_method

    rows = []
    for members in profile.groups(paper).values():  # one row per group: its seeds differ only in train.seed
        exp, c = members[0], members[0].train
        if c is None:
            continue
        label = exp.label if len(members) == 1 else (f"{exp.group_label} (seeds "
                                                     f"{', '.join(str(e.seed) for e in members)})")
        rows.append(f"| {label} | {exp.method} | {c.model} | {c.train_dataset} | {c.steps} | "
                    f"{get_method(exp.method).batch_description(c)} | {c.max_new_tokens} | {c.lr:g} | "
                    f"{c.kl_coef:g} | {c.temperature:g} |")
    if not rows:
        return ""
    return "\n".join(["| run | method | model | train data | steps | batch per step | new tokens | lr | KL β | T |",
                      "|---|---|---|---|---|---|---|---|---|---|", *rows])


def plot_evals(df: pd.DataFrame, paper: str, out: Path) -> None:
    evals = aggregate(df)  # one bar per group: the mean over its seeds ± the SE over seeds
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
    meta = paper_numbers(paper)
    verdicts = [claims.evaluate_claim(profile, claim, results)
                for claim in claims.profile_claims(profile, paper, meta)]
    with atomic_path(out / "table.csv") as tmp:
        df.drop(columns=["group_label"], errors="ignore").to_csv(tmp, index=False)
    if verdicts:
        with atomic_path(out / "verdicts.csv") as tmp:
            pd.DataFrame(verdicts).to_csv(tmp, index=False)
    elif (out / "verdicts.csv").is_file():  # the paper's claims were removed, or this profile tests none now
        (out / "verdicts.csv").unlink()
    has_curves = plot_curves(profile, paper, runs, out / "curves.png")
    plot_evals(df, paper, out / "evals.png")
    seeded = "group" in df and df[df.task != "train"].groupby(["group", "task", "metric"]).size().max() > 1
    parts = [f"# {meta.get('title', paper)} — profile `{profile.name}`", ""]
    if verdicts:
        parts += ["## The paper's claims", "", *claims.verdict_table(verdicts), "", "## Scores", ""]
    parts += [
        f"Scale: {profile.raw.get('scale_note', 'as configured').strip().rstrip('.')}.",
        "",
        "Scores in %, ± one standard error over problems"
        + ("; a row marked (k seeds) is the mean over k training seeds ± the standard error over seeds" if seeded
           else "")
        + "; the paper's number, where it reports one, in brackets"
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
