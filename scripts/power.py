"""Power of each paper's seeded claim (config/claims.yaml), estimated before running it (issue 21, item 1).

For every claim that the ``claims`` profile tests (``config/paper_numbers.yaml``: claims with ``profiles:
[claims]``), the committed one-seed ``mini`` results of the same two experiments on the same task
(``results/mini/evals/<exp>/<task>.json.samples.jsonl``) give per-problem scores of treatment and control. From
their per-problem differences d_i this prints the standard error of the mean difference (sd(d) / sqrt(n)) and the
minimum detectable effect at two-sided alpha 0.05 and 80 % power (``suite.stats.mde`` = 2.80 SE), then what the
claims profile's design can detect: N problems (its ``eval.tasks.<task>.limit``, or the mini n where it sets none)
and k = 3 seeds. SE scales as sqrt(n / N), and averaging k seeds' independent samples of each problem divides the
within-problem variance by k at best (an optimistic bound: one seed cannot show the seed-to-seed variance of
training, which the seed-level t-test then measures). The effect to detect is the claim's ``expected_effect``.

    python scripts/power.py [--out results/claims/power.md]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from suite.claims import problem_scores, profile_claims
from suite.config import load_profile
from suite.stats import mde, mean_se, problem_differences

REPO = Path(__file__).resolve().parents[1]
EVALS = REPO / "results" / "mini" / "evals"
PROFILE = REPO / "config" / "claims.yaml"
SEEDS = 3


def row(claim, n_design: int | None) -> list[str]:
    t = problem_scores(EVALS / claim.treatment / f"{claim.task}.json", claim.metric)
    c = problem_scores(EVALS / claim.control / f"{claim.task}.json", claim.metric)
    comparison = f"{claim.treatment} − {claim.control}"
    effect = "—" if claim.expected_effect is None else f"{100 * claim.expected_effect:.1f}"
    if not t or not c:
        return [claim.paper, claim.text, comparison, f"{claim.task} {claim.metric}", "no one-seed mini scores",
                "", "", effect]
    _, d = problem_differences([(t, c)])  # the join on the problem id the verdicts use: one column, one seed
    n = len(d)
    n_design = n_design or n
    mean, se = mean_se(d[:, 0])
    se = se or 0.0
    designed = [mde(se * math.sqrt(n / n_design) / math.sqrt(k)) for k in (1, SEEDS)]
    fmt = lambda x: f"{100 * x:.1f}"  # noqa: E731
    return [claim.paper, claim.text, comparison, f"{claim.task} {claim.metric}",
            f"{fmt(mean)} (n = {n}, one seed)", fmt(mde(se)) if se > 0 else "— (no problem differs)",
            f"{n_design}: {fmt(designed[0])} / {fmt(designed[1])}" if se > 0 else "—", effect]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    profile = load_profile(PROFILE)
    header = ["paper", "claim", "comparison", "task, metric", "mini difference (points)", "mini MDE (points)",
              f"designed N: MDE with 1 / {SEEDS} seeds (points)", "effect to detect (points)"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for paper in profile.papers():
        for claim in profile_claims(profile, paper):
            if claim.profiles is None:  # (profile_claims left out other profiles' claims)
                continue  # a claim of every profile (e.g. a trained arm against the untrained model)
            lines.append("| " + " | ".join(row(claim, profile.eval_settings(claim.task).get("limit"))) + " |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        from suite.io import write_text

        write_text(args.out, "# Power of the seeded claims, before running them\n\nMade by `python scripts/power.py "
                   f"--out {args.out}` from the committed one-seed mini results and the design in "
                   "config/claims.yaml (see the script's docstring).\n\n" + text + "\n")


if __name__ == "__main__":
    main()
