"""IGPO's report hook: search-agent vs closed-book scores, eval-time search behaviour, and the
training curves the issue asks for (F1, information gain, turns and search calls per episode).

Called by :func:`suite.report.build_report` through ``extra_report`` in ``config/paper_numbers.yaml``;
writes ``igpo_curves.png`` and returns markdown lines.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..io import read_jsonl, samples_path  # noqa: E402
from ..report import save_figure, training_logs  # noqa: E402

CLOSED_BOOK = {"nq_open": "NQ", "hotpotqa": "HotpotQA"}
SEARCH = {"nq_open_search": "NQ", "hotpotqa_search": "HotpotQA", "igpo_world_search": "synthetic world"}
CURVES = (("f1", "F1 of the answer (malformed = 0)"), ("ig", "information gain per non-final turn"),
          ("turns", "turns per episode"), ("search_calls", "search calls per episode"))
WINDOW = 5


def _cell(df: pd.DataFrame, exp: str, task: str, metric: str) -> str:
    row = df[(df.experiment == exp) & (df.task == task) & (df.metric == metric)]
    if row.empty:
        return "—"
    value, err = row.value.iloc[0], row.stderr.iloc[0]
    return f"{100 * value:.1f}" + (f" ± {100 * err:.1f}" if pd.notna(err) else "")


def score_table(profile, paper: str, df: pd.DataFrame) -> list[str]:
    """F1 / EM per benchmark: closed-book (the foundation's QA tasks) beside the search agent."""
    columns = [(t, f"{name} closed-book") for t, name in CLOSED_BOOK.items()] + \
              [(t, f"{name} search agent") for t, name in SEARCH.items()]
    present = [(t, label) for t, label in columns if t in set(df.task)]
    if not present:
        return []
    lines = ["F1 / EM (%) per benchmark, closed-book beside the search agent (IGPO scorer for the agent, "
             "SQuAD-style normalisation for closed-book):", "",
             "| model | " + " | ".join(label for _, label in present) + " |", "|---" * (len(present) + 1) + "|"]
    for exp in profile.of_paper(paper):
        cells = [f"{_cell(df, exp.name, t, 'f1')} / {_cell(df, exp.name, t, 'em')}" for t, _ in present]
        lines.append(f"| {exp.label} | " + " | ".join(cells) + " |")
    return lines


def search_behaviour(profile, paper: str, results: Path) -> list[str]:
    """Per evaluated search task: mean searches per question and share of well-formed answers."""
    from ..rewards.igpo import extract_answer

    rows = []
    for exp in profile.of_paper(paper):
        for task in exp.eval_tasks:
            path = samples_path(profile.eval_path(results, exp.name, task))
            if task not in SEARCH or not path.is_file():
                continue
            responses = [r for s in read_jsonl(path) for r in s["responses"]]
            if responses:
                searches = sum(r.count("<information>") for r in responses) / len(responses)
                answered = sum(extract_answer(r) is not None for r in responses) / len(responses)
                rows.append(f"| {exp.label} | {task} | {len(responses)} | {searches:.2f} | {100 * answered:.0f} |")
    if not rows:
        return []
    return ["Search-agent behaviour at evaluation (greedy), from the per-question transcripts:", "",
            "| model | task | questions | searches per question | well-formed answer (%) |", "|---|---|---|---|---|", *rows]


def plot_curves(profile, paper: str, runs: Path, out: Path) -> bool:
    logs = {exp.label: log for exp, log in training_logs(profile, paper, runs).values()}
    if not logs:
        return False
    fig, axes = plt.subplots(1, len(CURVES), figsize=(4.5 * len(CURVES), 3.5))
    for ax, (metric, title) in zip(axes, CURVES):
        for label, log in logs.items():
            if metric not in log or log[metric].isna().all():
                continue
            ax.plot(log.step, log[metric], alpha=0.3)
            ax.plot(log.step, log[metric].rolling(WINDOW, min_periods=1).mean(), label=label,
                    color=ax.lines[-1].get_color())
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8)
    fig.suptitle(f"{paper}: training rollouts (faint: per step, solid: {WINDOW}-step mean)")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    save_figure(fig, out, tight=False)
    return True


def training_summary(profile, paper: str, runs: Path) -> list[str]:
    """First and last WINDOW steps of each run: F1, malformed share, IG, turns, searches."""
    keys = ("f1", "malformed_frac", "ig", "turns", "search_calls")
    rows = []
    for exp, log in training_logs(profile, paper, runs).values():
        first, last = log.head(WINDOW), log.tail(WINDOW)

        def pair(key):
            if key not in log or log[key].isna().all():
                return "—"
            return f"{first[key].mean():.3g} → {last[key].mean():.3g}"

        rows.append(f"| {exp.label} | {len(log)} | " + " | ".join(pair(k) for k in keys) + " |")
    if not rows:
        return []
    return [f"Training rollouts, mean of the first {WINDOW} steps → mean of the last {WINDOW}:", "",
            "| run | steps | F1 | malformed share | IG | turns | searches |", "|---|---|---|---|---|---|---|", *rows]


def report(profile, paper: str, df: pd.DataFrame, results, runs, out) -> list[str]:
    results, runs, out = Path(results), Path(runs), Path(out)
    lines: list[str] = []
    for part in (score_table(profile, paper, df), search_behaviour(profile, paper, results),
                 training_summary(profile, paper, runs)):
        if part:
            lines += [*part, ""]
    if plot_curves(profile, paper, runs, out / "igpo_curves.png"):
        lines += ["![IGPO training curves](igpo_curves.png)", ""]
    return lines

