"""MS-GRPO + AAW's report hook: the games table in its units, the paper's claims beside ours,
success-rate curves per step and AAW vs uniform sample efficiency.

Called by :func:`suite.report.build_report` through ``extra_report`` in
``config/paper_numbers.yaml`` (paper ``msgrpo``). Writes ``success_curves.png``
(batch success rate per training step of every trained run) and
``sample_efficiency.png`` (batch success rate against the episodes and the
environment steps consumed so far, one line per run, runs trained on the same
game side by side: AAW (softmax / proportional) vs uniform sampling), and
returns markdown lines.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..claims import parse_claims  # noqa: E402
from ..report import aggregate, paper_numbers, save_figure, training_logs  # noqa: E402

GAME_ORDER = ("frozen_lake", "frozen_lake_slippery", "snake", "snake_poison_apple")
SMOOTH = 3  # steps in the rolling mean of the curves


def _trained_logs(profile, paper: str, runs: Path) -> dict:
    return {name: (exp, log) for name, (exp, log) in training_logs(profile, paper, runs).items()
            if exp.method == "msgrpo"}


def _cell(rows: pd.DataFrame, metric: str, pct: bool) -> str:
    row = rows[rows.metric == metric]
    if row.empty:
        return "—"
    value, stderr = float(row.value.iloc[0]), row.stderr.iloc[0]
    scale = 100 if pct else 1
    text = f"{scale * value:.1f}" if pct else f"{value:.2f}"
    if pd.notna(stderr):
        text += f" ± {scale * float(stderr):.1f}" if pct else f" ± {float(stderr):.2f}"
    return text


def games_table(df: pd.DataFrame) -> list[str]:
    """Success rate (%) and mean return (game units) per game and experiment (a seeded experiment: the mean over
    its seeds ± the standard error over seeds)."""
    evals = aggregate(df)
    evals = evals[evals.task.isin(GAME_ORDER)]
    if evals.empty:
        return []
    tasks = [t for t in GAME_ORDER if t in set(evals.task)]
    header = "| model | " + " | ".join(f"{t} success % | {t} return" for t in tasks) + " |"
    lines = ["Held-out episodes (success rate in %, mean return in game units, ± one standard error over "
             "episodes; FrozenLake success = goal reached, Snake success = survived to the turn cap):", "",
             header, "|---" * (2 * len(tasks) + 1) + "|"]
    for label in dict.fromkeys(evals.label):
        rows = evals[evals.label == label]
        cells = []
        for task in tasks:
            sub = rows[rows.task == task]
            cells += [_cell(sub, "success_rate", True), _cell(sub, "mean_return", False)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _success(evals: pd.DataFrame, group: str, task: str, metric: str) -> tuple[float, str] | None:
    rows = evals[(evals.group == group) & (evals.task == task) & (evals.metric == metric)]
    return None if rows.empty else (float(rows.value.iloc[0]), str(rows.label.iloc[0]))


def claims_table(df: pd.DataFrame, meta: dict, paper: str = "msgrpo") -> list[str]:
    """The paper's claims (text as printed; ``config/paper_numbers.yaml``, the verdict table at the top of the
    report tests them) beside the comparison here in the paper's terms: both arms' scores and the relative change
    (the abstract states its claim relatively), each arm the mean over its seeds."""
    claims = parse_claims(paper, meta)
    if not claims:
        return []
    evals = aggregate(df)
    lines = ["The paper's claims beside ours (each arm's mean over its seeds; the verdicts are at the top):", "",
             "| the paper | here |", "|---|---|"]
    for claim in claims:
        ours = "—"
        metric = claim.metric or "success_rate"
        a, b = _success(evals, claim.treatment, claim.task, metric), _success(evals, claim.control, claim.task, metric)
        if a is not None and b is not None:
            (sa, la), (sb, lb) = a, b
            rel = f", {100 * (sa - sb) / sb:+.0f}% relative" if sb > 0 else ""
            ours = (f"{claim.task} {metric}: {la} {100 * sa:.1f}% vs {lb} {100 * sb:.1f}% "
                    f"({100 * (sa - sb):+.1f} points{rel})")
        lines.append(f"| {claim.text} ({claim.source or 'paper'}) | {ours} |")
    return lines


def plot_success_curves(logs: dict, out: Path) -> bool:
    if not logs:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for name, (exp, log) in logs.items():
        for ax, metric in zip(axes, ("success_rate", "invalid_action_rate")):
            if metric in log:
                line, = ax.plot(log.step, 100 * log[metric], alpha=0.3)
                ax.plot(log.step, 100 * log[metric].rolling(SMOOTH, min_periods=1).mean(), label=exp.label,
                        color=line.get_color())
    for ax, title in zip(axes, ("batch success rate (%)", "invalid-action rate (%)")):
        ax.set_xlabel("training step")
        ax.set_ylabel(title)
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"MS-GRPO: training episodes per step (faint: per step, solid: {SMOOTH}-step mean)")
    save_figure(fig, out)
    return True


def plot_sample_efficiency(logs: dict, out: Path) -> bool:
    """Success vs episodes / environment steps consumed, runs grouped by training game."""
    by_game: dict[str, list] = {}
    for name, (exp, log) in logs.items():
        if "episodes_consumed" in log:
            by_game.setdefault(exp.train.train_dataset, []).append((exp, log))
    by_game = {g: runs for g, runs in by_game.items() if len({_sampling(e) for e, _ in runs}) > 1}
    if not by_game:
        return False
    panels = (("episodes_consumed", "success_rate", "episodes generated", "batch success %"),
              ("episodes_consumed", "mean_return", "episodes generated", "batch mean return"),
              ("env_steps_consumed", "success_rate", "environment steps generated", "batch success %"))
    fig, axes = plt.subplots(len(by_game), len(panels), figsize=(14, 3.6 * len(by_game)), squeeze=False)
    for row, (game, runs) in zip(axes, by_game.items()):
        for exp, log in runs:
            for ax, (x, y, _, _) in zip(row, panels):
                values = log[y].rolling(SMOOTH, min_periods=1).mean() * (100 if y == "success_rate" else 1)
                ax.plot(log[x], values, marker=".", label=f"{exp.label} [{_sampling(exp)}]")
        for ax, (_, y, xlabel, ylabel) in zip(row, panels):
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"{ylabel} ({SMOOTH}-step mean)")
            ax.set_title(game, fontsize=9)
            ax.grid(alpha=0.3)
            if y == "success_rate":
                ax.set_ylim(-2, 102)
        row[0].legend(fontsize=7)
    fig.suptitle("AAW vs uniform episode sampling: sample efficiency (training episodes)")
    save_figure(fig, out)
    return True


def _sampling(exp) -> str:
    algo = exp.train.algo
    if not algo.get("update_samples"):
        return "all episodes"
    return f"{algo.get('sampling', 'softmax')}, {algo['update_samples']} {algo.get('sample_unit', 'episode')}s"


def training_summary(logs: dict) -> list[str]:
    if not logs:
        return []
    lines = ["Training (batch episodes; first and last step, and the totals consumed):", "",
             "| run | sampling | success first → last | return first → last | invalid first → last | "
             "episodes | env steps | trained rows |", "|---|---|---|---|---|---|---|---|"]
    for name, (exp, log) in logs.items():
        first, last = log.iloc[0], log.iloc[-1]
        lines.append(
            f"| {exp.label} | {_sampling(exp)} | {100 * first.success_rate:.0f}% → {100 * last.success_rate:.0f}% "
            f"| {first.mean_return:.2f} → {last.mean_return:.2f} "
            f"| {100 * first.invalid_action_rate:.0f}% → {100 * last.invalid_action_rate:.0f}% "
            f"| {int(last.episodes_consumed)} | {int(last.env_steps_consumed)} | {int(last.trained_rows_consumed)} |")
    return lines


def report(profile, paper: str, df: pd.DataFrame, results: Path, runs: Path, out: Path) -> list[str]:
    meta = paper_numbers(paper)
    logs = _trained_logs(profile, paper, Path(runs))
    lines = ["## Games", ""] + games_table(df)
    claims = claims_table(df, meta, paper)
    if claims:
        lines += [""] + claims
    summary = training_summary(logs)
    if summary:
        lines += [""] + summary
    if plot_success_curves(logs, out / "success_curves.png"):
        lines += ["", "![success rate per step](success_curves.png)"]
    if plot_sample_efficiency(logs, out / "sample_efficiency.png"):
        lines += ["", "![AAW vs uniform sample efficiency](sample_efficiency.png)"]
    return lines
