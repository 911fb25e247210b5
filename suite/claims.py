"""The papers' claims (``config/paper_numbers.yaml``: ``<paper>.claims``) tested against our runs.

A claim is a mapping::

    - text: "ExGRPO beats on-policy RLVR on math benchmarks"   # the paper's claim, one sentence
      source: abstract                 # where the paper says it (optional)
      task: arithmetic_smoke           # an eval task both arms evaluate
      metric: acc                      # optional: default the task's headline metric (suite.report.HEADLINE)
      treatment: exgrpo                # experiment (group) names of the profile: a seeded experiment's declared name
      control: exgrpo_onpolicy
      direction: greater               # greater (default) | less: the sign of treatment - control the paper claims
      paper_value: "+3.5 points"       # optional: the paper's number as printed (text)
      expected_effect: 0.05            # optional: |treatment - control| in metric units the design should detect
      profiles: [claims]               # optional: the profiles that test it (default: every profile running both arms)

A claim whose treatment or control is not an experiment of the paper in a profile is left out of that profile's
report (the smoke profile runs fewer experiments than the paper profile), and so is one whose ``profiles`` does not
name the profile (one paper's claim measured on another task at another scale is its own entry). A claim naming a
task that an arm does not evaluate, an unknown key or a bad value fails (``python -m suite validate``, the Snakefile,
the report), naming the paper, the claim's index and the key.

Each claim gets a verdict from its arms' evaluations (:func:`evaluate_claim`): the seed-level paired t-test on the
per-seed metric differences and the two-way (seeds × problems) paired bootstrap on per-problem differences
(suite/stats.py); the rules are :data:`VERDICT_RULES`.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import stats
from .config import REPO, ConfigError, Profile
from .io import read_jsonl, samples_path

PAPER_NUMBERS = REPO / "config" / "paper_numbers.yaml"
CLAIM_KEYS = ("text", "source", "task", "metric", "treatment", "control", "direction", "paper_value",
              "expected_effect", "profiles")
REQUIRED = ("text", "task", "treatment", "control")
DIRECTIONS = ("greater", "less")
MIN_SEEDS = 3
ALPHA = 0.05
# metrics shown in their own unit; every other metric is a proportion, shown in points (x100) as in the table
RAW_UNIT_METRICS = ("mean_return", "episode_length")
# a game evaluation's per-episode rows (suite/envs/evaluate_games.py) hold these instead of lm-eval's metrics
GAME_SCORES = {
    "success_rate": lambda row: float(row["success"]),
    "mean_return": lambda row: float(row["return"]),
    "episode_length": lambda row: float(row["length"]),
    "invalid_action_rate": lambda row: float(row["invalid"]) / float(row["length"]),
}
VERDICT_RULES = (
    "Verdicts: fewer than 3 training seeds in a trained arm: *inconclusive (n seeds < 3)* (an untrained arm is one "
    "model whatever the seed: it is paired with every seed of the other arm and needs none); else by the two-sided "
    "seed × problem paired bootstrap (per-problem differences joined on the problem id, one column per seed pair; "
    "each of 10,000 resamples draws the seed pairs and the problems with replacement, so the training randomness "
    "varies as well as the problems): p < 0.05 with the difference in the claimed direction: *reproduced*; p < 0.05 "
    "the other way: *not reproduced (opposite)*; p ≥ 0.05 with a minimum detectable effect (80% power, two-sided "
    "α = 0.05: MDE = 2.8 × the bootstrap SE of the difference) at most the claim's `expected_effect`: *not "
    "reproduced (MDE x ≤ expected y)*; else *inconclusive at this power (MDE x)* (also when no problem's score "
    "differs between the arms, where the SE is 0). With 3 seeds one seed pair fills a resample in 1 of 27 draws, "
    "so a seed whose difference is clearly the other way keeps p at about 2/27 = 0.07: *reproduced* needs every "
    "seed to show the effect. The seed-level paired t-test (per-seed metric differences, needs 2 seeds) is shown "
    "beside it. Differences are treatment − control, in points for proportions."
)


class ClaimError(ConfigError):
    pass


@dataclass(frozen=True)
class Claim:
    paper: str
    index: int
    text: str
    task: str
    treatment: str
    control: str
    direction: str = "greater"
    metric: str | None = None
    source: str | None = None
    paper_value: str | None = None
    expected_effect: float | None = None
    profiles: tuple[str, ...] | None = None

    @property
    def where(self) -> str:
        return f"config/paper_numbers.yaml: {self.paper}.claims[{self.index}]"


def paper_meta(paper: str) -> dict:
    if not PAPER_NUMBERS.is_file():
        return {}
    return (yaml.safe_load(PAPER_NUMBERS.read_text()) or {}).get(paper) or {}


def parse_claims(paper: str, meta: dict) -> list[Claim]:
    """The claims of one paper's entry in ``config/paper_numbers.yaml``, their keys and values checked."""
    raw = meta.get("claims")
    if raw is None:
        return []
    where = f"config/paper_numbers.yaml: {paper}.claims"
    if not isinstance(raw, list):
        raise ClaimError(f"{where} must be a list of claims (mappings with {', '.join(REQUIRED)})")
    claims = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise ClaimError(f"{at} must be a mapping with {', '.join(REQUIRED)}, got {type(item).__name__}")
        unknown = sorted(set(item) - set(CLAIM_KEYS))
        if unknown:
            raise ClaimError(f"{at}: unknown key(s) {unknown}; a claim takes {', '.join(CLAIM_KEYS)} "
                             "(treatment and control name experiments)")
        for key in REQUIRED:
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise ClaimError(f"{at}.{key} is missing or not a string: a claim needs {', '.join(REQUIRED)}")
        for key in ("source", "metric"):
            if item.get(key) is not None and not isinstance(item[key], str):
                raise ClaimError(f"{at}.{key} = {item[key]!r} must be a string")
        direction = item.get("direction", "greater")
        if direction not in DIRECTIONS:
            raise ClaimError(f"{at}.direction = {direction!r} must be one of {list(DIRECTIONS)}")
        effect = item.get("expected_effect")
        if effect is not None and (isinstance(effect, bool) or not isinstance(effect, (int, float))
                                   or not math.isfinite(effect) or effect <= 0):
            raise ClaimError(f"{at}.expected_effect = {effect!r} must be a number > 0 (the absolute difference, in "
                             "the metric's units, e.g. 0.05 for 5 points of accuracy)")
        if item["treatment"] == item["control"]:
            raise ClaimError(f"{at}: treatment and control are both {item['treatment']!r}: name two experiments")
        profiles = item.get("profiles")
        if profiles is not None and (not isinstance(profiles, list) or not profiles
                                     or not all(isinstance(x, str) and x for x in profiles)):
            raise ClaimError(f"{at}.profiles = {profiles!r} must be a non-empty list of profile names (the `profile` "
                             "key of config/<name>.yaml), e.g. profiles: [mini]")
        value = item.get("paper_value")
        claims.append(Claim(paper=paper, index=i, text=" ".join(item["text"].split()), task=item["task"],
                            treatment=item["treatment"], control=item["control"], direction=direction,
                            metric=item.get("metric"), source=item.get("source"),
                            paper_value=None if value is None else str(value),
                            expected_effect=None if effect is None else float(effect),
                            profiles=None if profiles is None else tuple(profiles)))
    return claims


