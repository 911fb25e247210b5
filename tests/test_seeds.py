"""Seeds in profiles (one run per seed), the claims' verdicts and the report's seed aggregation (README: Seeds and
verdicts), on fabricated results trees."""

import copy
import json
import math
import re

import pandas as pd
import pytest
import yaml

from suite import claims, report
from suite.config import ConfigError, load_profile, parse_profile

TRAIN = {"steps": 3, "prompts_per_step": 2, "group_size": 4, "lr": 2.0e-5, "max_new_tokens": 32}


def toy_raw(tmp_path, treat_seeds=(0, 1, 2), ctrl_seeds=(0, 1, 2)):
    """A profile of paper ``toy``: the untrained model, a treatment and a control (seeded unless None)."""
    experiments = {"toy_base": {"paper": "toy", "method": "base", "label": "untrained", "eval_tasks": ["gsm8k"]}}
    for name, label, seeds in (("treat", "Treatment", treat_seeds), ("ctrl", "Control", ctrl_seeds)):
        experiments[name] = {"paper": "toy", "method": "grpo", "label": label, "eval_tasks": ["gsm8k"],
                             "train": dict(TRAIN)}
        if seeds is not None:
            experiments[name]["seeds"] = list(seeds)
    return {"profile": "t", "model": "tiny-llama", "data": {"dir": str(tmp_path / "data")},
            "runs_dir": str(tmp_path / "runs"), "results_dir": str(tmp_path / "res"),
            "eval": {"seed": 7, "tasks": {"gsm8k": {"limit": 2}}}, "experiments": experiments}


# --- expansion -------------------------------------------------------------------------------------------------

def test_seeds_expand_into_one_experiment_per_seed(tmp_path):
    profile = parse_profile(toy_raw(tmp_path, treat_seeds=[3, 0, 11], ctrl_seeds=None))
    assert list(profile.experiments) == ["toy_base", "treat_s3", "treat_s0", "treat_s11", "ctrl"]
    for seed in (3, 0, 11):
        exp = profile.experiments[f"treat_s{seed}"]
        assert (exp.group, exp.seed, exp.label, exp.group_label) == ("treat", seed, f"Treatment (seed {seed})",
                                                                     "Treatment")
        assert exp.train.seed == seed and exp.train.experiment == exp.name and exp.train.steps == 3
    # unseeded experiments are their own group of one, with TrainConfig's default seed
    ctrl = profile.experiments["ctrl"]
    assert (ctrl.group, ctrl.seed, ctrl.label, ctrl.group_label, ctrl.train.seed) == ("ctrl", None, "Control",
                                                                                       "Control", 0)
    assert profile.experiments["toy_base"].group == "toy_base"
    assert {g: [e.name for e in m] for g, m in profile.groups("toy").items()} == {
        "toy_base": ["toy_base"], "treat": ["treat_s3", "treat_s0", "treat_s11"], "ctrl": ["ctrl"]}
    # each seed is its own run: its own config hash, the evaluation path by name
    assert len({profile.experiments[f"treat_s{s}"].train.hash() for s in (3, 0, 11)}) == 3
    assert profile.eval_path(tmp_path, "treat_s0", "gsm8k") == tmp_path / "evals" / "treat_s0" / "gsm8k.json"
    assert profile.experiment("treat_s11").seed == 11


def test_train_defaults_seed_is_overridden_by_seeds(tmp_path):
    raw = toy_raw(tmp_path)
    raw["train_defaults"] = {"seed": 5}
    profile = parse_profile(raw)
    assert [profile.experiments[f"ctrl_s{s}"].train.seed for s in (0, 1, 2)] == [0, 1, 2]


