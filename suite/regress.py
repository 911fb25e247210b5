"""Regression check: fresh results against committed baselines, per-metric tolerances.

Scores are read from every ``<results>/<paper>/table.csv`` (evaluation metrics and the
last training step's metrics) and compared with ``<baseline>/<paper>/table.csv``.
A score drifts when ``|fresh - baseline| > abs + rel * |baseline|`` for its metric's
tolerance (``config/tolerances.yaml``; metrics under ``ignore`` are skipped). Missing and unexpected scores also fail.
Exit code 0 = no drift, 1 = drift (a readable diff is printed).

Refresh the baselines after an intended change with ``--update`` (then commit them).

**The machine a baseline holds for.** ``--update`` also writes ``<baseline>/machine.json``: the CPU model, torch's
CPU capability, whether it computes bf16 natively, and the torch version. The smoke's tiny-model runs are exact on
one kind of machine but not across kinds: fp32 kernels round differently on an AMD EPYC and an Intel Xeon, the
warmed-up model and every RL run then sample other tokens, and scores move far beyond any useful tolerance
(measured: the same commit's GRPO smoke run ends at reward 0.4375 on one and 0.8125 on the other). So the values are
compared only when the checking machine is of the baseline's kind; on another kind the check says so and verifies
what still holds there: every baseline score is present, no unexpected one appears, and every value is a finite
number (proportions within [0, 1]). A baseline without ``machine.json`` is compared on any machine.

Bad inputs fail with :class:`RegressError` naming the file (and row): a missing results or baseline
folder, a table without the needed columns, a value that is not a number, the same score twice.
A score whose value is empty on both sides is equal; empty on one side only is a drift.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import yaml

KEY = ["experiment", "task", "metric"]


class RegressError(ValueError):
    pass


def update_hint(results, baseline) -> str:
    return f"python -m suite regress --results {results} --baseline {baseline} --update"


def read_table(path: Path) -> pd.DataFrame:
    """One ``table.csv``, checked: the key and value columns, numeric values, each score once."""
    try:
        table = pd.read_csv(path, dtype={"value": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise RegressError(f"{path}: not a readable CSV table ({err}); write it again "
                           "(delete it and rerun the report)") from None
    missing = [c for c in (*KEY, "value") if c not in table.columns]
    if missing:
        raise RegressError(f"{path}: no column(s) {missing} (it has {list(table.columns)}); "
                           "a table written by the report has them: delete it and rerun the report")
    text = table["value"].str.strip()
    values = pd.to_numeric(text, errors="coerce")
    bad = values.isna() & text.notna() & (text != "")
    if bad.any():
        i = bad.idxmax()
        raise RegressError(f"{path}, line {i + 2} ({', '.join(f'{k}={table.at[i, k]}' for k in KEY)}): "
                           f"value {table.at[i, 'value']!r} is not a number; fix the row or write the table again")
    dup = table.duplicated(KEY, keep="first")
    if dup.any():
        i = dup.idxmax()
        first = table.index[(table[KEY] == table.loc[i, KEY]).all(axis=1)][0]
        raise RegressError(f"{path}, line {i + 2}: the score ({', '.join(f'{k}={table.at[i, k]}' for k in KEY)}) "
                           f"appears twice (lines {first + 2} and {i + 2}); keep one of them")
    return table.assign(value=values)


def tables(root: Path) -> list[Path]:
    return sorted(Path(root).glob("*/table.csv"))


def load_scores(root: Path, role: str = "results", hint: str = "") -> pd.DataFrame:
    root = Path(root)
    found = tables(root)
    if not found:
        what = "does not exist" if not root.exists() else "holds no <paper>/table.csv"
        raise RegressError(f"{role} folder {root} {what}" + (f": {hint}" if hint else ""))
    frames = [read_table(t).assign(paper=t.parent.name) for t in found]
    return pd.concat(frames, ignore_index=True)[["paper", *KEY, "value"]]


def tolerance(tolerances: dict, metric: str) -> tuple[float, float]:
    spec = {**tolerances.get("default", {}), **tolerances.get("metrics", {}).get(metric, {})}
    return float(spec.get("abs", 0.0)), float(spec.get("rel", 0.0))


def compare(fresh: pd.DataFrame, baseline: pd.DataFrame, tolerances: dict) -> pd.DataFrame:
    """One row per score with its baseline, fresh value, allowed drift and status."""
    merged = baseline.merge(fresh, on=["paper", *KEY], how="outer", suffixes=("_baseline", "_fresh"),
                            indicator=True)
    statuses, allowed = [], []
    for _, row in merged.iterrows():
        abs_tol, rel_tol = tolerance(tolerances, row.metric)
        limit = abs_tol + rel_tol * abs(row.value_baseline) if pd.notna(row.value_baseline) else float("nan")
        allowed.append(limit)
        if row._merge == "right_only":
            statuses.append("NEW (not in baseline)")
        elif row._merge == "left_only":
            statuses.append("MISSING (not in fresh results)")
        elif pd.isna(row.value_baseline) and pd.isna(row.value_fresh):
            statuses.append("ok")  # empty on both sides (e.g. a metric a run does not log)
        elif pd.isna(row.value_baseline) or pd.isna(row.value_fresh):
            statuses.append("DRIFT (empty on one side)")
        elif abs(row.value_fresh - row.value_baseline) > limit:
            statuses.append("DRIFT")
        else:
            statuses.append("ok")
    return merged.drop(columns="_merge").assign(allowed=allowed, status=statuses)


MACHINE_FILE = "machine.json"
MACHINE_KEYS = ("cpu", "cpu_capability", "native_bf16_cpu", "torch")
PROPORTIONS = {"acc", "pass_at_k", "em", "f1", "success_rate", "invalid_action_rate", "inst_acc", "final_accuracy"}


def this_machine() -> dict:
    from .precision import describe_hardware

    info = describe_hardware()
    return {k: info[k] for k in MACHINE_KEYS}


def baseline_machine(baseline: Path) -> dict | None:
    path = Path(baseline) / MACHINE_FILE
    if not path.is_file():
        return None
    try:
        machine = json.loads(path.read_text())
    except ValueError as err:
        raise RegressError(f"{path}: not valid JSON ({err}); rewrite it with --update or delete it") from None
    if not isinstance(machine, dict):
        raise RegressError(f"{path}: expected a mapping of {list(MACHINE_KEYS)}; rewrite it with --update")
    return machine


def structure_check(report: pd.DataFrame) -> pd.DataFrame:
    """On another kind of machine, :func:`compare`'s statuses with a value drift no longer a failure: a score still
    fails when missing, new, empty on one side only, not a finite number, or a proportion outside [0, 1]."""
    statuses = []
    for _, row in report.iterrows():
        if row.status not in ("ok", "DRIFT") or pd.isna(row.value_fresh):
            statuses.append(row.status)
        elif not math.isfinite(row.value_fresh):
            statuses.append("NOT FINITE")
        elif row.metric in PROPORTIONS and not 0.0 <= row.value_fresh <= 1.0:
            statuses.append("OUT OF [0, 1]")
        else:
            statuses.append("ok")
    return report.assign(status=statuses)


def main(results: str, baseline: str, tolerances_path: str, update: bool = False) -> int:
    run_first = "make them first (snakemake --cores all --configfile config/<profile>.yaml)"
    if update:
        fresh_tables = tables(Path(results))
        if not fresh_tables:
            load_scores(Path(results), "results", f"nothing to update the baseline from; {run_first}")
        for table in fresh_tables:
            read_table(table)  # a bad table is not copied over a good baseline
        for table in fresh_tables:
            target = Path(baseline) / table.parent.name / "table.csv"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(table, target)
            print(f"baseline updated: {target}")
        machine = Path(baseline) / MACHINE_FILE
        machine.write_text(json.dumps(this_machine(), indent=1) + "\n")
        print(f"baseline machine recorded: {machine} ({this_machine()['cpu']})")
        return 0
    if not Path(tolerances_path).is_file():
        raise RegressError(f"tolerances file {tolerances_path} does not exist; pass --tolerances "
                           "(the repository's is config/tolerances.yaml)")
    tolerances = yaml.safe_load(Path(tolerances_path).read_text()) or {}
    ignore = set(tolerances.get("ignore", []))
    fresh = load_scores(Path(results), "results", run_first)
    base = load_scores(Path(baseline), "baseline",
                       f"create it from fresh results with `{update_hint(results, baseline)}` (then commit it)")
    report = compare(fresh[~fresh.metric.isin(ignore)], base[~base.metric.isin(ignore)], tolerances)
    recorded, here = baseline_machine(Path(baseline)), this_machine()
    if recorded is not None and any(recorded.get(k) != here[k] for k in MACHINE_KEYS):
        moved = int((report.status == "DRIFT").sum())
        report = structure_check(report)
        bad = report[report.status != "ok"]
        print(f"the baseline {baseline} was made on another kind of machine: "
              + "; ".join(f"{k} {recorded.get(k)!r} there, {here[k]!r} here" for k in MACHINE_KEYS
                          if recorded.get(k) != here[k])
              + f".\nScores are exact only on one kind of machine, so their values are not compared here ({moved} "
              "differ beyond the same-machine tolerances); checked: every score present, none unexpected, finite, "
              "proportions within [0, 1].")
        if bad.empty:
            print(f"regression check passed (structure only): {len(report)} scores")
            return 0
        print(f"regression check FAILED: {len(bad)} of {len(report)} scores\n")
        print(bad[["paper", *KEY, "value_baseline", "value_fresh", "status"]].to_string(
            index=False, float_format=lambda v: f"{v:.4f}"))
        return 1
    bad = report[report.status != "ok"]
    if bad.empty:
        print(f"regression check passed: {len(report)} scores within tolerance of {baseline}")
        return 0
    view = bad.assign(delta=bad.value_fresh - bad.value_baseline)[
        ["paper", *KEY, "value_baseline", "value_fresh", "delta", "allowed", "status"]]
    print(f"regression check FAILED: {len(bad)} of {len(report)} scores differ from {baseline}\n")
    print(view.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print("\nIf the change is intended, refresh the baseline: python -m suite regress "
          f"--results {results} --baseline {baseline} --update, and commit it.")
    return 1
