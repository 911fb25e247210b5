"""Every paper's verdicts of one profile in one table (the README's results open with it).

Reads ``<results>/<paper>/verdicts.csv`` as each paper's report wrote it (``snakemake ... <results>/<paper>/table.md``)
and writes one markdown table, a row per claim, with the command that makes each; a claim whose paper's report is not
made yet says "not run yet".

    python scripts/verdicts.py [--config config/claims.yaml] [--out results/claims/verdicts.md]

With ``--paper P --evals DIR`` it instead judges paper P's claims afresh, by the current rule, from the evaluations
under ``DIR/evals/<experiment>/`` (a design kept aside, e.g. ``results/claims/msgrpo_lr5e-5``), and writes that
verdict table (and the pooled problem bootstrap's p, the rule before issue 21's fix) to ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from suite.claims import VERDICT_RULES, evaluate_claim, format_p, profile_claims, summary_table, verdict_table
from suite.config import load_profile
from suite.report import ReportError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="config/claims.yaml")
    parser.add_argument("--out", default=None)
    parser.add_argument("--paper", default=None, help="with --evals: judge this paper's claims afresh")
    parser.add_argument("--evals", default=None, help="a results folder holding evals/<experiment>/<task>.json")
    args = parser.parse_args()
    if (args.paper is None) != (args.evals is None):
        parser.error("--paper and --evals go together")
    profile = load_profile(args.config)
    command = " ".join(["python scripts/verdicts.py", f"--config {args.config}",
                        *([f"--paper {args.paper} --evals {args.evals}"] if args.paper else []),
                        *([f"--out {args.out}"] if args.out else [])])
    if args.paper:
        tested = profile_claims(profile, args.paper) if args.paper in profile.papers() else []
        if not tested:
            parser.error(f"--paper {args.paper}: {args.config} tests no claim of that paper; its papers with "
                         f"claims: {[p for p in profile.papers() if profile_claims(profile, p)]}")
        try:
            rows = [evaluate_claim(profile, claim, Path(args.evals)) for claim in tested]
        except ReportError as err:
            raise SystemExit(f"verdicts.py: {err}") from None
        text = "\n".join(verdict_table(rows) + [""] + [
            f"Claim {r['claim']}: the pooled problem bootstrap (seeds held fixed) gives p "
            f"{format_p(r['p_problems_pooled'])}." for r in rows])
        title = f"# {args.paper}'s claims judged from `{args.evals}`, profile `{profile.name}`"
        made = "the evaluations there"
    else:
        text = "\n".join(summary_table(profile, Path(profile.raw["results_dir"])))
        title = f"# The papers' claims, profile `{profile.name}`"
        made = "each paper's verdicts.csv"
        text += f"\n\n{VERDICT_RULES}"
    print(text)
    if args.out:
        from suite.io import write_text

        write_text(args.out, f"{title}\n\nMade by `{command}` from {made}.\n\n{text}\n")


if __name__ == "__main__":
    main()
