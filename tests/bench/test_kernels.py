"""The two CPU choices inside a training step, each against the alternative, on SmolLM2-135M-Instruct.

- Sampling the next token: ``torch.multinomial`` (what ``generate(do_sample=True)`` calls) against
  :class:`suite.rollout.InverseCDFSampler`, on 16 rows over the 49k-token vocabulary.
- Attention: PyTorch's SDPA (the transformers default) against eager attention, for the training pass
  (forward + backward of 2048 tokens in bf16 autocast, as rows of 128, 512 and 1024 tokens) and for
  decoding (one step's generation of the trainer benchmark: 4 prompts x 4 samples, 64 new tokens, the
  trainer's own bf16 engine). The training rows set ``suite.models.EAGER_MAX_TOKENS``.

    pytest tests/bench/test_kernels.py -m bench --benchmark-json results/bench/kernels.json
    python scripts/bench_report.py results/bench/kernels.json > results/bench/kernels.md

Run with nothing else busy.
"""

from __future__ import annotations

import pytest
import torch

from suite.models import SMOLLM2, attention, load_model
from suite.rollout import InverseCDFSampler

pytestmark = pytest.mark.bench

ROWS, VOCAB = 16, 49152


@pytest.fixture(scope="module")
def smollm2():
    model, tokenizer = load_model(SMOLLM2)
    return model, tokenizer


@pytest.mark.parametrize("sampler", ["multinomial", "inverse_cdf"])
def test_sampling(benchmark, sampler):
    torch.manual_seed(0)
    scores = torch.randn(ROWS, VOCAB) * 3
    if sampler == "multinomial":
        benchmark(lambda: torch.multinomial(torch.softmax(scores, -1), 1))
    else:
        draw = InverseCDFSampler()
        benchmark(lambda: draw(None, scores))


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("row_tokens", [128, 512, 1024])
def test_training_attention(benchmark, smollm2, row_tokens, impl):
    model, _ = smollm2
    model.train()
    ids = torch.randint(0, VOCAB, (2048 // row_tokens, row_tokens), generator=torch.Generator().manual_seed(0))

    def forward_backward():
        with torch.autocast("cpu", dtype=torch.bfloat16), attention(model, impl):
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), logits_to_keep=65).logits
        logits.float().logsumexp(-1).sum().backward()
        model.zero_grad(set_to_none=True)

    benchmark.pedantic(forward_backward, rounds=3, warmup_rounds=1, iterations=1)
    benchmark.extra_info["row_tokens"] = row_tokens


@pytest.fixture(scope="module")
def grpo_trainer(tmp_path_factory):
    """The trainer of the GRPO speed benchmark (tests/bench/test_trainer_speed.py), for its rollout engine."""
    from benchmarks.trl_grpo import our_config, prepare_data
    from suite.trainer import Trainer

    root = tmp_path_factory.mktemp("kernels")
    return Trainer(our_config(prepare_data(root / "data"), steps=1000), root / "run")


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_decoding_attention(benchmark, grpo_trainer, impl, monkeypatch):
    """One step's generation of the GRPO benchmark: 4 prompts x 4 samples, up to 64 new tokens at T = 1."""
    from suite import rollout

    # the engine picks its attention itself (suite.models.cpu_attention): make it pick ``impl``
    monkeypatch.setattr(rollout, "cpu_attention", lambda device, tokens: impl)
    t = grpo_trainer
    prompts = [t.prompt_ids(r) for r in t.records_for_step(0, 4)]
    params = rollout.SamplingParams(max_new_tokens=64, n=4)

    def generate():
        torch.manual_seed(0)
        return t.engine.generate(prompts, params)

    benchmark.pedantic(generate, rounds=3, warmup_rounds=1, iterations=1)