@pytest.mark.parametrize("seeds, why", [
    ([], r"must be a non-empty list of integers >= 0"),
    ([0, -1], r"must be a non-empty list of integers >= 0"),
    ([0, True], r"must be a non-empty list of integers >= 0"),
    ([0, 1.5], r"must be a non-empty list of integers >= 0"),
    ("0, 1", r"must be a non-empty list of integers >= 0"),
    ([0, 1, 0], r"repeats \[0\]"),
])
def test_bad_seeds_name_the_key(tmp_path, seeds, why):
    raw = toy_raw(tmp_path)
    raw["experiments"]["treat"]["seeds"] = seeds
    with pytest.raises(ConfigError, match=r"p\.yaml: experiments\.treat\.seeds.*" + why):
        parse_profile(raw, "p.yaml")


def test_seeds_are_refused_where_they_mean_nothing_naming_the_fix(tmp_path):
    raw = toy_raw(tmp_path)
    raw["experiments"]["toy_base"]["seeds"] = [0, 1]
    with pytest.raises(ConfigError, match=r"experiments\.toy_base\.seeds: method 'base' is not trained.*eval\.seed"
                                          r".*remove seeds"):
        parse_profile(raw, "p.yaml")
    raw = toy_raw(tmp_path)
    raw["experiments"]["treat"]["train"]["seed"] = 4
    with pytest.raises(ConfigError, match=r"experiments\.treat\.seeds and experiments\.treat\.train\.seed are both "
                                          r"set.*remove train\.seed"):
        parse_profile(raw, "p.yaml")
    raw = toy_raw(tmp_path)
    raw["experiments"]["treat_s1"] = copy.deepcopy(raw["experiments"]["ctrl"])
    with pytest.raises(ConfigError, match=r"experiments\.treat\.seeds: seed 1 makes the experiment 'treat_s1', which "
                                          r"the profile already has"):
        parse_profile(raw, "p.yaml")


def test_a_bad_training_value_of_a_seeded_experiment_names_the_declared_key(tmp_path):
    raw = toy_raw(tmp_path)
    raw["experiments"]["treat"]["train"]["lr"] = 2.0
    with pytest.raises(ConfigError, match=r"^p\.yaml: experiments\.treat\.train\.lr = 2\.0 must be in \(0, 1\)"):
        parse_profile(raw, "p.yaml")
    raw = toy_raw(tmp_path)
    raw["experiments"]["treat"]["train"]["algo"] = {"nope": 1}
    with pytest.raises(ConfigError, match=r"^p\.yaml: experiments\.treat\.train\.algo: method 'grpo' takes no options"):
        parse_profile(raw, "p.yaml")


def test_sft_on_rl_traces_reads_the_run_of_its_own_seed(tmp_path):
    raw = toy_raw(tmp_path)
    raw["experiments"]["sft"] = {"paper": "toy", "method": "sft", "eval_tasks": ["gsm8k"], "seeds": [1, 2],
                                 "train": {**TRAIN, "algo": {"data": "rl_traces", "traces_from": "treat"}}}
    profile = parse_profile(raw)
    assert [profile.experiments[f"sft_s{s}"].train.algo["traces_from"] for s in (1, 2)] == ["treat_s1", "treat_s2"]
    raw["experiments"]["sft"]["seeds"] = [1, 5]
    with pytest.raises(ConfigError, match=r"experiments\.sft\.train\.algo\.traces_from = 'treat' names an experiment "
                                          r"with seeds \[0, 1, 2\]: give 'sft' seeds from that list"):
        parse_profile(raw, "p.yaml")


