"""Cooper's report hook: the paper's table, reward hacking per step, and the negatives' bookkeeping.

Called by :func:`suite.report.build_report` through ``extra_report`` in ``config/paper_numbers.yaml``.
Writes ``hacking.png`` (training reward, verifier accuracy of the same rollouts, the reward
model's held-out pair accuracy, per step, every trained run) and returns markdown lines.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..report import paper_numbers, save_figure, training_logs  # noqa: E402

PANELS = (("reward", "training reward (mean)"), ("accuracy", "accuracy of the same rollouts (math-verify)"),
          ("rm_reward_wrong", "RM reward on rollouts math-verify rejects"),
          ("rm_heldout_acc", "RM accuracy, held-out pairs"))
WINDOW = 5  # steps averaged at the start and the end of a run


def _fmt(x, pct: bool = True) -> str:
    if x is None or pd.isna(x):
        return "—"
    return f"{100 * x:.1f}" if pct else f"{x:g}"


def paper_table(meta: dict) -> list[str]:
    """The paper's tables, one per backbone: ``paper_tables`` (a list) or one ``paper_table``, each a caption and
    rows of benchmark -> number."""
    tables = meta.get("paper_tables") or ([meta["paper_table"]] if meta.get("paper_table") else [])
    lines: list[str] = []
    for table in tables:
        columns = list(dict.fromkeys(c for row in table["rows"].values() for c in row))
        lines += [*([""] if lines else []), f"The paper's numbers ({table['caption']}):", "",
                  "| reward | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        for label, row in table["rows"].items():
            lines.append(f"| {label} | " + " | ".join(f"{row[c]:.2f}" if c in row else "—" for c in columns) + " |")
    return lines


def our_average(df: pd.DataFrame, meta: dict) -> list[str]:
    """Mean avg@k accuracy over the Cooper benchmarks evaluated here, next to the paper's average."""
    evals = df[(df.task.str.endswith("_cooper")) & (df.metric == "acc")]
    if evals.empty:
        return []
    tasks = sorted(set(evals.task))
    lines = [f"Average accuracy over the benchmarks evaluated here ({', '.join(tasks)}); the paper's average is over "
             "five benchmarks, so the two are not the same quantity:", "",
             "| model | ours (%) | paper's average (%) |", "|---|---|---|"]
    reported = meta.get("numbers", {})
    for exp, g in evals.groupby("experiment", sort=False):
        paper_avg = reported.get(exp, {}).get("average", {}).get("acc")
        cell = "—" if paper_avg is None else f"{paper_avg:g}"
        lines.append(f"| {g.label.iloc[0]} | {100 * g.value.mean():.1f} | {cell} |")
    return lines


def hacking_table(logs: dict) -> list[str]:
    if not logs:
        return []
    lines = ["Reward hacking, first vs last "
             f"{WINDOW} steps (means): the training reward the policy sees, the verifier's accuracy of the same "
             "rollouts, and the reward model's pairwise accuracy on held-out labelled pairs (after that step's update). "
             "For the rule-based run the reward *is* the verifier and there is no reward model.", "",
             "| run | steps | reward first → last | accuracy first → last | RM held-out acc first → last "
             "| RM reward on wrong rollouts (last) | RM/verifier agreement (last) |",
             "|---|---|---|---|---|---|---|"]
    for exp, log in logs.values():
        head, tail = log.head(WINDOW), log.tail(WINDOW)

        def pair(col):
            if col not in log or log[col].isna().all():
                return "—"
            return f"{_fmt(head[col].mean())} → {_fmt(tail[col].mean())}"

        def last(col):
            return _fmt(tail[col].mean()) if col in log else "—"

        lines.append(f"| {exp.label} | {int(log.step.max())} | {pair('reward')} | {pair('accuracy')} "
                     f"| {pair('rm_heldout_acc')} | {last('rm_reward_wrong')} | {last('rm_rollout_agreement')} |")
    return lines


