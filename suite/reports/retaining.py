"""Retaining by Doing's report hook: target gain, forgetting, and where the forgetting happens.

For a model pi_T trained on a target task from pi_0 (the paper's base experiment with the same model),

    gain        Delta_g = A(pi_T, target) - A(pi_0, target)
    forgetting  Delta_d = mean over probes p of [A(pi_0, p) - A(pi_T, p)]     (positive = forgot)

with A the task's ``acc`` and the probes an experiment's eval tasks other than its target.
Called by :func:`suite.report.build_report` through ``extra_report`` in config/paper_numbers.yaml;
writes ``retaining.csv``, ``retaining_scatter.png`` (gain vs forgetting, one point per method and
target) and ``retaining_probes.png`` (per-probe change per method), and returns markdown lines.

It also reads the saved responses of the multiple-choice probes (MMLU, ARC-Challenge) and reports how
many name an option the parser can read at all: a small model can lose a probe by forgetting its answer
format as well as by forgetting the knowledge, and this separates the two.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..io import atomic_path, read_jsonl, samples_path  # noqa: E402
from ..report import save_figure  # noqa: E402
from ..tasks.mmlu import parse_answer  # noqa: E402

METRIC = "acc"
TARGET_TASKS = {"countdown": "countdown", "countdown_smoke": "countdown_smoke", "ifeval_like": "ifeval_like", "mmlu": "mmlu_reason"}  # train set -> task
SFT_VARIANTS = {"expert": "SFT", "self": "Self-SFT", "iterative": "Iterative-SFT", "rl_traces": "SFT on RL traces"}
CHOICE_PROBES = ("mmlu_reason", "arc_challenge")  # scored by "The answer is: X" (suite.tasks.mmlu.parse_answer)
ORDER = ["SFT", "Self-SFT", "Iterative-SFT", "SFT on RL traces", "RL (β=0.05)", "RL (β=0)"]


def variant(exp) -> str:
    """The method's name in the paper's terms."""
    if exp.method == "sft":
        return SFT_VARIANTS[exp.train.algo.get("data", "expert")]
    if exp.method in ("rbd_grpo", "grpo"):
        return f"RL (β={exp.train.kl_coef:g})"
    return exp.label


def target_task(exp) -> str | None:
    return TARGET_TASKS.get(exp.train.train_dataset) if exp.train is not None else None


def deltas(scores: dict, base: str, trained: str, target: str, probes: list[str]) -> dict:
    """Delta_g, Delta_d and the per-probe drops A(pi_0, p) - A(pi_T, p) from ``scores[(experiment, task)]``."""
    drops = {p: scores[(base, p)] - scores[(trained, p)] for p in probes
             if (base, p) in scores and (trained, p) in scores}
    gain = scores[(trained, target)] - scores[(base, target)] if (trained, target) in scores and (base, target) in scores \
        else math.nan
    return {"gain": gain, "forgetting": sum(drops.values()) / len(drops) if drops else math.nan, "drops": drops}


def _stderr_of_difference(errors: list[float]) -> float:
    return math.sqrt(sum(e * e for e in errors)) if errors and all(pd.notna(e) for e in errors) else math.nan


def retaining_table(profile, paper: str, df: pd.DataFrame) -> pd.DataFrame:
    """One row per trained experiment of ``paper``: target, method, A(pi_0), A(pi_T), gains, forgetting."""
    acc = df[(df.metric == METRIC) & (df.task != "train")]
    scores = {(r.experiment, r.task): r.value for r in acc.itertuples()}
    errors = {(r.experiment, r.task): r.stderr for r in acc.itertuples()}
    experiments = profile.of_paper(paper)
    bases = [e for e in experiments if e.train is None]
    rows = []
    for exp in experiments:
        target = target_task(exp)
        if target is None:
            continue
        base = next((b for b in bases if b.model == exp.model), None)
        if base is None:
            raise ValueError(f"paper {paper!r}: no untrained experiment with model {exp.model!r} to measure "
                             f"{exp.name!r} against")
        probes = [t for t in exp.eval_tasks if t != target and t in base.eval_tasks]
        d = deltas(scores, base.name, exp.name, target, probes)
        k = len(d["drops"])
        rows.append({
            "target": target, "method": variant(exp), "seed": exp.seed, "experiment": exp.name, "base": base.name,
            "base_target": scores.get((base.name, target), math.nan), "target_acc": scores.get((exp.name, target), math.nan),
            "gain": d["gain"], "gain_se": _stderr_of_difference([errors.get((exp.name, target)), errors.get((base.name, target))]),
            "forgetting": d["forgetting"],
            "forgetting_se": _stderr_of_difference([errors.get((x, p)) for p in d["drops"] for x in (exp.name, base.name)]) / max(k, 1),
            "n_probes": k, **{f"drop:{p}": v for p, v in d["drops"].items()},
        })
    table = pd.DataFrame(rows)
    if not table.empty:
        rank = {m: i for i, m in enumerate(ORDER)}
        table = table.sort_values(["target", "method"], key=lambda s: s.map(rank).fillna(99) if s.name == "method" else s,
                                  kind="stable").reset_index(drop=True)
    return table


def answer_rates(profile, paper: str, results: Path) -> pd.DataFrame:
    """Per experiment (rows, by label) and multiple-choice task (columns): the share of saved responses
    in which :func:`~suite.tasks.mmlu.parse_answer` finds an option letter, right or wrong."""
    rates: dict[str, dict[str, float]] = {}
    for exp in profile.of_paper(paper):
        for task in (t for t in exp.eval_tasks if t in CHOICE_PROBES):
            samples = samples_path(profile.eval_path(results, exp.name, task))
            if not samples.is_file():
                continue
            responses = [text for row in read_jsonl(samples) for text in row["responses"]]
            if responses:
                rates.setdefault(exp.label, {})[task] = sum(parse_answer(t) is not None for t in responses) / len(responses)
    return pd.DataFrame.from_dict(rates, orient="index")


def _pp(x, se=None) -> str:
    if x is None or pd.isna(x):
        return "—"
    return f"{100 * x:+.1f}" + (f" ± {100 * se:.1f}" if se is not None and pd.notna(se) else "")


def _colors(methods) -> dict[str, str]:
    """One colour per method, the same in every plot."""
    return {m: f"C{i % 10}" for i, m in enumerate(dict.fromkeys([*ORDER, *methods]))}


def plot_scatter(table: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    markers = dict(zip(sorted(table.target.unique()), "os^Dv"))
    colors = _colors(table.method)
    for r in table.itertuples():
        ax.scatter(100 * r.forgetting, 100 * r.gain, color=colors[r.method], marker=markers[r.target], s=60,
                   label=f"{r.method} ({r.target})")
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("forgetting Δ_d (pp, mean drop over probes; right = forgets more)")
    ax.set_ylabel("target gain Δ_g (pp)")
    ax.set_title("Retaining by Doing: gain vs forgetting")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never over a point
    save_figure(fig, path)


def plot_probes(table: pd.DataFrame, path: Path) -> None:
    targets = sorted(table.target.unique())
    fig, axes = plt.subplots(len(targets), 1, figsize=(9, 3.2 * len(targets)), squeeze=False)
    for ax, target in zip(axes[:, 0], targets):
        part = table[table.target == target].set_index("method")
        drops = part[[c for c in part.columns if c.startswith("drop:")]].dropna(axis=1, how="all")
        change = -100 * drops.rename(columns=lambda c: c.removeprefix("drop:")).T  # A(pi_T) - A(pi_0)
        change.plot.bar(ax=ax, rot=0, color=[_colors(table.method)[m] for m in change.columns])
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_ylabel("A(π_T) − A(π_0) (pp)")
        ax.set_title(f"target {target}: change on each probe (below 0 = forgetting)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(fig, path)


def report(profile, paper: str, df: pd.DataFrame, results: Path, runs: Path, out: Path) -> list[str]:
    table = retaining_table(profile, paper, df)
    if table.empty:
        return []
    with atomic_path(Path(out) / "retaining.csv") as tmp:
        table.to_csv(tmp, index=False)
    plot_scatter(table, Path(out) / "retaining_scatter.png")
    plot_probes(table, Path(out) / "retaining_probes.png")
    lines = [
        "## Gain and forgetting",
        "",
        "Δ_g = A(π_T, target) − A(π_0, target); Δ_d = mean over the probes of A(π_0, probe) − A(π_T, probe) "
        "(positive = forgetting). Percentage points; ± one standard error, treating the two evaluations as "
        "independent (conservative: they share the problems).",
        "",
        "| target | method | A(π_0) target | A(π_T) target | Δ_g | Δ_d | probes |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        seed = "" if pd.isna(r.seed) else f" (seed {int(r.seed)})"
        lines.append(f"| {r.target} | {r.method}{seed} | {100 * r.base_target:.1f} | {100 * r.target_acc:.1f} | "
                     f"{_pp(r.gain, r.gain_se)} | {_pp(r.forgetting, r.forgetting_se)} | {r.n_probes} |")
    lines += ["", "![gain vs forgetting](retaining_scatter.png)", "", "![per-probe change](retaining_probes.png)"]
    rates = answer_rates(profile, paper, Path(results))
    if not rates.empty:
        lines += ["", "Multiple-choice probes: responses that name an option the parser reads (\"The answer is: X\"), "
                  "right or wrong, in %. A drop here is forgotten answer format rather than forgotten knowledge.", "",
                  "| model | " + " | ".join(rates.columns) + " |", "|---" * (len(rates.columns) + 1) + "|"]
        lines += [f"| {label} | " + " | ".join("—" if pd.isna(v) else f"{100 * v:.0f}" for v in row) + " |"
                  for label, row in rates.iterrows()]
    return lines