def pairs(treatment: list, control: list) -> list[tuple[Any, Any]]:
    """(treatment run, control run) pairs of two arms (lists of experiments): runs of the same seed; an arm of one
    run (untrained, or trained without seeds) is paired with every run of the other."""
    if len(treatment) == 1 or len(control) == 1:
        return list(itertools.product(treatment, control))
    by_seed = {e.seed: e for e in control}
    return [(t, by_seed[t.seed]) for t in treatment if t.seed in by_seed]


@functools.lru_cache(maxsize=1)
def repo_profiles() -> frozenset[str]:
    """The ``profile`` names of the repository's profiles (``config/*.yaml``)."""
    names = set()
    for path in (REPO / "config").glob("*.yaml"):
        raw = yaml.safe_load(path.read_text())
        if isinstance(raw, dict) and isinstance(raw.get("profile"), str):
            names.add(raw["profile"])
    return frozenset(names)


def profile_claims(profile: Profile, paper: str, meta: dict | None = None) -> list[Claim]:
    """The paper's claims whose treatment and control are experiments of ``paper`` in ``profile``; a claim whose task
    an arm does not evaluate, or whose arms share no seed, fails naming the claim and key."""
    meta = paper_meta(paper) if meta is None else meta
    groups = profile.groups(paper)
    found = []
    for claim in parse_claims(paper, meta):
        unknown = sorted(set(claim.profiles or ()) - repo_profiles() - {profile.name})
        if unknown:  # a misspelt name would leave the claim untested everywhere, silently
            raise ClaimError(f"{claim.where}.profiles names {unknown}, which is no profile (config/*.yaml: "
                             f"{sorted(repo_profiles())}, and this one, {profile.name!r}): fix the name")
        if claim.treatment not in groups or claim.control not in groups:
            continue  # this profile does not run the comparison
        if claim.profiles is not None and profile.name not in claim.profiles:
            continue  # another profile's version of the claim
        for key in ("treatment", "control"):
            arm = groups[getattr(claim, key)]
            if claim.task not in arm[0].eval_tasks:
                raise ClaimError(f"{claim.where}.task = {claim.task!r} is not an eval task of its {key} "
                                 f"{arm[0].group!r} in {profile.path} (eval_tasks: {arm[0].eval_tasks}): name a task "
                                 "both arms evaluate, or add it to their eval_tasks")
        if not pairs(groups[claim.treatment], groups[claim.control]):
            seeds = {k: [e.seed for e in groups[getattr(claim, k)]] for k in ("treatment", "control")}
            raise ClaimError(f"{claim.where}: its treatment {claim.treatment!r} (seeds {seeds['treatment']}) and "
                             f"control {claim.control!r} (seeds {seeds['control']}) in {profile.path} share no seed: "
                             "give both the same seeds")
        found.append(claim)
    return found


