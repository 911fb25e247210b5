# rlrepro workflow: prepare_data -> train -> evaluate -> report, over a profile's experiments.
#
#   snakemake --cores all                                   # default profile (config/mini.yaml)
#   snakemake --cores all --configfile config/smoke.yaml    # another profile
#   snakemake -n --configfile config/paper.yaml             # dry run
#   snakemake --cores all --resources gpu=8 --configfile config/paper.yaml    # one node, 8 GPUs
#   snakemake --workflow-profile profiles/slurm --configfile config/paper.yaml  # a SLURM cluster (README)
#
# Every training and evaluation job declares what the profile's `resources` ask (gpu, mem_mb, runtime, threads);
# a GPU job gets its own GPUs through suite.gpus (CUDA_VISIBLE_DEVICES), a multi-GPU training runs under torchrun.
# prepare_data and report run in this Snakemake process's machine (localrules: the head node under SLURM).
#
# The profile is validated (schema + every experiment's training config) before any job runs.

import json
import os
from pathlib import Path

import yaml
from snakemake.utils import validate

# Task YAMLs come from the tasks/ beside this Snakefile unless $RLREPRO_TASKS_DIR names another folder; set before
# the suite is imported (suite.evaluate.TASKS_DIR reads it) and inherited by every job (prepare, evaluate).
os.environ.setdefault("RLREPRO_TASKS_DIR", str(Path(workflow.basedir) / "tasks"))

from suite.config import config_hash, parse_profile
from suite.data import REGISTRY, declared_spec, spec_hash
from suite.evaluate import task_data
from suite.gpus import launch

# The default profile is used only when no --configfile is given: Snakemake would otherwise
# deep-merge the named profile over it, and a profile would inherit keys it does not set.
if not workflow.overwrite_configfiles:
    workflow.configfile("config/mini.yaml")

validate(config, "config/schema.yaml")
PROFILE = parse_profile(config, source=f"profile {config['profile']!r}")
# a profile planned for GPUs of `resources.gpu_memory` GiB: every GPU training job must fit (python -m suite plan)
from suite.plan import check_planned_profile

check_planned_profile(PROFILE)
# the papers' claims this profile tests (config/paper_numbers.yaml): their keys, tasks and seeds, before any job
from suite.claims import check_profile_claims

check_profile_claims(PROFILE)

DATA = config["data"]["dir"]
RUNS = config["runs_dir"]
RESULTS = config["results_dir"]
MIRROR = config["data"].get("mirror") or os.environ.get("RLREPRO_DATA_MIRROR") or ""
# one spelling per folder: '../shared/data' and '/work/shared/data' must not re-prepare every dataset
MIRROR = os.path.realpath(MIRROR) if MIRROR else ""
EXPERIMENTS = PROFILE.experiments
PAPERS = PROFILE.papers()

# The trainer reads the resolved profile (config files plus any --config overrides).
RESOLVED = Path(RUNS) / "profile.yaml"
RESOLVED.parent.mkdir(parents=True, exist_ok=True)
if not RESOLVED.is_file() or yaml.safe_load(RESOLVED.read_text()) != dict(config):
    RESOLVED.write_text(yaml.safe_dump(dict(config), sort_keys=False))

wildcard_constraints:
    exp="[A-Za-z0-9_-]+",
    task="[A-Za-z0-9_-]+",
    paper="[a-z0-9_-]+",
    dataset="[A-Za-z0-9_-]+",
    split="[A-Za-z0-9_-]+",


localrules: prepare_data, report


def train_resources(exp):
    return EXPERIMENTS[exp].resources


def eval_resources(exp):
    # untrained experiments of one model share their evaluations (Profile.eval_owner): the owner's resources
    return EXPERIMENTS[PROFILE.eval_owner(exp)].eval_resources


def trained(exp):
    return EXPERIMENTS[exp].train is not None


def model_of(exp):
    return f"{RUNS}/{exp}/final" if trained(exp) else EXPERIMENTS[exp].model


def run_hash(exp):
    e = EXPERIMENTS[exp]
    return e.train.hash() if trained(exp) else config_hash({"model": e.model})


def paper_evals(paper):
    # untrained experiments of one model share one evaluation per task (Profile.eval_owner)
    return sorted({str(PROFILE.eval_path(RESULTS, e.name, t)) for e in PROFILE.of_paper(paper) for t in e.eval_tasks})


def paper_runs(paper):
    return [f"{RUNS}/{e.name}/done.json" for e in PROFILE.of_paper(paper) if trained(e.name)]


rule all:
    input:
        expand(f"{RESULTS}/{{paper}}/table.md", paper=PAPERS),