def test_the_profiles_validate_with_their_claims():
    smoke = load_profile("config/smoke.yaml")
    assert [e.name for e in smoke.groups()["exgrpo"]] == ["exgrpo_s0", "exgrpo_s1", "exgrpo_s2"]
    assert [e.train.seed for e in smoke.groups()["exgrpo_onpolicy"]] == [0, 1, 2]
    tested = {paper: [(c.treatment, c.control) for c in claims.profile_claims(smoke, paper)]
              for paper in smoke.papers()}
    assert tested["exgrpo"] == [("exgrpo", "exgrpo_onpolicy")]
    assert tested["msgrpo"] == [("msgrpo_aaw_fl", "msgrpo_base")]
    assert claims.check_profile_claims(smoke) == 2
    # the claims profile tests one claim of each of the five papers (Retaining by Doing's on two probes), each
    # with 3 seeds in every trained arm
    seeded = load_profile("config/claims.yaml")
    found = {paper: claims.profile_claims(seeded, paper) for paper in seeded.papers()}
    assert {paper: [(c.treatment, c.control) for c in cs] for paper, cs in found.items()} == {
        "exgrpo": [("exgrpo", "exgrpo_onpolicy")], "cooper": [("cooper", "cooper_static")],
        "igpo": [("igpo", "igpo_grpo_f1")], "retaining": [("rbd_rl_ifeval_like", "rbd_sft_ifeval_like")] * 2,
        "msgrpo": [("msgrpo_aaw_fl", "msgrpo_fl")]}
    assert [c.task for c in found["retaining"]] == ["mmlu_reason", "arc_challenge"]
    # MS-GRPO's arms start from one format warm start (docs/claims.md), which is not seeded
    assert {e.train.init_from for arm in ("msgrpo_fl", "msgrpo_aaw_fl") for e in seeded.groups()[arm]} == {"msgrpo_warm"}
    for cs in found.values():
        for c in cs:
            for arm in (c.treatment, c.control):
                group = seeded.groups()[arm]
                assert group[0].train is None or [e.seed for e in group] == [0, 1, 2]


def test_a_claims_profiles_key_limits_it_to_those_profiles(tmp_path):
    profile = parse_profile(toy_raw(tmp_path))  # profile "t"
    meta = {"claims": [{**CLAIM, "profiles": ["mini"]}, {**CLAIM, "text": "mine", "profiles": ["t", "mini"]}]}
    assert [c.text for c in claims.profile_claims(profile, "toy", meta)] == ["mine"]
    # a claim for another profile may name a task this profile does not evaluate
    meta = {"claims": [{**CLAIM, "task": "math500", "profiles": ["paper"]}]}
    assert claims.profile_claims(profile, "toy", meta) == []
    # a name that is no profile (config/*.yaml, or the profile at hand) fails instead of leaving the claim untested
    with pytest.raises(claims.ClaimError, match=r"toy\.claims\[0\]\.profiles names \['mnii'\], which is no "
                                                r"profile \(config/\*\.yaml: \[.*'mini'.*\], and this one, 't'\): "
                                                r"fix the name"):
        claims.profile_claims(profile, "toy", {"claims": [{**CLAIM, "profiles": ["mnii", "t"]}]})
    with pytest.raises(claims.ClaimError, match=r"toy\.claims\[0\]\.profiles = 'mini' must be a non-empty list"):
        claims.profile_claims(profile, "toy", {"claims": [{**CLAIM, "profiles": "mini"}]})


# --- claims -----------------------------------------------------------------------------------------------------

CLAIM = {"text": "the treatment  beats the control", "source": "abstract", "task": "gsm8k", "treatment": "treat",
         "control": "ctrl", "paper_value": "+10 points"}


def test_bad_claims_name_the_paper_the_index_and_the_key(tmp_path):
    profile = parse_profile(toy_raw(tmp_path))
    bad = [({"compare": ["treat", "ctrl"]}, r"toy\.claims\[1\]: unknown key\(s\) \['compare'\]"),
           ({"direction": "up"}, r"toy\.claims\[1\]\.direction = 'up' must be one of \['greater', 'less'\]"),
           ({"expected_effect": -1}, r"toy\.claims\[1\]\.expected_effect = -1 must be a number > 0"),
           ({"task": None}, r"toy\.claims\[1\]\.task is missing"),
           ({"control": "treat"}, r"toy\.claims\[1\]: treatment and control are both 'treat'"),
           ({"task": "math500"}, r"toy\.claims\[1\]\.task = 'math500' is not an eval task of its treatment 'treat'")]
    for change, message in bad:
        meta = {"claims": [CLAIM, {**CLAIM, **change}]}
        with pytest.raises(claims.ClaimError, match=r"config/paper_numbers\.yaml: " + message):
            claims.profile_claims(profile, "toy", meta)
    # a claim whose arms this profile does not run is left out
    assert claims.profile_claims(profile, "toy", {"claims": [{**CLAIM, "control": "elsewhere"}]}) == []
    # arms with seeds but none in common
    other = parse_profile(toy_raw(tmp_path, treat_seeds=[0, 1, 2], ctrl_seeds=[3, 4, 5]))
    with pytest.raises(claims.ClaimError, match=r"toy\.claims\[0\]: its treatment 'treat' \(seeds \[0, 1, 2\]\) and "
                                                r"control 'ctrl' \(seeds \[3, 4, 5\]\).*share no seed"):
        claims.profile_claims(other, "toy", {"claims": [CLAIM]})