def check_profile_claims(profile: Profile) -> int:
    """Every paper's claims that apply to ``profile`` (the number of them); raises :class:`ClaimError`."""
    return sum(len(profile_claims(profile, paper)) for paper in profile.papers())


# --- evaluation -------------------------------------------------------------------------------------------------

def problem_scores(result_path: Path, metric: str) -> dict[Any, float] | None:
    """Per-problem scores of ``metric`` from an evaluation's samples file (``<result>.samples.jsonl``): lm-eval rows
    ``{id, metrics: {metric: value}}``, or a game's per-episode rows ``{id, success, return, length, ...}`` (the
    repeats of one id averaged). None when there is no samples file or it holds no score of ``metric``. A row
    without an id is keyed by its position (the task's problem order is fixed)."""
    path = samples_path(result_path)
    if not path.is_file():
        return None
    sums: dict[Any, list[float]] = {}
    for i, row in enumerate(read_jsonl(path)):
        if isinstance(row.get("metrics"), dict):
            if metric not in row["metrics"]:
                continue
            value = float(row["metrics"][metric])
        elif metric in GAME_SCORES:
            try:
                value = GAME_SCORES[metric](row)
            except (KeyError, TypeError, ValueError, ZeroDivisionError):
                continue
        else:
            continue
        key = row.get("id") if row.get("id") is not None else f"#{i}"
        sums.setdefault(key, []).append(value)
    return {k: sum(v) / len(v) for k, v in sums.items()} or None


def headline_metric(metrics) -> str:
    from .report import HEADLINE

    metrics = list(metrics)
    return next(m for m in (*HEADLINE, *metrics) if m in metrics)


