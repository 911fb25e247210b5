"""Power of each paper's mini comparison, estimated before running it (issue 21, item 1).

For every pair below, the committed one-seed mini results give per-problem scores of the treatment and the
control on the same problems (``results/mini/evals/<exp>/<task>.json.samples.jsonl``). From their per-problem
differences d_i this prints the standard error of the mean difference (sd(d) / sqrt(n)) and the minimum
detectable effect at two-sided alpha 0.05 and 80 % power (``suite.stats.mde`` = 2.80 SE), then what a design with
more problems (N) and k seeds could detect: SE scales as sqrt(n / N), and averaging k seeds' independent samples
of each problem divides the within-problem variance by k at best (an optimistic bound: one seed cannot show the
seed-to-seed variance of training, which the seed-level t-test then measures).

    python scripts/power.py [--out results/mini/power.md]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from suite.claims import problem_scores
from suite.stats import mde, mean_se, problem_differences

REPO = Path(__file__).resolve().parents[1]
EVALS = REPO / "results" / "mini" / "evals"

# paper, claim (one sentence, from its docs page), treatment, control, task, metric, designed N problems, the
# effect the paper's claim implies at this scale (metric units), and where that number comes from
PAIRS = [
    ("exgrpo", "replaying the policy's own successes beats on-policy GRPO at the same trajectories per step",
     "exgrpo", "exgrpo_onpolicy", "arithmetic_levels", "acc", 500, 0.035, "+3.5 points, the abstract's math average"),
    ("cooper", "a co-trained reward model does at least as well as the rule and avoids the static RM's collapse",
     "cooper", "cooper_static", "arithmetic_2d", "acc", 200, 0.191,
     "Cooper − static RM, the paper's Qwen2.5-1.5B average 58.02 − 38.91"),
    ("igpo", "information-gain turn rewards beat the outcome-only reward (GRPO-F1) for a search agent",
     "igpo", "igpo_grpo_f1", "hotpotqa_search", "f1", 500, 0.03, "no main-table number read; 3 F1 points assumed"),
    ("msgrpo", "absolute-advantage-weighted episode sampling raises Frozen Lake success over uniform sampling",
     "msgrpo_aaw_fl", "msgrpo_fl", "frozen_lake", "success_rate", 100, 0.10, "no per-game number read; 10 points assumed"),
    ("retaining", "RL forgets less than SFT on probe tasks (MMLU-style probe after IFEval-style training)",
     "rbd_rl_ifeval_like", "rbd_sft_ifeval_like", "mmlu_reason", "acc", 300, 0.05,
     "no table number read; 5 points assumed"),
]


def row(paper, claim, treatment, control, task, metric, n_design, expected, source) -> list[str]:
    t = problem_scores(EVALS / treatment / f"{task}.json", metric)
    c = problem_scores(EVALS / control / f"{task}.json", metric)
    if not t or not c:
        return [paper, claim, f"{treatment} vs {control}", task, "no per-problem scores", "", "", "", source]
    _, d = problem_differences([(t, c)])  # the join on the problem id the verdicts use: one column, one seed
    n = len(d)
    mean, se = mean_se(d[:, 0])
    se = se or 0.0
    scale = 100.0 if metric != "mean_return" else 1.0
    designed = [mde(se * math.sqrt(n / n_design) / math.sqrt(k)) for k in (1, 3)]
    fmt = lambda x: f"{scale * x:.1f}"  # noqa: E731
    return [paper, claim, f"{treatment} − {control}", f"{task} {metric}",
            f"{fmt(mean)} (n = {n}, one seed)", fmt(mde(se)) if se > 0 else "— (no problem differs)",
            f"{fmt(designed[0])} / {fmt(designed[1])}" if se > 0 else "—", fmt(expected), source]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    header = ["paper", "claim", "comparison", "task, metric", "observed difference (points)",
              "MDE now (points)", "MDE at N problems, 1 / 3 seeds (points)", "effect to detect (points)", "its source"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for pair in PAIRS:
        lines.append("| " + " | ".join(row(*pair)) + " |")
    lines += ["", "N (designed problems per task): " + ", ".join(f"{p[0]} {p[6]}" for p in PAIRS) + "."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        from suite.io import write_text

        write_text(args.out, "# Power of the mini comparisons, before running them\n\nMade by `python scripts/power.py "
                   f"--out {args.out}` from the committed one-seed mini results (see the script's docstring).\n\n"
                   + text + "\n")


if __name__ == "__main__":
    main()