def test_the_verdict_rules():
    v = claims.verdict
    assert v(2, 3, 0.001, 0.2, 0.01, 0.05) == "inconclusive (n seeds < 3)"
    assert v(3, 1, 0.001, 0.2, 0.01, 0.05) == "inconclusive (n seeds < 3)"
    assert v(3, None, 0.001, 0.2, 0.01, 0.05) == "reproduced"  # an untrained control needs no seeds
    assert v(3, 3, 0.001, -0.2, 0.01, 0.05) == "not reproduced (opposite)"
    assert v(3, 3, 0.001, -0.2, 0.01, 0.05, direction="less") == "reproduced"
    assert v(3, 3, 0.3, 0.01, 0.04, 0.05) == "not reproduced (MDE 0.04 ≤ 0.05)"
    assert v(3, 3, 0.3, 0.01, 0.06, 0.05, show=lambda x: f"{100 * x:.3g} pts") == \
        "inconclusive at this power (MDE 6 pts)"
    assert v(3, 3, 0.3, 0.01, 0.04, None).startswith("inconclusive at this power (MDE")
    assert v(3, 3, 1.0, 0.0, 0.0, 0.05) == "inconclusive at this power (no problem's score differs)"
    assert v(3, 3, None, None, None, 0.05) == "inconclusive (no per-problem scores)"


# --- the report on a fabricated results tree ----------------------------------------------------------------------

def write_run(res, runs, name, scores, trained=True, log_offset=0.0):
    """One run's evaluation (results JSON + per-problem samples) and, when trained, its training log."""
    folder = res / "evals" / name
    folder.mkdir(parents=True, exist_ok=True)
    mean = sum(scores) / len(scores)
    se = math.sqrt(sum((s - mean) ** 2 for s in scores) / (len(scores) - 1) / len(scores))
    (folder / "gsm8k.json").write_text(json.dumps({"metrics": {"acc": {"value": mean, "stderr": se}},
                                                   "n": len(scores)}))
    (folder / "gsm8k.json.samples.jsonl").write_text("".join(
        json.dumps({"id": f"q{i}", "prompt": "p", "answers": ["1"], "responses": ["1"], "metrics": {"acc": s}}) + "\n"
        for i, s in enumerate(scores)))
    if trained:
        (runs / name).mkdir(parents=True, exist_ok=True)
        (runs / name / "metrics.jsonl").write_text("".join(
            json.dumps({"step": s, "reward": s / 10 + log_offset, "accuracy": s / 10, "step_time": 1.0}) + "\n"
            for s in (1, 2, 3)))


def n_right(k, n=40, shift=0):
    """n problems, the k from ``shift`` on right (wrapping)."""
    return [1.0 if (i - shift) % n < k else 0.0 for i in range(n)]