def verdict(n_treatment: int | None, n_control: int | None, p_bootstrap: float | None, difference: float | None,
            mde_value: float | None, expected_effect: float | None, direction: str = "greater",
            show=lambda x: f"{x:.3g}") -> str:
    """The verdict of one claim (:data:`VERDICT_RULES`); ``n_*``: training seeds of a trained arm (None: untrained),
    ``difference``: the observed treatment - control of the bootstrap, ``show`` formats the MDE."""
    if any(n is not None and n < MIN_SEEDS for n in (n_treatment, n_control)):
        return f"inconclusive (n seeds < {MIN_SEEDS})"
    if p_bootstrap is None or difference is None:
        return "inconclusive (no per-problem scores)"
    if p_bootstrap < ALPHA:
        claimed = difference > 0 if direction == "greater" else difference < 0
        return "reproduced" if claimed else "not reproduced (opposite)"
    if mde_value == 0:  # every problem scored alike in both arms: the bootstrap has no spread to size an effect by
        return "inconclusive at this power (no problem's score differs)"
    if expected_effect is not None and mde_value is not None and mde_value <= expected_effect:
        return f"not reproduced (MDE {show(mde_value)} ≤ {show(expected_effect)})"
    return "inconclusive at this power" + (f" (MDE {show(mde_value)})" if mde_value is not None else "")


def scale_of(metric: str) -> tuple[float, str]:
    """(display factor, unit) of a metric: points for proportions, the metric's own unit otherwise."""
    return (1.0, "") if metric in RAW_UNIT_METRICS else (100.0, " pts")


def evaluate_claim(profile: Profile, claim: Claim, results: Path) -> dict[str, Any]:
    """One verdict row: the arms' per-seed metric values and per-problem scores, the seed-level t-test, the
    seed × problem bootstrap (and, in the CSV only, the pooled problem bootstrap), the MDE and the verdict."""
    from .report import ReportError, read_result

    groups = profile.groups(claim.paper)
    arms = {key: groups[getattr(claim, key)] for key in ("treatment", "control")}
    runs: dict[str, dict] = {}
    for arm in arms.values():
        for exp in arm:
            path = profile.eval_path(results, exp.name, claim.task)
            runs[exp.name] = {"path": path, "result": read_result(path)}
    metric = claim.metric or headline_metric(runs[arms["treatment"][0].name]["result"]["metrics"])
    for name, run in runs.items():
        if metric not in run["result"]["metrics"]:
            raise ReportError(f"{claim.where}.metric = {metric!r}: {run['path']} has no such metric (it has "
                              f"{sorted(run['result']['metrics'])}): name one of them")
        run["value"] = float(run["result"]["metrics"][metric]["value"])
    paired = pairs(arms["treatment"], arms["control"])
    diffs = [runs[t.name]["value"] - runs[c.name]["value"] for t, c in paired]
    mean, se = stats.mean_se(diffs)
    ttest = stats.one_sample_t_test(diffs) if len(diffs) >= 2 else None
    boot = pooled = None
    scores = {name: problem_scores(run["path"], metric) for name, run in runs.items()}
    if all(s is not None for s in scores.values()):
        ids, matrix = stats.problem_differences([(scores[t.name], scores[c.name]) for t, c in paired])
        if ids:
            boot = stats.seed_problem_bootstrap(matrix)
            pooled = stats.paired_bootstrap(matrix)  # seeds held fixed: shown in the CSV, not a verdict
    mde_value = stats.mde(boot.se) if boot is not None else None
    n_seeds = {key: None if arm[0].train is None else len(arm) for key, arm in arms.items()}
    factor, unit = scale_of(metric)
    return {
        "paper": claim.paper, "claim": claim.index, "text": claim.text, "source": claim.source, "task": claim.task,
        "metric": metric, "treatment": claim.treatment, "control": claim.control, "direction": claim.direction,
        "treatment_label": arms["treatment"][0].group_label, "control_label": arms["control"][0].group_label,
        "paper_value": claim.paper_value, "expected_effect": claim.expected_effect,
        "n_treatment": n_seeds["treatment"], "n_control": n_seeds["control"], "n_pairs": len(paired),
        "diff_mean": mean, "diff_se": se,
        "t": None if ttest is None else ttest.t, "df": None if ttest is None else ttest.df,
        "p_seed": None if ttest is None else ttest.p,
        "n_problems": None if boot is None else boot.n_problems,
        "boot_diff": None if boot is None else boot.mean, "boot_se": None if boot is None else boot.se,
        "p_bootstrap": None if boot is None else boot.p, "mde": mde_value,
        "p_problems_pooled": None if pooled is None else pooled.p,
        "verdict": verdict(n_seeds["treatment"], n_seeds["control"], None if boot is None else boot.p,
                           None if boot is None else boot.mean, mde_value, claim.expected_effect, claim.direction,
                           show=lambda x: f"{factor * x:.3g}{unit}"),
    }