def negatives_table(logs: dict, runs: Path) -> list[str]:
    rows = []
    for name, (exp, log) in logs.items():
        info_path = runs / name / "rm_pretrain.json"
        if not info_path.is_file():
            continue
        info = json.loads(info_path.read_text())
        sums = {c: int(log[c].sum()) if c in log else None for c in
                ("rm_pairs", "rm_skipped", "neg_assistant", "neg_rejected", "neg_rule", "neg_failed")}
        rows.append((exp.label, info, sums))
    if not rows:
        return []
    lines = ["Reward-model data. Pretraining (hybrid annotation of base-policy samples): labelled triples, "
             "verified positives, sampled wrong answers, negatives rewritten by the assistant / by the rule-based "
             "fallback, the held-out pair accuracy before → after pretraining, and its wall time (sampling, rewriting "
             "and training; done once and shared by the runs with the same settings). RL steps (Cooper only): pairs "
             "used, questions skipped (no verified-correct rollout), assistant rewrites accepted / rejected, "
             "rule-based fallbacks, failures.", "",
             "| run | triples | positives | sampled wrong | assistant | rule | held-out acc | pretraining | "
             "step pairs | skipped | assistant ok / rejected | rule | failed |",
             "|---" * 13 + "|"]
    for label, info, s in rows:
        held = f"{_fmt(info.get('heldout_acc_before'))} → {_fmt(info.get('heldout_acc_after'))} (n = {info.get('heldout_pairs')})"
        steps = ["—"] * 5 if s["rm_pairs"] is None else [
            str(s["rm_pairs"]), str(s["rm_skipped"]), f"{s['neg_assistant']} / {s['neg_rejected']}", str(s["neg_rule"]),
            str(s["neg_failed"])]
        took = f"{info['time_s'] / 60:.1f} min" if info.get("time_s") is not None else "—"
        lines.append(f"| {label} | {info['triples']} | {info['positives']} | {info['negatives_sampled']} | "
                     f"{info['negatives_assistant']} | {info['negatives_rule']} | {held} | {took} | "
                     + " | ".join(steps) + " |")
    return lines


def plot_hacking(logs: dict, paper: str, out: Path) -> bool:
    if not logs:
        return False
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.5 * len(PANELS), 3.5))
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {name: cycle[i % len(cycle)] for i, name in enumerate(logs)}  # one colour per run in every panel
    for ax, (col, title) in zip(axes, PANELS):
        for name, (exp, log) in logs.items():
            if col not in log or log[col].isna().all():
                continue
            series = log[["step", col]].dropna()
            ax.plot(series.step, series[col], alpha=0.35, color=colors[name])
            ax.plot(series.step, series[col].rolling(WINDOW, min_periods=1).mean(), label=exp.label,
                    color=colors[name])
        if not ax.lines:
            ax.text(0.5, 0.5, "no data: no run logged this\n(held-out pairs need a verified-correct base sample)",
                    ha="center", va="center", fontsize=8, transform=ax.transAxes)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{paper}: reward hacking (faint: per step, solid: {WINDOW}-step mean)")
    save_figure(fig, out)
    return True


def report(profile, paper: str, df: pd.DataFrame, results: Path, runs: Path, out: Path) -> list[str]:
    """The ``extra_report`` hook of the ``cooper`` paper."""
    runs, out = Path(runs), Path(out)
    logs, meta = training_logs(profile, paper, runs), paper_numbers(paper)
    parts: list[list[str]] = [paper_table(meta), our_average(df, meta), hacking_table(logs),
                              negatives_table(logs, runs)]
    lines: list[str] = []
    for part in parts:
        if part:
            lines += part + [""]
    if plot_hacking(logs, paper, out / "hacking.png"):
        lines += ["![reward hacking](hacking.png)", ""]
    return lines[:-1] if lines and lines[-1] == "" else lines
