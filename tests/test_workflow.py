"""The Snakemake workflow: dry-runs of every profile, the smoke DAG end to end, reruns, regressions."""

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from suite.regress import main as regress

REPO = Path(__file__).resolve().parent.parent


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["snakemake", "--cores", "2", *args], cwd=workdir, capture_output=True, text=True,
                          timeout=900)


def job_counts(output: str) -> dict[str, int]:
    table = output[output.index("Job stats:"):]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M)}


def branch_workspace(root: Path, **grpo_arith) -> Path:
    """A copy of the workflow with a small branch of the smoke profile as ``config/branch.yaml``: the foundation
    paper cut to the untrained model on one task and its GRPO run (8 steps) on another (6 jobs: 2 prepare_data,
    1 train, 2 evaluate, 1 report); ``grpo_arith`` keys are set on that experiment (e.g. resources)."""
    root.mkdir(parents=True, exist_ok=True)
    for item in ("Snakefile", "config", "tasks", "tests/fixtures", "profiles"):
        src, dst = REPO / item, root / item
        shutil.copytree(src, dst) if src.is_dir() else shutil.copy(src, dst)
    cfg = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    exps = cfg["experiments"]
    cfg["experiments"] = {
        "base": {**exps["base"], "paper": "foundation", "eval_tasks": ["arithmetic_2d"]},
        "grpo_arith": {**exps["grpo_arith"], "eval_tasks": ["arithmetic_smoke"], **grpo_arith},
    }
    (root / "config" / "branch.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return root


BRANCH = ("results/smoke/foundation/table.md", "--configfile", "config/branch.yaml")
TIMING_METRICS = {"final_step_time", "train_minutes"}  # wall-clock numbers: differ between any two runs


def branch_table(root: Path) -> pd.DataFrame:
    table = pd.read_csv(root / "results" / "smoke" / "foundation" / "table.csv")
    return table[~table.metric.isin(TIMING_METRICS)].reset_index(drop=True)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, model_cache):
    """A copy of the workflow files, so runs never touch the repository's own outputs."""
    root = tmp_path_factory.mktemp("workflow")
    for item in ("Snakefile", "config", "tasks", "tests/fixtures"):
        src, dst = REPO / item, root / item
        shutil.copytree(src, dst) if src.is_dir() else shutil.copy(src, dst)
    return root


@pytest.mark.parametrize("profile", ["smoke", "mini", "claims", "paper"])
def test_dry_run_of_every_profile(workspace, profile):
    """The plan covers every experiment: one training job per trained experiment, one evaluation
    per (trained experiment or untrained model, task), one report per paper."""
    from suite.config import load_profile

    prof = load_profile(workspace / "config" / f"{profile}.yaml")
    result = snakemake(workspace, "-n", "--configfile", f"config/{profile}.yaml")
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout + result.stderr)
    assert counts["train"] == sum(e.train is not None for e in prof.experiments.values()), counts
    evaluations = {(prof.eval_owner(e.name), t) for e in prof.experiments.values() for t in e.eval_tasks}
    untrained = [e for e in prof.experiments.values() if e.train is None]
    assert len({e.model for e in untrained}) < len(untrained)  # the sharing below is exercised
    assert counts["evaluate"] == len(evaluations) < sum(len(e.eval_tasks) for e in prof.experiments.values()), counts
    assert counts["report"] == len(prof.papers()), counts


def test_a_run_starting_from_another_waits_for_it(workspace):
    """train.init_from: the source run's done.json is an input of the training job (so Snakemake trains it first);
    the claims profile's MS-GRPO arms start from its format warm start."""
    result = snakemake(workspace, "-n", "results/claims/msgrpo/table.md", "--configfile", "config/claims.yaml")
    assert result.returncode == 0, result.stderr
    jobs = re.findall(r"rule train:\n\s+input: ([^\n]*)\n\s+output: runs/claims/(\w+)/done.json", result.stdout)
    inputs = {exp: set(line.split(", ")) for line, exp in jobs}
    arms = {f"{arm}_s{s}" for arm in ("msgrpo_fl", "msgrpo_aaw_fl") for s in (0, 1, 2)}
    assert set(inputs) == arms | {"msgrpo_warm"}, inputs
    assert all("runs/claims/msgrpo_warm/done.json" in inputs[arm] for arm in arms), inputs
    assert not any(i.startswith("runs/") for i in inputs["msgrpo_warm"])