def format_p(p: float | None) -> str:
    if p is None:
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def verdict_table(rows: list[dict[str, Any]]) -> list[str]:
    """The markdown verdict table (one row per claim) and the rules under it."""
    if not rows:
        return []
    lines = ["| claim | paper | ours: treatment − control (mean ± SE over seeds) | seeds | "
             "p (seed t / seed × problem bootstrap) | verdict |", "|---|---|---|---|---|---|"]
    for r in rows:
        factor, unit = scale_of(r["metric"])
        ours = f"{factor * r['diff_mean']:+.1f}" if factor != 1 else f"{r['diff_mean']:+.3g}"
        if r["diff_se"] is not None:
            ours += f" ± {factor * r['diff_se']:.1f}" if factor != 1 else f" ± {r['diff_se']:.3g}"
        ours += unit
        seeds = " / ".join("untrained" if n is None else str(n) for n in (r["n_treatment"], r["n_control"]))
        if r["n_treatment"] and r["n_control"] and r["n_pairs"] < max(r["n_treatment"], r["n_control"]):
            seeds += f" ({r['n_pairs']} paired)"
        claim = (f"{r['text']} ({r['source'] + '; ' if r['source'] else ''}{r['task']} {r['metric']}: "
                 f"{r['treatment_label']} vs {r['control_label']}"
                 + ("" if r["direction"] == "greater" else ", claimed lower") + ")")
        lines.append(f"| {claim} | {r['paper_value'] or '—'} | {ours} | {seeds} | {format_p(r['p_seed'])} / "
                     f"{format_p(r['p_bootstrap'])} | {r['verdict']} |")
    return lines + ["", VERDICT_RULES]


def summary_table(profile: Profile, results: Path, meta=paper_meta) -> list[str]:
    """Every paper's verdicts in one table (the README's results open with it): read back from the papers'
    ``<results>/<paper>/verdicts.csv``, as their reports wrote them; a paper whose claims this profile tests but
    whose report is not made yet gets a row saying so. Each row names the command that makes its verdict."""
    import pandas as pd

    lines = ["| paper | claim | paper's number | ours: treatment − control (mean ± SE over seeds) | seeds | "
             "p (seed t / seed × problem bootstrap) | verdict | made by |", "|---|---|---|---|---|---|---|---|"]
    for paper in profile.papers():
        tested = profile_claims(profile, paper, meta(paper))
        if not tested:
            continue
        command = (f"`snakemake --cores 2 {results}/{paper}/table.md --configfile config/{profile.name}.yaml`")
        path = Path(results) / paper / "verdicts.csv"
        rows = pd.read_csv(path).astype(object).where(lambda d: d.notna(), None).to_dict("records") \
            if path.is_file() else []
        for row in rows:  # counts come back from the CSV as floats
            row.update({k: int(row[k]) for k in ("claim", "n_treatment", "n_control", "n_pairs") if row[k] is not None})
        done = {row["claim"]: row for row in rows}
        for claim in tested:
            row = done.get(claim.index)
            if row is None:
                lines.append(f"| {paper} | {claim.text} | {claim.paper_value or '—'} | not run yet | | | | "
                             f"{command} |")
                continue
            table_row = verdict_table([row])[2]  # the report's row: claim | paper | ours | seeds | p | verdict
            lines.append(f"| {paper} {table_row} {command} |")
    return lines