# (treatment scores per seed, control scores per seed, expected_effect, direction, verdict)
OUTCOMES = {
    "reproduced": ([n_right(30), n_right(31), n_right(29)], [n_right(10), n_right(12), n_right(11)], 0.05,
                   "greater", "reproduced"),
    "opposite": ([n_right(10), n_right(12), n_right(11)], [n_right(30), n_right(31), n_right(29)], 0.05,
                 "greater", "not reproduced (opposite)"),
    "less": ([n_right(10), n_right(12), n_right(11)], [n_right(30), n_right(31), n_right(29)], 0.05,
             "less", "reproduced"),
    # the arms differ on 2 of 40 problems, once each way: no effect, and an effect of 0.5 would have been seen
    "not_reproduced": ([n_right(20), n_right(20), n_right(20)], [n_right(20, shift=1)] * 3, 0.5, "greater",
                       "not reproduced"),
    "low_power": ([n_right(20), n_right(20), n_right(20)], [n_right(20, shift=1)] * 3, 0.01, "greater",
                  "inconclusive at this power (MDE"),
    "identical": ([n_right(20)] * 3, [n_right(20)] * 3, 0.05, "greater",
                  "inconclusive at this power (no problem's score differs)"),
    # two seeds gain 20 of 40 problems, the third none: pooling the seeds' problems would say p = 0, but one seed
    # in three shows no effect, which a resample of the seeds reaches in 1 of 27 draws (p about 0.07)
    "one_seed_disagrees": ([n_right(30), n_right(30), n_right(10)], [n_right(10)] * 3, 0.05, "greater",
                           "inconclusive at this power (MDE"),
}


def build(tmp_path, monkeypatch, treat, ctrl, claim, treat_seeds=(0, 1, 2), ctrl_seeds=(0, 1, 2)):
    profile = parse_profile(toy_raw(tmp_path, treat_seeds=treat_seeds, ctrl_seeds=ctrl_seeds))
    res, runs = tmp_path / "res", tmp_path / "runs"
    write_run(res, runs, "toy_base", n_right(5), trained=False)
    for group, scores in (("treat", treat), ("ctrl", ctrl)):
        for exp, s in zip(profile.groups()[group], scores):
            write_run(res, runs, exp.name, s, log_offset=0.1 * (exp.seed or 0))
    monkeypatch.setattr(report, "paper_numbers", lambda paper: {"title": "Toy paper", "claims": [claim]})
    out = res / "toy"
    df = report.build_report(profile, "toy", res, runs, out)
    return profile, df, out


def test_a_seed_that_disagrees_keeps_the_claim_from_being_reproduced(tmp_path, monkeypatch):
    treat, ctrl, effect, direction, _ = OUTCOMES["one_seed_disagrees"]
    _, _, out = build(tmp_path, monkeypatch, treat, ctrl, {**CLAIM, "expected_effect": effect})
    row = pd.read_csv(out / "verdicts.csv").iloc[0]
    # seed differences 0.5, 0.5, 0: the seeds' resample puts the third pair in all 3 places in 1 of 27 draws, a
    # mean of exactly 0, which counts on both sides: p = 2 / 27 plus the draws where problem resampling takes the
    # two good seeds' mean to 0 or below (none: their 20 gains are never outweighed, there are no losses)
    assert row.p_bootstrap == pytest.approx(2 / 27, abs=0.012) and row.p_problems_pooled == 0.0
    assert row.boot_diff == pytest.approx(1 / 3) and row.mde > 0.05
    assert "reproduced" not in row.verdict


@pytest.mark.parametrize("case", sorted(OUTCOMES))
def test_the_report_gives_each_claim_its_verdict(tmp_path, monkeypatch, case):
    treat, ctrl, effect, direction, expected = OUTCOMES[case]
    _, _, out = build(tmp_path, monkeypatch, treat, ctrl, {**CLAIM, "expected_effect": effect, "direction": direction})
    row = pd.read_csv(out / "verdicts.csv").iloc[0]
    assert row.verdict.startswith(expected), row.verdict
    assert (row.n_treatment, row.n_control, row.n_pairs, row.metric, row.n_problems) == (3, 3, 3, "acc", 40)
    # the per-seed differences of the results' values, their mean and SE, and the seed-level t-test
    diffs = [sum(t) / 40 - sum(c) / 40 for t, c in zip(treat, ctrl)]
    assert row.diff_mean == pytest.approx(sum(diffs) / 3)
    table = (out / "table.md").read_text().splitlines()
    assert table[0] == "# Toy paper — profile `t`" and table[2] == "## The paper's claims"
    assert table[4].startswith("| claim | paper | ours: treatment − control (mean ± SE over seeds) | seeds | "
                               "p (seed t / seed × problem bootstrap) | verdict |")
    assert table[6].startswith("| the treatment beats the control (abstract; gsm8k acc: Treatment vs Control")
    assert f"| {row.verdict} |" in table[6] and "| +10 points |" in table[6] and "| 3 / 3 |" in table[6]
    assert any(line.startswith("Verdicts: fewer than 3 training seeds") for line in table)