def test_resources_come_from_the_profile_then_the_experiment():
    """Built-in defaults < the profile's resources.train / resources.evaluate < the experiment's resources (its
    flat keys for its training, its `evaluate` for its evaluations); a bad key or value names its path."""
    from suite.config import ConfigError, parse_profile

    raw = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    raw["resources"] = {"train": {"gpus": 2, "threads": 3}, "evaluate": {"gpus": 1}}
    raw["experiments"]["grpo_arith"]["resources"] = {"gpus": 4, "evaluate": {"mem_mb": 1000}}
    prof = parse_profile(raw, "p.yaml")
    assert prof.experiments["grpo_arith"].resources == {"gpus": 4, "threads": 3, "mem_mb": 4000, "runtime": 60}
    assert prof.experiments["grpo_arith"].eval_resources == {"gpus": 1, "threads": 1, "mem_mb": 1000, "runtime": 60}
    assert prof.experiments["base"].resources["gpus"] == 2 and prof.experiments["base"].eval_resources["gpus"] == 1
    del raw["resources"]
    del raw["experiments"]["grpo_arith"]["resources"]
    assert parse_profile(raw, "p.yaml").experiments["grpo_arith"].resources["gpus"] == 0  # a CPU profile
    raw["experiments"]["grpo_arith"]["resources"] = {"gpu": 1}
    with pytest.raises(ConfigError, match=r"experiments.grpo_arith.resources: Additional properties .*'gpu'"):
        parse_profile(raw, "p.yaml")
    raw["experiments"]["grpo_arith"]["resources"] = {"gpus": -1}
    with pytest.raises(ConfigError, match=r"experiments.grpo_arith.resources.gpus: -1 is less than the minimum"):
        parse_profile(raw, "p.yaml")