def dataset_spec_param(dataset):
    """A dataset declared inline in a task YAML: its spec hash, so that editing the spec prepares it again (a
    params change). Registered datasets: the mirror's value again (Snakemake records params as a set of values,
    so data prepared before this param existed is not redone). Two task files declaring one name with different
    specs fail here, naming both files."""
    declared = None if dataset in REGISTRY else declared_spec(dataset)
    return f"spec {spec_hash(declared[0])}" if declared else MIRROR


rule prepare_data:
    output:
        f"{DATA}/{{dataset}}/{{split}}.jsonl",
    params:
        mirror=MIRROR,
        spec=lambda wc: dataset_spec_param(wc.dataset),
    log:
        f"{DATA}/logs/{{dataset}}-{{split}}.log",
    shell:
        "python -m suite prepare {wildcards.dataset} --split {wildcards.split} --data-dir {DATA}"
        " --mirror '{params.mirror}' > {log} 2>&1"


rule train:
    input:
        lambda wc: f"{DATA}/{EXPERIMENTS[wc.exp].train.train_dataset}/{EXPERIMENTS[wc.exp].train.train_split}.jsonl",
        # the runs this one reads: an RL run's logged samples (Retaining by Doing's SFT on RL traces, issue 7) and
        # the final weights it starts from (train.init_from)
        lambda wc: [f"{RUNS}/{src}/done.json" for src in (EXPERIMENTS[wc.exp].train.algo.get("traces_from"),
                                                          EXPERIMENTS[wc.exp].train.init_from) if src],
    output:
        f"{RUNS}/{{exp}}/done.json",
    params:
        config_hash=lambda wc: run_hash(wc.exp),
        # gpus > 1: torchrun, one process per GPU (the trainer reads the torchrun world)
        launch=lambda wc: launch(train_resources(wc.exp)["gpus"], "suite train"),
    log:
        f"{RUNS}/{{exp}}/train.log",
    threads: lambda wc: train_resources(wc.exp)["threads"]
    resources:
        gpu=lambda wc: train_resources(wc.exp)["gpus"],
        mem_mb=lambda wc: train_resources(wc.exp)["mem_mb"],
        runtime=lambda wc: train_resources(wc.exp)["runtime"],
    shell:
        "{params.launch} --config {RESOLVED} --experiment {wildcards.exp} --out {RUNS}/{wildcards.exp}"
        " --threads {threads} --resume > {log} 2>&1"


rule evaluate:
    input:
        data=lambda wc: ["{}/{}/{}.jsonl".format(DATA, *task_data(wc.task))] if task_data(wc.task) else [],
        run=lambda wc: [f"{RUNS}/{wc.exp}/done.json"] if trained(wc.exp) else [],
    output:
        f"{RESULTS}/evals/{{exp}}/{{task}}.json",
    params:
        model=lambda wc: model_of(wc.exp),
        limit=lambda wc: PROFILE.eval_settings(wc.task).get("limit") or "",
        overrides=lambda wc: json.dumps(PROFILE.eval_settings(wc.task).get("overrides", {}), sort_keys=True),
        config_hash=lambda wc: run_hash(wc.exp),
        batch_size=config["eval"].get("batch_size", 16),
        seed=config["eval"].get("seed", 0),
        bf16=str(config["eval"].get("bf16", False)).lower(),
        launch=lambda wc: launch(eval_resources(wc.exp)["gpus"], "suite evaluate", torchrun=False),
    log:
        f"{RESULTS}/evals/{{exp}}/{{task}}.log",
    threads: lambda wc: eval_resources(wc.exp)["threads"]
    resources:
        gpu=lambda wc: eval_resources(wc.exp)["gpus"],
        mem_mb=lambda wc: eval_resources(wc.exp)["mem_mb"],
        runtime=lambda wc: eval_resources(wc.exp)["runtime"],
    shell:
        "{params.launch} --threads {threads} --model {params.model} --task {wildcards.task} --out {output}"
        " --data-dir {DATA} --limit '{params.limit}' --overrides '{params.overrides}' --seed {params.seed}"
        " --batch-size {params.batch_size} --bf16 {params.bf16} --config-hash {params.config_hash} > {log} 2>&1"


rule report:
    input:
        evals=lambda wc: paper_evals(wc.paper),
        runs=lambda wc: paper_runs(wc.paper),
    output:
        table=f"{RESULTS}/{{paper}}/table.md",
        csv=f"{RESULTS}/{{paper}}/table.csv",
    log:
        f"{RESULTS}/{{paper}}/report.log",
    shell:
        "python -m suite report --config {RESOLVED} --paper {wildcards.paper} --results {RESULTS}"
        " --runs {RUNS} --out {RESULTS}/{wildcards.paper} > {log} 2>&1"