def test_the_reproduced_row_in_numbers(tmp_path, monkeypatch):
    treat, ctrl, *_ = OUTCOMES["reproduced"]
    _, df, out = build(tmp_path, monkeypatch, treat, ctrl, CLAIM)
    row = pd.read_csv(out / "verdicts.csv").iloc[0]
    # per-seed differences 20/40, 19/40, 18/40: mean 0.475, SE 0.025 / sqrt(3); t = 19 sqrt(3), 2 df, for which
    # P(|T| > t) = 1 - t / sqrt(2 + t^2) = 0.00092
    assert row.diff_mean == pytest.approx(0.475) and row.diff_se == pytest.approx(0.025 / math.sqrt(3))
    assert row.t == pytest.approx(19 * math.sqrt(3)) and row.df == 2
    assert row.p_seed == pytest.approx(1 - row.t / math.sqrt(2 + row.t ** 2))
    assert row.boot_diff == pytest.approx(0.475) and row.p_bootstrap == 0.0 and row.mde > 0
    assert row.p_problems_pooled == 0.0  # the pooled problem bootstrap, kept in the CSV beside the verdict's test
    table = (out / "table.md").read_text()
    assert "| +47.5 ± 1.4 pts | 3 / 3 | < 0.001 / < 0.001 | reproduced |" in table
    # the scores table: one row per group, the mean over seeds ± the SE over seeds
    # (seed means 0.75, 0.775, 0.725 and 0.25, 0.30, 0.275: SE 0.025 / sqrt(3) each)
    assert "| Treatment (3 seeds) | 75.0 ± 1.4 |" in table and "| Control (3 seeds) | 27.5 ± 1.4 |" in table
    assert "| untrained | 12.5 ± 5.3 |" in table
    assert "a row marked (k seeds) is the mean over k training seeds" in table
    assert "| Treatment (seeds 0, 1, 2) | grpo |" in table  # one settings row per group
    # table.csv keeps the per-seed rows, with their group and seed
    csv = pd.read_csv(out / "table.csv")
    evals = csv[csv.task == "gsm8k"].set_index("experiment")
    assert list(evals.index) == ["toy_base", "treat_s0", "treat_s1", "treat_s2", "ctrl_s0", "ctrl_s1", "ctrl_s2"]
    assert evals.loc["treat_s1", "group"] == "treat" and evals.loc["treat_s1", "seed"] == 1
    assert pd.isna(evals.loc["toy_base", "seed"]) and "group_label" not in csv
    assert (out / "curves.png").stat().st_size > 0 and (out / "evals.png").is_file()
    assert len(df[(df.task == "train") & (df.metric == "final_reward")]) == 6


