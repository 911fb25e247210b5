"""ExGRPO's report hook: replay bookkeeping per step, bucket histogram, entropies, per-level accuracy.

Called by :func:`suite.report.build_report` through ``extra_report`` in ``config/paper_numbers.yaml``.
Writes ``replay.png`` (accuracy of the fresh rollouts, buffer size, retired questions, and the mean
token entropy of replayed vs fresh trajectories, per step, every trained run) and ``buckets.png``
(questions per success-count bucket over steps, one panel per ExGRPO run), and returns markdown lines:
the gain over on-policy GRPO per benchmark, a per-run summary and, when the arithmetic-levels task was
evaluated, accuracy per difficulty level.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..io import read_jsonl, samples_path  # noqa: E402
from ..report import aggregate, paper_numbers, save_figure, training_logs  # noqa: E402

WINDOW = 5  # steps averaged at the start and at the end of a run
LEVEL_TASK = "arithmetic_levels"


def _fresh_accuracy(log: pd.DataFrame) -> pd.Series:
    """Accuracy of the freshly sampled rollouts (a replayed trajectory is correct by construction)."""
    return log["accuracy_fresh"] if "accuracy_fresh" in log else log["accuracy"]


def _col(log: pd.DataFrame, name: str) -> pd.Series:
    return pd.to_numeric(log[name], errors="coerce") if name in log else pd.Series(np.nan, index=log.index)


def _fmt(x, digits: int = 3) -> str:
    return "—" if x is None or pd.isna(x) else f"{x:.{digits}g}"


def summary_table(logs: dict) -> list[str]:
    if not logs:
        return []
    lines = [f"Training, per run: accuracy of the fresh rollouts (mean of the first and of the last {WINDOW} steps), "
             "the step replay started, the buffer at the end (questions / stored trajectories), retired questions "
             "(solved K/K), replayed groups per step after the start, and the mean token entropy under the policy "
             "being updated of replayed trajectories (steps with replay) and of fresh ones (all steps).", "",
             "| run | steps | fresh accuracy first → last | replay from step | buffer (questions / trajectories) "
             "| retired | replayed groups / step | entropy replayed | entropy fresh |",
             "|---|---|---|---|---|---|---|---|---|"]
    for exp, log in logs.values():
        acc = _fresh_accuracy(log)
        row = [exp.label, str(int(log.step.iloc[-1])),
               f"{100 * acc.head(WINDOW).mean():.1f} → {100 * acc.tail(WINDOW).mean():.1f}"]
        if "replay_active" in log:
            active = log[log.replay_active > 0]
            start = str(int(active.step.iloc[0])) if len(active) else "never"
            last = log.iloc[-1]
            row += [start, f"{int(last.buffer_questions)} / {int(last.buffer_trajectories)}", str(int(last.retired_questions)),
                    _fmt(active.replayed_groups.mean() if len(active) else None),
                    _fmt(_col(active, "entropy_replayed").mean()), _fmt(_col(log, "entropy_fresh").mean())]
        else:  # on-policy GRPO: every trajectory is fresh
            row += ["—", "—", "—", "—", "—", _fmt(_col(log, "entropy").mean())]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def plot_replay(logs: dict, out: Path) -> bool:
    if not logs:
        return False
    panels = [("fresh-rollout accuracy", lambda log: _fresh_accuracy(log)),
              ("buffer size (questions)", lambda log: _col(log, "buffer_questions")),
              ("retired questions (K/K)", lambda log: _col(log, "retired_questions")),
              ("mean token entropy", None)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4))
    colors = {name: f"C{i}" for i, name in enumerate(logs)}  # one colour per run in every panel
    for ax, (title, get) in zip(axes, panels):
        for name, (exp, log) in logs.items():
            if get is None:  # entropy: replayed (dashed) vs fresh (solid); GRPO's is all fresh
                fresh = _col(log, "entropy_fresh") if "entropy_fresh" in log else _col(log, "entropy")
                ax.plot(log.step, fresh, color=colors[name], label=f"{exp.label}, fresh")
                if _col(log, "entropy_replayed").notna().any():
                    ax.plot(log.step, _col(log, "entropy_replayed"), "--", color=colors[name],
                            label=f"{exp.label}, replayed")
            else:
                values = get(log)
                if values.notna().any():
                    ax.plot(log.step, values, color=colors[name], label=exp.label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    axes[-1].legend(fontsize=6)
    save_figure(fig, out, dpi=110)
    return True


def plot_buckets(logs: dict, out: Path) -> bool:
    runs = [(exp, log) for exp, log in logs.values() if any(c.startswith("bucket_") for c in log)]
    if not runs:
        return False
    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 3.4), squeeze=False)
    for ax, (exp, log) in zip(axes[0], runs):
        cols = sorted((c for c in log if re.fullmatch(r"bucket_\d+", c)), key=lambda c: int(c.split("_")[1]))
        counts = log[cols].to_numpy(dtype=float).T  # [bucket, step]
        image = ax.imshow(counts, aspect="auto", origin="lower", cmap="viridis",
                          extent=(log.step.iloc[0] - 0.5, log.step.iloc[-1] + 0.5, 0.5, len(cols) + 0.5))
        ax.set_yticks(range(1, len(cols) + 1))
        ax.set_xlabel("step")
        ax.set_ylabel("bucket k (correct of K)")
        ax.set_title(f"{exp.label}: questions per bucket", fontsize=10)
        fig.colorbar(image, ax=ax)
    save_figure(fig, out, dpi=110)
    return True


def level_table(profile, paper: str, results: Path) -> list[str]:
    """Accuracy per difficulty level of the arithmetic-levels eval, from its per-sample file (a seeded experiment:
    its seeds' samples pooled, one row for the group)."""
    pooled: dict[str, list] = {}
    for exp in profile.of_paper(paper):
        path = samples_path(profile.eval_path(results, exp.name, LEVEL_TASK))
        if LEVEL_TASK in exp.eval_tasks and path.is_file():
            runs = pooled.setdefault(getattr(exp, "group_label", exp.label), [])
            runs.append([(int(re.match(r"arithlv(\d+)-", r["id"]).group(1)), r["metrics"]["acc"])
                         for r in read_jsonl(path)])
    if not pooled:
        return []
    per_exp = {}
    for label, runs in pooled.items():
        table = pd.DataFrame([row for rows in runs for row in rows], columns=["level", "acc"]).groupby("level").acc
        stats = table.agg(["mean", "count"])
        stats["count"] //= len(runs)  # problems per level (each seed scored them all)
        per_exp[label if len(runs) == 1 else f"{label} ({len(runs)} seeds)"] = stats
    levels = sorted({lv for t in per_exp.values() for lv in t.index})
    counts = {lv: max(int(t["count"].get(lv, 0)) for t in per_exp.values()) for lv in levels}
    lines = ["Held-out arithmetic by difficulty level (accuracy in %, "
             + ", ".join(f"level {lv}: n = {counts[lv]}" for lv in levels) + "; levels in suite/tasks/arithmetic.py):", "",
             "| model | " + " | ".join(f"level {lv}" for lv in levels) + " |", "|---" * (len(levels) + 1) + "|"]
    for label, t in per_exp.items():
        lines.append(f"| {label} | " + " | ".join(f"{100 * t['mean'][lv]:.1f}" if lv in t.index else "—"
                                                   for lv in levels) + " |")
    return lines


def gain_table(df: pd.DataFrame, meta: dict) -> list[str]:
    """Each ExGRPO run minus on-policy GRPO per benchmark (points, ± SE), beside the paper's average gain.

    The SE treats the two evaluations as independent (conservative: they share the problems). Needs exactly
    one on-policy experiment (method ``grpo``) in the paper's experiments. A seeded experiment is one row: the
    mean over its seeds, its SE the standard error over seeds (the verdict table tests the paired difference).
    """
    if df is None or df.empty:
        return []
    evals = aggregate(df)
    evals = evals[evals.metric == "acc"]
    onpolicy = evals[evals.method == "grpo"]
    runs = evals[evals.method == "exgrpo"]
    if onpolicy.group.nunique() != 1 or runs.empty:
        return []
    ref = onpolicy.set_index("task")
    tasks = [t for t in ref.index if t in set(runs.task)]
    paper = meta.get("gain_over_onpolicy") or {}
    label = ref.group_label.iloc[0]
    named = "" if label == "on-policy GRPO" else f" ({label})"
    lines = [f"Gain over on-policy GRPO{named}, accuracy points, ± one standard error"
             + (f"; the paper: {paper['text']}" if paper.get("text") else "") + ":", "",
             "| run | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
    for _, g in runs.groupby("group", sort=False):
        g = g.set_index("task")
        cells = []
        for t in tasks:
            diff = 100 * (g.value[t] - ref.value[t])
            se = 100 * float(np.hypot(g.stderr[t] or 0.0, ref.stderr[t] or 0.0))
            cells.append(f"{diff:+.1f} ± {se:.1f}")
        lines.append(f"| {g.label.iloc[0]} | " + " | ".join(cells) + " |")
    return lines


def report(profile, paper: str, df: pd.DataFrame, results: Path, runs: Path, out: Path) -> list[str]:
    logs = training_logs(profile, paper, runs)
    lines: list[str] = []
    for part in (gain_table(df, paper_numbers(paper)), summary_table(logs), level_table(profile, paper, Path(results))):
        if part:
            lines += part + [""]
    if plot_replay(logs, Path(out) / "replay.png"):
        lines += ["![replay bookkeeping and entropies](replay.png)", ""]
    if plot_buckets(logs, Path(out) / "buckets.png"):
        lines += ["![bucket histogram over steps](buckets.png)", ""]
    return lines
