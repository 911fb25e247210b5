"""Every paper's verdicts of one profile in one table (the README's results open with it).

Reads ``<results>/<paper>/verdicts.csv`` as each paper's report wrote it (``snakemake ... <results>/<paper>/table.md``)
and writes one markdown table, a row per claim, with the command that makes each; a claim whose paper's report is not
made yet says "not run yet".

    python scripts/verdicts.py [--config config/claims.yaml] [--out results/claims/verdicts.md]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from suite.claims import VERDICT_RULES, summary_table
from suite.config import load_profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="config/claims.yaml")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    profile = load_profile(args.config)
    text = "\n".join(summary_table(profile, Path(profile.raw["results_dir"])))
    print(text)
    if args.out:
        from suite.io import write_text

        write_text(args.out, f"# The papers' claims, profile `{profile.name}`\n\nMade by `python scripts/verdicts.py "
                   f"--config {args.config} --out {args.out}` from each paper's verdicts.csv.\n\n{text}\n\n"
                   f"{VERDICT_RULES}\n")


if __name__ == "__main__":
    main()