def test_the_summary_of_every_papers_verdicts(tmp_path, monkeypatch):
    treat, ctrl, *_ = OUTCOMES["reproduced"]
    profile, _, out = build(tmp_path, monkeypatch, treat, ctrl, CLAIM)
    second = {**CLAIM, "text": "against the untrained model", "control": "toy_base"}
    monkeypatch.setattr(report, "paper_numbers", lambda paper: {"title": "Toy paper", "claims": [CLAIM, second]})
    report.build_report(profile, "toy", tmp_path / "res", tmp_path / "runs", out)
    third = {**CLAIM, "text": "a third claim"}
    lines = claims.summary_table(profile, tmp_path / "res", meta=lambda paper: {"claims": [CLAIM, second, third]})
    command = f"`snakemake --cores 2 {tmp_path / 'res'}/toy/table.md --configfile config/t.yaml`"
    assert lines[0].startswith("| paper | claim | paper's number | ours")
    # the report's own row, read back from verdicts.csv (counts as integers), and the command that makes it
    assert lines[2].startswith("| toy | the treatment beats the control (abstract; gsm8k acc")
    assert lines[2].endswith("| +10 points | +47.5 ± 1.4 pts | 3 / 3 | < 0.001 / < 0.001 | reproduced | "
                             f"{command} |")
    assert "| 3 / untrained | < 0.001 / < 0.001 | reproduced |" in lines[3]
    # a claim the report has not judged yet (its verdicts.csv predates it)
    assert lines[4] == f"| toy | a third claim | +10 points | not run yet | | | | {command} |"
    (out / "verdicts.csv").unlink()
    assert "not run yet" in claims.summary_table(profile, tmp_path / "res", meta=lambda p: {"claims": [CLAIM]})[2]


def test_the_verdicts_script_judges_a_design_kept_aside(tmp_path, monkeypatch, capsys):
    # scripts/verdicts.py --paper --evals: the claims of one paper judged by the current rule from a folder of
    # evaluations (an earlier design, moved aside), with the pooled problem bootstrap's p under the table
    import runpy
    import sys

    treat, ctrl, *_ = OUTCOMES["one_seed_disagrees"]
    raw = toy_raw(tmp_path)
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(raw))
    profile = parse_profile(raw)
    for name, scores in zip([e.name for e in profile.groups()["treat"]] + [e.name for e in profile.groups()["ctrl"]],
                            treat + ctrl):
        write_run(tmp_path / "kept", tmp_path / "runs", name, scores)
    monkeypatch.setattr(claims, "paper_meta", lambda paper: {"title": "Toy paper", "claims": [CLAIM]})
    out = tmp_path / "kept" / "verdicts.md"
    monkeypatch.setattr(sys, "argv", ["verdicts.py", "--config", str(tmp_path / "t.yaml"), "--paper", "toy",
                                      "--evals", str(tmp_path / "kept"), "--out", str(out)])
    runpy.run_path(str(claims.REPO / "scripts" / "verdicts.py"), run_name="__main__")
    text = out.read_text().splitlines()
    assert text[0] == f"# toy's claims judged from `{tmp_path / 'kept'}`, profile `t`"
    assert text[2].startswith("Made by `python scripts/verdicts.py --config") and "--paper toy --evals" in text[2]
    row = next(line for line in text if line.startswith("| the treatment beats the control"))
    assert "| +33.3 ± 16.7 pts | 3 / 3 |" in row and "inconclusive at this power" in row
    assert text[-1] == "Claim 0: the pooled problem bootstrap (seeds held fixed) gives p < 0.001."
    # a paper the profile tests no claim of, and a folder without the evaluations, fail naming what is wrong
    script = str(claims.REPO / "scripts" / "verdicts.py")
    for paper, evals, message in (("tyo", tmp_path / "kept", "--paper tyo: .* tests no claim of that paper; its "
                                   r"papers with claims: \['toy'\]"),
                                  ("toy", tmp_path / "nowhere", "verdicts.py: .*nowhere/evals/treat_s0/gsm8k.json: "
                                   "no evaluation result; run the evaluation first")):
        monkeypatch.setattr(sys, "argv", ["verdicts.py", "--config", str(tmp_path / "t.yaml"), "--paper", paper,
                                          "--evals", str(evals)])
        with pytest.raises(SystemExit) as exited:
            runpy.run_path(script, run_name="__main__")
        code = exited.value.code  # argparse's error: exit 2, the message on stderr; else the message itself
        said = capsys.readouterr().err if code == 2 else str(code)
        assert code != 0 and re.search(message, said), said


