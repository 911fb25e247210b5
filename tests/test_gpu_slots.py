"""GPU slots on one node (suite.gpus): each job its own CUDA_VISIBLE_DEVICES, never one GPU index in two running
jobs, claims freed however a job ends. Runs on the CPU with a fake GPU count (RLREPRO_GPUS)."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from suite import gpus

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def fake_node(tmp_path, monkeypatch):
    monkeypatch.setenv("RLREPRO_GPUS", "4")
    monkeypatch.setenv("RLREPRO_GPU_LOCKS", str(tmp_path / "locks"))
    return tmp_path


def test_pool_from_count_list_or_visible_devices(monkeypatch):
    monkeypatch.setenv("RLREPRO_GPUS", "3")
    assert gpus.pool() == ["0", "1", "2"]
    monkeypatch.setenv("RLREPRO_GPUS", "4,6")
    assert gpus.pool() == ["4", "6"]
    monkeypatch.delenv("RLREPRO_GPUS")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5,7")
    assert gpus.pool() == ["2", "5", "7"]


def test_claims_exclude_each_other_until_released(fake_node):
    folder = Path(os.environ["RLREPRO_GPU_LOCKS"])
    ids = gpus.pool()
    first = gpus.try_claim(3, ids, folder)
    assert [g for g, _ in first] == ["0", "1", "2"]
    assert gpus.try_claim(2, ids, folder) is None  # only one left: nothing is held half
    second = gpus.try_claim(1, ids, folder)
    assert [g for g, _ in second] == ["3"]
    for _, fd in first:
        os.close(fd)
    third = gpus.try_claim(2, ids, folder)
    assert [g for g, _ in third] == ["0", "1"]
    for _, fd in second + third:
        os.close(fd)


def test_a_killed_job_frees_its_gpus(fake_node):
    env = {**os.environ, "RLREPRO_GPUS": "1"}
    job = subprocess.Popen([sys.executable, "-m", "suite.gpus", "1", "--", "sleep", "60"], env=env,
                           stderr=subprocess.PIPE, text=True)
    assert "CUDA_VISIBLE_DEVICES=0" in job.stderr.readline()
    assert gpus.try_claim(1, ["0"], Path(os.environ["RLREPRO_GPU_LOCKS"])) is None  # held by the running job
    job.send_signal(signal.SIGKILL)
    job.wait()
    held = gpus.try_claim(1, ["0"], Path(os.environ["RLREPRO_GPU_LOCKS"]))
    assert held is not None
    os.close(held[0][1])


def test_a_job_asking_more_gpus_than_the_node_has_fails_naming_them(fake_node):
    result = subprocess.run([sys.executable, "-m", "suite.gpus", "5", "--", "true"], capture_output=True, text=True)
    assert result.returncode != 0 and "asks for 5 GPU(s) but this node has 4" in result.stderr


def test_launch_lines():
    assert gpus.launch(0, "suite train") == "python -m suite train"
    assert gpus.launch(1, "suite train") == "python -m suite.gpus 1 -- python -m suite train"
    assert gpus.launch(4, "suite train") == (
        "python -m suite.gpus 4 -- torchrun --standalone --nproc_per_node 4 -m suite train")
    assert gpus.launch(2, "suite evaluate", torchrun=False) == "python -m suite.gpus 2 -- python -m suite evaluate"


def test_snakemake_runs_gpu_jobs_side_by_side_on_distinct_gpus(fake_node):
    """`snakemake --cores 4 --resources gpu=4` on a node with 4 (fake) GPUs: jobs of 1 and 2 GPUs run side by
    side, each records the CUDA_VISIBLE_DEVICES it saw and when it ran; no two overlapping jobs share an index."""
    workdir = fake_node / "wf"
    workdir.mkdir()
    (workdir / "probe.py").write_text(
        "import os, sys, time\n"
        "t0 = time.time()\n"
        "time.sleep(1.5)\n"
        "open(sys.argv[1], 'w').write(f\"{t0} {time.time()} {os.environ['CUDA_VISIBLE_DEVICES']}\")\n")
    (workdir / "Snakefile").write_text(textwrap.dedent("""
        from suite.gpus import launch
        JOBS = {f"j{i}": 1 + i % 2 for i in range(8)}   # 4 jobs of 1 GPU, 4 of 2
        rule all:
            input: expand("out/{j}.txt", j=JOBS)
        rule probe:
            output: "out/{j}.txt"
            threads: 1
            resources: gpu=lambda wc: JOBS[wc.j]
            params: launch=lambda wc: launch(JOBS[wc.j], "probe", torchrun=False)
            shell: "{params.launch} {output}"
        """))
    result = subprocess.run(["snakemake", "--cores", "4", "--resources", "gpu=4"], cwd=workdir,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = []
    for name, want in ((f"j{i}", 1 + i % 2) for i in range(8)):
        start, end, visible = (workdir / "out" / f"{name}.txt").read_text().split()
        ids = visible.split(",")
        assert len(ids) == len(set(ids)) == want and set(ids) <= {"0", "1", "2", "3"}, (name, visible)
        runs.append((float(start), float(end), set(ids), name))
    overlapping = 0
    for i, (s1, e1, ids1, n1) in enumerate(runs):
        for s2, e2, ids2, n2 in runs[i + 1:]:
            if s1 < e2 and s2 < e1:
                overlapping += 1
                assert not ids1 & ids2, f"{n1} and {n2} ran at the same time on GPU(s) {sorted(ids1 & ids2)}"
    assert overlapping >= 2, "the jobs did not run side by side: the test checked nothing"
