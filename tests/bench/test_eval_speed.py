"""Evaluation speed: our lm-eval model (`rlrepro`, suite/lm_backend.py) against lm-eval's `hf`, in one run.

Same model (SmolLM2-135M-Instruct), tasks, prompts, lm-eval batch size (16) and seed; each arm runs the whole
`suite.evaluate.evaluate` call a user's `python -m suite evaluate` makes (model load included), after one untimed
call that pays lm-eval's one-off start-up costs:

- `rlrepro`: our backend as `python -m suite evaluate` runs it (fp32 on the CPU, 128 rows per generation batch);
- `rlrepro-16`: the same with `--generation-rows 16`, hf's batch, to separate the engine from the batch;
- `rlrepro-bf16`: with `--bf16 auto`: bf16 generation where the CPU has bf16 instructions;
- `hf`: lm-eval's `hf` model (fp32 on the CPU, batches of 16).

Tasks: GSM8K, first 50 problems, greedy, 256 new tokens (`rlrepro`'s responses must equal `hf`'s; the bf16
arm's agreement with them is reported, not required); MATH-500, first 20 problems x 4 samples (repeats), T = 0.6,
256 new tokens.

    RLREPRO_DATA_MIRROR=../shared/data pytest tests/bench/test_eval_speed.py -m bench \
        --benchmark-json results/bench/eval.json
    python scripts/bench_report.py results/bench/eval.json > results/bench/eval.md

Needs the GSM8K and MATH-500 test files (a local mirror, $RLREPRO_DATA_MIRROR, or the hub). The responses are
kept in results/bench/eval/. Run with nothing else busy: one other process on 2 cores makes timings 2-6x worse.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from suite.models import SMOLLM2
from suite.precision import describe_hardware

pytestmark = pytest.mark.bench

OUT = Path(__file__).resolve().parents[2] / "results" / "bench" / "eval"
BATCH = 16
CASES = {
    "gsm8k": dict(limit=50, overrides={"generation_kwargs": {"max_gen_toks": 256}}),
    "math500": dict(limit=20, overrides={"repeats": 4, "generation_kwargs": {"max_gen_toks": 256}}),
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from suite.data import prepare

    root = tmp_path_factory.mktemp("eval-bench-data")
    for task in CASES:
        prepare(task, "test", root, mirror=os.environ.get("RLREPRO_DATA_MIRROR"))
    return root


ARMS = {"rlrepro": dict(backend="rlrepro"), "rlrepro-16": dict(backend="rlrepro", generation_rows=16),
        "rlrepro-bf16": dict(backend="rlrepro", bf16="auto"), "hf": dict(backend="hf")}


@pytest.fixture(scope="module")
def warm(data_dir, tmp_path_factory):
    """One untimed tiny evaluation per backend: lm-eval's imports and task indexing would otherwise be charged
    to whichever arm runs first."""
    from suite.evaluate import evaluate

    out = tmp_path_factory.mktemp("warm")
    for backend in ("rlrepro", "hf"):
        evaluate(SMOLLM2, "gsm8k", out / f"{backend}.json", data_dir=str(data_dir), limit=1, seed=0,
                 overrides={"generation_kwargs": {"max_gen_toks": 1}}, batch_size=BATCH, backend=backend)


@pytest.mark.parametrize("arm", list(ARMS))
@pytest.mark.parametrize("task", list(CASES))
def test_evaluate(benchmark, data_dir, warm, task, arm):
    from suite.evaluate import evaluate

    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / f"{task}-{arm}.json"
    case = CASES[task]
    result = benchmark.pedantic(
        lambda: evaluate(SMOLLM2, task, out, data_dir=str(data_dir), limit=case["limit"], overrides=case["overrides"],
                         seed=0, batch_size=BATCH, **ARMS[arm]),
        rounds=1, iterations=1)
    backend = ARMS[arm]["backend"]
    responses = [json.loads(line)["responses"] for line in open(f"{out}.samples.jsonl")]
    benchmark.extra_info.update(
        task=task, backend=backend, arm=arm, precision=result.get("generation_precision", "fp32"),
        problems=len(responses), samples=sum(map(len, responses)),
        score=result["metrics"]["acc"]["value"], hardware=describe_hardware(),
        measured_at=time.strftime("%Y-%m-%d %H:%M:%S"))


def test_greedy_responses_are_identical():
    """GSM8K (greedy): every response of `rlrepro` in fp32 equals `hf`'s (both files written by the runs above)."""
    ours, hf = ([json.loads(line) for line in open(OUT / f"gsm8k-{b}.json.samples.jsonl")]
                for b in ("rlrepro", "hf"))
    differ = [a["id"] for a, b in zip(ours, hf) if a["responses"] != b["responses"]]
    assert len(ours) == len(hf) == CASES["gsm8k"]["limit"]
    assert not differ, f"{len(differ)} of {len(ours)} GSM8K responses differ: {differ[:5]}"