def test_too_few_seeds_and_an_untrained_control(tmp_path, monkeypatch):
    treat, ctrl, *_ = OUTCOMES["reproduced"]
    _, _, out = build(tmp_path, monkeypatch, treat[:2], ctrl[:2], CLAIM, treat_seeds=(0, 1), ctrl_seeds=(0, 1))
    row = pd.read_csv(out / "verdicts.csv").iloc[0]
    assert row.verdict == "inconclusive (n seeds < 3)" and row.p_bootstrap == 0.0 and row.n_pairs == 2
    assert "| 2 / 2 |" in (out / "table.md").read_text()


def test_an_untrained_control_is_paired_with_every_seed(tmp_path, monkeypatch):
    treat, *_ = OUTCOMES["reproduced"]
    _, _, out = build(tmp_path, monkeypatch, treat, [n_right(10)] * 3, {**CLAIM, "control": "toy_base"})
    row = pd.read_csv(out / "verdicts.csv").iloc[0]
    assert (row.n_pairs, row.verdict) == (3, "reproduced") and pd.isna(row.n_control)
    # toy_base gets 5 of 40: the differences are 25/40, 26/40, 24/40
    assert row.diff_mean == pytest.approx(25 / 40)
    assert "| 3 / untrained |" in (out / "table.md").read_text()


def test_no_claims_no_verdicts(tmp_path, monkeypatch):
    treat, ctrl, *_ = OUTCOMES["reproduced"]
    _, _, out = build(tmp_path, monkeypatch, treat, ctrl, CLAIM)
    assert (out / "verdicts.csv").is_file()
    monkeypatch.setattr(report, "paper_numbers", lambda paper: {"title": "Toy paper"})
    profile = parse_profile(toy_raw(tmp_path))
    report.build_report(profile, "toy", tmp_path / "res", tmp_path / "runs", out)
    assert not (out / "verdicts.csv").exists()  # a stale verdict file is removed
    assert "## The paper's claims" not in (out / "table.md").read_text()


# --- the papers' hooks on seeded groups ---------------------------------------------------------------------------

def rows(group, label, method, task, metric, values, seeds=(0, 1, 2)):
    return [{"experiment": f"{group}_s{s}" if seeds else group, "label": label, "group_label": label, "group": group,
             "seed": s, "method": method, "task": task, "metric": metric, "value": v, "stderr": 0.1, "n": 10,
             "paper_value": None, "rescored_from": None} for s, v in zip(seeds or [None], values)]


def test_msgrpo_claims_table_reads_the_shared_claim_format():
    from suite.reports.msgrpo import claims_table

    df = pd.DataFrame(rows("aaw", "AAW", "msgrpo", "frozen_lake", "success_rate", [0.2, 0.3, 0.4])
                      + rows("base", "base", "base", "frozen_lake", "success_rate", [0.2], seeds=None))
    meta = {"claims": [{"text": "AAW beats the  base", "source": "abstract", "task": "frozen_lake",
                        "treatment": "aaw", "control": "base"},
                       {"text": "not run here", "task": "frozen_lake", "treatment": "other", "control": "base"}]}
    lines = claims_table(df, meta, "msgrpo")
    assert lines[-2] == ("| AAW beats the base (abstract) | frozen_lake success_rate: AAW (3 seeds) 30.0% vs base "
                         "20.0% (+10.0 points, +50% relative) |")
    assert lines[-1] == "| not run here (paper) | — |"


def test_exgrpo_gain_table_has_one_row_per_seeded_group():
    from suite.reports.exgrpo import gain_table

    df = pd.DataFrame(rows("onp", "on-policy GRPO", "grpo", "math", "acc", [0.1, 0.2, 0.3])
                      + rows("ex", "ExGRPO", "exgrpo", "math", "acc", [0.3, 0.3, 0.3]))
    lines = gain_table(df, {})
    assert lines[0].startswith("Gain over on-policy GRPO, accuracy points")  # the group's label, unmarked
    # 30 - 20 = +10.0; SE: hypot(0 over ExGRPO's equal seeds, 0.1 / sqrt(3) over the on-policy seeds) = 5.8 points
    assert lines[-1] == "| ExGRPO (3 seeds) | +10.0 ± 5.8 |"