def test_paper_dry_run_through_the_slurm_profile_plans_every_job_with_its_resources(workspace):
    """`snakemake -n --configfile config/paper.yaml --workflow-profile profiles/slurm`: every training and
    evaluation job carries its experiment's GPUs, memory and runtime (what the plugin turns into --gpus, --mem,
    -t), multi-GPU trainings run under torchrun with that many processes, GPU jobs claim their GPUs through
    suite.gpus, and no job's threads depend on the cores of the machine that plans."""
    from suite.config import load_profile

    shutil.copytree(REPO / "profiles", workspace / "profiles", dirs_exist_ok=True)
    prof = load_profile(workspace / "config" / "paper.yaml")
    result = subprocess.run(["snakemake", "-n", "--configfile", "config/paper.yaml", "--workflow-profile",
                             "profiles/slurm"], cwd=workspace, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    blocks = re.findall(r"^(?:local)?rule (\w+):\n(.*?)^Shell command: (.*?)$", out, flags=re.M | re.S)
    seen = {"train": 0, "evaluate": 0}
    for rule, body, shell in blocks:
        if rule not in seen:
            continue
        exp = re.search(r"wildcards: exp=([\w-]+)", body).group(1)
        want = prof.experiments[exp].resources if rule == "train" else \
            prof.experiments[prof.eval_owner(exp)].eval_resources
        res = dict(kv.split("=", 1) for kv in re.search(r"resources: (.*)", body).group(1).split(", "))
        assert (int(res["gpu"]), int(res["mem_mb"]), int(res["runtime"])) == (
            want["gpus"], want["mem_mb"], want["runtime"]), (rule, exp, res)
        assert res["slurm_partition"] and res["slurm_account"], res
        if want["gpus"]:
            assert shell.startswith(f"python -m suite.gpus {want['gpus']} -- "), shell
        if rule == "train" and want["gpus"] > 1:
            assert f"torchrun --standalone --nproc_per_node {want['gpus']} -m suite train" in shell, shell
        seen[rule] += 1
    assert seen["train"] == sum(e.train is not None for e in prof.experiments.values()), seen
    assert seen["evaluate"] == len({(prof.eval_owner(e.name), t) for e in prof.experiments.values()
                                    for t in e.eval_tasks}), seen
    assert {e.resources["gpus"] for e in prof.experiments.values() if e.train} == {1, 4, 8}  # Cooper: 1 process
    assert any(shell.startswith("python -m suite.gpus 1 -- python -m suite train")
               for rule, _, shell in blocks if rule == "train"), "a 1-GPU training job runs as one process"
    assert "workflow.cores" not in (REPO / "Snakefile").read_text()


def test_invalid_profile_fails_before_any_work(workspace):
    bad = yaml.safe_load((workspace / "config" / "smoke.yaml").read_text())
    bad["train_defaults"]["clip_eps_high"] = 1.5
    (workspace / "config" / "bad.yaml").write_text(yaml.safe_dump(bad))
    result = snakemake(workspace, "--configfile", "config/bad.yaml")
    assert result.returncode != 0
    assert "train_defaults.clip_eps_high = 1.5 must be in [0, 1)" in result.stdout + result.stderr
    assert not (workspace / "runs" / "smoke" / "grpo_arith").exists()


@pytest.mark.slow
def test_smoke_dag_end_to_end(workspace):
    """The foundation's branch of the smoke DAG (each paper's smoke run is checked by .ci/run)."""
    result = snakemake(workspace, "results/smoke/foundation/table.md", "--configfile", "config/smoke.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    out = workspace / "results" / "smoke"
    for name in ("table.md", "table.csv", "curves.png", "evals.png"):
        assert (out / "foundation" / name).stat().st_size > 0, name
    evaluation = json.loads((out / "evals" / "base" / "aime24.json").read_text())
    assert evaluation["n"] == 4 and evaluation["sampling"]["repeats"] == 2
    assert {"value", "stderr"} <= set(evaluation["metrics"]["acc"])
    for key in ("lm_eval_version", "seed", "config_hash", "limit", "backend"):
        assert key in evaluation
    table = pd.read_csv(out / "foundation" / "table.csv")
    assert {"base", "grpo_arith"} == set(table.experiment)
    assert "final_entropy" in set(table.metric)

    # nothing changed: nothing to do
    again = snakemake(workspace, "results/smoke/foundation/table.md", "-n", "--configfile", "config/smoke.yaml")
    assert "Nothing to be done" in again.stdout + again.stderr

    # the same mirror folder spelled another way is no change either
    cfg = yaml.safe_load((workspace / "config" / "smoke.yaml").read_text())
    cfg["data"]["mirror"] = "./" + cfg["data"]["mirror"] + "/"
    (workspace / "config" / "smoke_respelled.yaml").write_text(yaml.safe_dump(cfg))
    again = snakemake(workspace, "results/smoke/foundation/table.md", "-n", "--configfile", "config/smoke_respelled.yaml")
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-2000:]

    # one experiment changed: only its branch (train, its evals, the report) reruns
    cfg = yaml.safe_load((workspace / "config" / "smoke.yaml").read_text())
    cfg["experiments"]["grpo_arith"]["train"]["lr"] = 2.0e-3
    (workspace / "config" / "smoke2.yaml").write_text(yaml.safe_dump(cfg))
    branch = snakemake(workspace, "results/smoke/foundation/table.md", "-n", "--configfile", "config/smoke2.yaml")
    counts = job_counts(branch.stdout + branch.stderr)
    assert counts["train"] == 1 and counts["evaluate"] == 3 and counts["report"] == 1, counts  # its 3 eval tasks

    # the regression check: passes against itself, fails on a planted score change
    baseline = workspace / "baseline"
    assert regress(str(out), str(baseline), str(workspace / "config" / "tolerances.yaml"), update=True) == 0
    assert regress(str(out), str(baseline), str(workspace / "config" / "tolerances.yaml")) == 0
    planted = pd.read_csv(baseline / "foundation" / "table.csv")
    planted.loc[planted.metric == "final_entropy", "value"] += 1.0
    planted.to_csv(baseline / "foundation" / "table.csv", index=False)
    assert regress(str(out), str(baseline), str(workspace / "config" / "tolerances.yaml")) == 1


def test_regression_diff_is_readable(tmp_path, capsys):
    rows = {"experiment": ["base", "base"], "task": ["gsm8k", "hotpotqa"], "metric": ["acc", "f1"],
            "value": [0.30, 0.10]}
    for name, values in (("fresh", [0.30, 0.10]), ("baseline", [0.30, 0.20])):
        (tmp_path / name / "foundation").mkdir(parents=True)
        pd.DataFrame({**rows, "value": values}).to_csv(tmp_path / name / "foundation" / "table.csv", index=False)
    tol = tmp_path / "tol.yaml"
    tol.write_text("metrics: {acc: {abs: 0.02}, f1: {abs: 0.02}}\n")
    assert regress(str(tmp_path / "fresh"), str(tmp_path / "baseline"), str(tol)) == 1
    printed = capsys.readouterr().out
    assert "FAILED: 1 of 2" in printed and "hotpotqa" in printed and "DRIFT" in printed and "gsm8k" not in printed


def test_a_baseline_of_another_machine_kind_is_checked_for_structure_not_values(tmp_path, capsys):
    """--update records the machine; on the same machine a drift fails; on another kind (another CPU model) values
    are not compared, but a missing score or a proportion outside [0, 1] still fails."""
    import json

    from suite.regress import MACHINE_FILE, this_machine

    rows = {"experiment": ["base", "base"], "task": ["gsm8k", "hotpotqa"], "metric": ["acc", "f1"]}
    tol = tmp_path / "tol.yaml"
    tol.write_text("metrics: {acc: {abs: 0.02}, f1: {abs: 0.02}}\n")

    def tables(fresh_values, baseline_values):
        for name, values in (("fresh", fresh_values), ("baseline", baseline_values)):
            (tmp_path / name / "foundation").mkdir(parents=True, exist_ok=True)
            frame = pd.DataFrame({k: v[:len(values)] for k, v in rows.items()} | {"value": values})
            frame.to_csv(tmp_path / name / "foundation" / "table.csv", index=False)

    def check():
        return regress(str(tmp_path / "fresh"), str(tmp_path / "baseline"), str(tol))

    tables([0.30, 0.10], [0.30, 0.10])
    assert regress(str(tmp_path / "fresh"), str(tmp_path / "baseline"), str(tol), update=True) == 0
    assert json.loads((tmp_path / "baseline" / MACHINE_FILE).read_text()) == this_machine()
    tables([0.30, 0.60], [0.30, 0.10])
    assert check() == 1  # same machine: the f1 drift fails
    other = {**this_machine(), "cpu": "Another CPU"}
    (tmp_path / "baseline" / MACHINE_FILE).write_text(json.dumps(other))
    capsys.readouterr()
    assert check() == 0  # another kind: the drift is reported, not failed
    assert "another kind of machine" in capsys.readouterr().out
    tables([0.30, 1.60], [0.30, 0.10])
    assert check() == 1  # an f1 of 1.6 is not a proportion
    tables([0.30], [0.30, 0.10])
    assert check() == 1  # hotpotqa's score went missing
    assert "MISSING" in capsys.readouterr().out


@pytest.mark.slow
def test_new_task_yaml_with_inline_dataset_runs_through_the_workflow(tmp_path, model_cache):
    """Adding a benchmark is one YAML file (issue 19, item 10): a task YAML that declares its dataset inline,
    dropped into the workflow's tasks/ folder and named in a profile, is prepared, evaluated and reported by
    `snakemake` with no other change; editing its spec prepares it again; a second file declaring the same
    dataset name with another spec stops the workflow naming both files."""
    import os

    root = tmp_path / "wf"
    root.mkdir()
    for item in ("Snakefile", "config", "tasks"):
        src, dst = REPO / item, root / item
        shutil.copytree(src, dst) if src.is_dir() else shutil.copy(src, dst)
    mirror = tmp_path / "mirror"
    (mirror / "quiz").mkdir(parents=True)
    rows = [{"q": "What is 2 + 2?", "a": 4}, {"q": "What is 3 + 5?", "a": 8}, {"q": "What is 9 - 3?", "a": 6}]
    (mirror / "quiz" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {"mirror_files": {"test": "quiz/test.jsonl"}, "fields": {"prompt": "{q}", "answers": "a"}}
    task = {"include": "_math_template.yaml", "task": "quiz", "dataset_kwargs": {"dataset": "quiz", "split": "test",
                                                                                 "spec": copy.deepcopy(spec)}}
    (root / "tasks" / "quiz.yaml").write_text(yaml.safe_dump(task))
    profile = {"profile": "newtask", "model": "tiny-llama",
               "data": {"dir": "runs/newtask/data", "mirror": str(mirror)},
               "runs_dir": "runs/newtask", "results_dir": "results/newtask",
               "eval": {"tasks": {"quiz": {"limit": 2, "overrides": {"generation_kwargs": {"max_gen_toks": 4}}}}},
               "experiments": {"base": {"paper": "baseline", "method": "base", "eval_tasks": ["quiz"]}}}
    (root / "config" / "newtask.yaml").write_text(yaml.safe_dump(profile))
    env = {k: v for k, v in os.environ.items() if k not in ("RLREPRO_TASKS_DIR", "RLREPRO_DATA_MIRROR")}

    def run(*args):
        return subprocess.run(["snakemake", "--cores", "2", *args, "--configfile", "config/newtask.yaml"], cwd=root,
                              capture_output=True, text=True, timeout=900, env=env)

    result = run()
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    data = root / "runs" / "newtask" / "data" / "quiz"
    assert len((data / "test.jsonl").read_text().splitlines()) == 3 and (data / "test.spec.json").is_file()
    evaluation = json.loads((root / "results" / "newtask" / "evals" / "base" / "quiz.json").read_text())
    assert evaluation["n"] == 2 and "acc" in evaluation["metrics"]
    assert (root / "results" / "newtask" / "baseline" / "table.md").is_file()
    assert "Nothing to be done" in (lambda r: r.stdout + r.stderr)(run("-n"))

    # the spec changed: its data is prepared again (and what reads it evaluated again)
    task["dataset_kwargs"]["spec"]["fields"]["prompt"] = "Question: {q}"
    (root / "tasks" / "quiz.yaml").write_text(yaml.safe_dump(task))
    plan = run("-n")
    counts = job_counts(plan.stdout + plan.stderr)
    assert counts.get("prepare_data") == 1 and counts.get("evaluate") == 1, plan.stdout[-2000:]

    # a second task file declaring 'quiz' with another spec: an error naming both files
    other = {**task, "task": "quiz_copy", "dataset_kwargs": {**task["dataset_kwargs"], "spec": spec}}
    (root / "tasks" / "quiz_copy.yaml").write_text(yaml.safe_dump(other))
    clash = run("-n")
    assert clash.returncode != 0
    assert "quiz.yaml" in clash.stdout + clash.stderr and "quiz_copy.yaml" in clash.stdout + clash.stderr


@pytest.mark.slow
def test_killed_snakemake_resumes_where_it_stopped(tmp_path, model_cache):
    """Snakemake killed (SIGKILL to its process group) while a training runs: started again with
    --rerun-incomplete, the training continues from its last checkpoint, finished jobs are not redone and
    nothing half-written is taken as done; the run logs each step once."""
    import os
    import signal
    import time

    STEPS = 24
    # 24 steps, a checkpoint every 2: the kill lands at the first checkpoint with 22 steps to go, so a fast CPU
    # (a smoke step can take under 0.1 s) cannot finish the run between the poll and the kill
    root = branch_workspace(tmp_path / "wf", train={**yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())[
        "experiments"]["grpo_arith"]["train"], "steps": STEPS, "save_every": 2})
    run = root / "runs" / "smoke" / "grpo_arith"
    first = subprocess.Popen(["snakemake", "--cores", "2", *BRANCH], cwd=root, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    try:
        while not [p for p in (run / "checkpoints").glob("step_*") if re.fullmatch(r"step_\d+", p.name)]:
            assert first.poll() is None, "snakemake ended before the training wrote a checkpoint"
            assert time.time() < deadline, "no checkpoint within 10 minutes"
            time.sleep(0.02)
        # no wait for files to land: the trainer writes step_N.partial and renames it, so step_N is complete
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert not (run / "done.json").exists()
    saved = max(int(p.name[5:]) for p in (run / "checkpoints").glob("step_*") if re.fullmatch(r"step_\d+", p.name))
    finished = {p: p.stat().st_mtime_ns for p in (root / "runs" / "smoke" / "data").rglob("*.jsonl")}
    assert finished, "no finished job before the kill: the test checks nothing about them"
    base_eval = root / "results" / "smoke" / "evals" / "base" / "arithmetic_2d.json"
    if base_eval.is_file():
        finished[base_eval] = base_eval.stat().st_mtime_ns

    # the job processes died with Snakemake (one process group): none still writes into the run
    survivors = [pid for pid in os.listdir("/proc") if pid.isdigit() and _cmdline_has(pid, str(run))]
    assert not survivors, f"processes of the killed run still alive: {survivors}"
    # a SIGKILL leaves Snakemake's lock on the folder (a SIGTERM would not): the README's restart is --unlock, then
    # the same command with --rerun-incomplete
    unlock = subprocess.run(["snakemake", "--cores", "2", "--unlock", *BRANCH], cwd=root, capture_output=True,
                            text=True, timeout=300)
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    again = subprocess.run(["snakemake", "--cores", "2", "--rerun-incomplete", *BRANCH], cwd=root,
                           capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    log = (run / "train.log").read_text()
    # the progress bar starts at the step of the last checkpoint (the trainer's tqdm has initial=start step)
    first = re.search(rf"train grpo_arith:.*?\| (\d+)/{STEPS} ", log)
    assert first and int(first.group(1)) == saved > 0, (saved, log[-2000:])
    for path, mtime in finished.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was redone"
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and len(steps) == STEPS, steps
    assert (root / "results" / "smoke" / "foundation" / "table.csv").is_file()


def _cmdline_has(pid: str, text: str) -> bool:
    try:
        return text in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
