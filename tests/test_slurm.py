"""The workflow through SLURM (profiles/slurm, snakemake-executor-plugin-slurm) against a real single-node SLURM
cluster on this machine (scripts/local_slurm.sh: slurmctld + slurmd + munge), not a mock. Needs root; .ci/run
runs it. A small branch of the smoke DAG runs once locally and once through sbatch: every compute job must be a
SLURM job (its id in Snakemake's log, its record in slurmctld asking what the profile's resources say) and the
two tables must be equal."""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.test_workflow import BRANCH, branch_table, branch_workspace

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "local_slurm.sh"
pytestmark = [pytest.mark.slurm, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster():
    """The local cluster, started here (and stopped after) unless it was up already."""
    if os.geteuid() != 0:
        pytest.skip("the local SLURM cluster needs root (scripts/local_slurm.sh writes /etc/slurm, runs slurmctld)")
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        pytest.skip("SLURM (slurm-wlm, munge) is not installed and there is no apt-get to install it")
    was_up = subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True).returncode == 0
    started = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=900)
    assert started.returncode == 0, f"scripts/local_slurm.sh start failed:\n{started.stdout}{started.stderr}"
    yield
    if not was_up:
        subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, timeout=120)


def user_edits(profile: Path) -> None:
    """What the README tells a user to edit in profiles/slurm/config.yaml, for the local cluster: no account
    (it has no accounting), partition `debug`, any GPU model. And, for the local cluster only: squeue for job
    states (no slurmdbd for sacct) and a first status check after 2 s (the default 40 s would dominate)."""
    cfg = yaml.safe_load(profile.read_text())
    del cfg["default-resources"]["slurm_account"]
    cfg["default-resources"]["slurm_partition"] = "debug"
    del cfg["set-resources"]
    cfg.update({"slurm-no-account": True, "slurm-status-command": "squeue",
                "slurm-init-seconds-before-status-checks": 2})
    profile.write_text(yaml.safe_dump(cfg, sort_keys=False))


def test_smoke_branch_through_slurm_equals_local_run(cluster, tmp_path, model_cache):
    # the training job asks for 1 GPU (the local cluster has 4 without devices; the job runs on the CPU)
    env = {**os.environ, "RLREPRO_GPUS": "1", "RLREPRO_GPU_LOCKS": str(tmp_path / "locks")}
    local = branch_workspace(tmp_path / "local", resources={"gpus": 1})
    result = subprocess.run(["snakemake", "--cores", "2", *BRANCH], cwd=local, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]

    remote = branch_workspace(tmp_path / "slurm", resources={"gpus": 1})
    user_edits(remote / "profiles" / "slurm" / "config.yaml")
    start = time.time()
    result = subprocess.run(["snakemake", "--workflow-profile", "profiles/slurm", *BRANCH], cwd=remote, env=env,
                            capture_output=True, text=True, timeout=900)
    took = time.time() - start
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    print(f"SLURM run of the branch: {took:.0f} s")

    # every compute job went through sbatch; prepare_data and report ran here (localrules)
    submitted = dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", output))
    assert len(submitted) == 3, output[-4000:]  # 1 train + 2 evaluate
    assert output.count("localrule prepare_data:") == 2 and output.count("localrule report:") == 1
    records = {}
    for slurm_id in submitted.values():
        shown = subprocess.run(["scontrol", "show", "job", slurm_id], capture_output=True, text=True)
        assert shown.returncode == 0, f"slurmctld has no record of job {slurm_id}: {shown.stderr}"
        records[slurm_id] = shown.stdout
    train = [r for r in records.values() if "rule_train" in r]
    evals = [r for r in records.values() if "rule_evaluate" in r]
    assert len(train) == 1 and len(evals) == 2, records
    for record in records.values():
        assert "JobState=COMPLETED" in record, record
    # the flags the plugin passed, from the job records: GPUs (resources.gpus), memory, time limit, CPUs
    smoke = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())["resources"]
    assert "TresPerJob=gres:gpu:1" in train[0], train[0]
    assert f"MinMemoryNode={smoke['train']['mem_mb']}M" in train[0], train[0]
    assert f"TimeLimit=00:{smoke['train']['runtime']:02d}:00" in train[0], train[0]
    assert f"NumCPUs={smoke['train']['threads']}" in train[0], train[0]
    for record in evals:
        assert "gres:gpu" not in record, record  # the smoke's evaluations ask for no GPU
    # the trainer ran on the GPU the SLURM job gave it (through suite.gpus), with the profile's threads
    log = (remote / "runs" / "smoke" / "grpo_arith" / "train.log").read_text()
    assert "CUDA_VISIBLE_DEVICES=0" in log and f"torch threads: {smoke['train']['threads']}" in log

    # the same table as the local run's (wall-clock metrics aside)
    pd.testing.assert_frame_equal(branch_table(remote), branch_table(local))
