"""The `rlrepro` lm-eval model: lm-eval's hf model generating through our rollout engine.

Greedy outputs must be token-identical to lm-eval's own `hf` model on the same prompts (same precision, fp32),
sampled ones must follow the distribution `hf` samples from (temperature, then transformers' default top-k),
and it is the default backend on the CPU.
"""

import json

import pytest
import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from suite.lm_backend import RolloutLM
from suite.models import resolve_model
from suite.rollout import HFEngine, SamplingParams

QUESTIONS = ["What is 3 + 4?", "What is 12 + 9? Show your work.", "Add 5 and 5.", "2 + 2 =",
             "Compute 7 + 8, then say done.", "What is 40 + 2?", "1 + 1?"]


@pytest.fixture(scope="module")
def models():
    location = resolve_model("tiny-llama-warm")
    kwargs = dict(pretrained=location, dtype="float32", device="cpu", batch_size=3)
    return RolloutLM(**kwargs), HFLM(**kwargs)


@pytest.fixture(scope="module")
def untrained():
    """tiny-llama as built (random weights): a spread-out next-token distribution, for the sampling test."""
    return RolloutLM(pretrained=resolve_model("tiny-llama"), dtype="float32", device="cpu", batch_size=4000)


def requests(lm, gen_kwargs, questions=QUESTIONS, repeats=1):
    contexts = [lm.apply_chat_template([{"role": "user", "content": q}]) for q in questions]
    # lm-eval hands a model each request `repeats` times in a row (evaluator: cloned requests)
    return [Instance("generate_until", None, (c, dict(gen_kwargs)), i) for i, c in enumerate(contexts)
            for _ in range(repeats)]


# the warm model answers "\boxed{9}" and stops: stop strings that cut it, and a length cap that does
@pytest.mark.parametrize("until, max_gen_toks", [([], 24), (["}"], 24), (["1"], 24), ([], 4)])
def test_greedy_outputs_are_those_of_lm_evals_hf_model(models, until, max_gen_toks):
    ours, hf = models
    reqs = requests(ours, {"until": until, "do_sample": False, "max_gen_toks": max_gen_toks})
    a, b = ours.generate_until(reqs), hf.generate_until(reqs)
    assert a == b
    assert len(set(a)) > 2  # varied answers: the comparison says something


def test_greedy_repeats_are_decoded_once_and_equal_hfs(models, monkeypatch):
    ours, hf = models
    reqs = requests(ours, {"until": ["\n\n"], "do_sample": False, "max_gen_toks": 16}, QUESTIONS[:3], repeats=4)
    calls = []
    real = ours.engine.generate
    monkeypatch.setattr(ours.engine, "generate", lambda p, params: calls.append(params.n) or real(p, params))
    assert ours.generate_until(reqs) == hf.generate_until(reqs)
    assert calls == [1]  # three prompts, one greedy decoding each, copied to the four repeats


def test_a_stop_string_starting_in_the_prompt_does_not_end_the_completion(untrained):
    """The chat prompt ends with "\n" and untrained tiny-llama's greedy tokens are newlines: transformers'
    stop_strings would stop after one token ("\n" + "\n"); lm-eval's hf model, and ours, after two."""
    ours = untrained
    newline = ours.tokenizer("\n", add_special_tokens=False)["input_ids"]
    prompt = ours._encode(ours.apply_chat_template([{"role": "user", "content": "Hi"}]), 4000)
    assert ours.tok_decode(prompt[-1:], skip_special_tokens=False).endswith("\n")
    greedy = ours.engine.generate([prompt], SamplingParams(max_new_tokens=6, greedy=True))[0]
    assert greedy[:2] == newline * 2, "the premise: the untrained model's first tokens are newlines"
    stopped = ours.engine.generate([prompt], SamplingParams(max_new_tokens=6, greedy=True, stop=("\n\n",)))[0]
    assert stopped == newline * 2


def test_sampled_first_tokens_follow_the_distribution_hf_samples_from(untrained):
    """T = 0.6 and transformers' default top-k (50): a chi-square test of ours against the exact probabilities,
    which an off-by-one token fails."""
    ours = untrained
    n, temperature = 4000, 0.6
    reqs = requests(ours, {"until": [], "do_sample": True, "temperature": temperature, "max_gen_toks": 1},
                    ["What is 3 + 4?"], repeats=n)
    torch.manual_seed(0)
    texts = ours.generate_until(reqs)
    prompt = ours._encode(reqs[0].args[0], 4000)
    with torch.no_grad():
        logits = ours.model(input_ids=torch.tensor([prompt])).logits[0, -1].double() / temperature
    keep = logits >= logits.topk(50).values[-1]
    exact = torch.softmax(logits.masked_fill(~keep, -float("inf")), -1)
    vocab = [ours.tok_decode([t]) for t in range(exact.numel())]
    text_prob: dict[str, float] = {}
    for t, p in enumerate(exact.tolist()):  # tokens that decode to the same text are one cell
        text_prob[vocab[t]] = text_prob.get(vocab[t], 0.0) + p

    def chi_square(draws):
        counts = {}
        for d in draws:
            counts[d] = counts.get(d, 0) + 1
        big = [k for k, p in text_prob.items() if p * n >= 5]
        stat = sum((counts.get(k, 0) - text_prob[k] * n) ** 2 / (text_prob[k] * n) for k in big)
        rest_p = 1 - sum(text_prob[k] for k in big)
        rest = sum(v for k, v in counts.items() if k not in big)
        if rest_p * n >= 1:
            stat += (rest - rest_p * n) ** 2 / (rest_p * n)
        return stat, len(big)

    stat, df = chi_square(texts)
    assert df >= 5 and stat < df + 4 * (2 * df) ** 0.5, (stat, df)
    order = sorted(text_prob, key=text_prob.get)
    shifted, df = chi_square([order[(order.index(t) + 1) % len(order)] if t in text_prob else t for t in texts])
    assert shifted > df + 4 * (2 * df) ** 0.5


def test_repeats_share_one_prefill_per_prompt(models, monkeypatch):
    ours, _ = models
    reqs = requests(ours, {"until": [], "do_sample": True, "temperature": 1.0, "max_gen_toks": 4},
                    QUESTIONS[:2], repeats=3)
    seen = []
    real = ours.engine.generate
    monkeypatch.setattr(ours.engine, "generate", lambda p, params: seen.append((len(p), params.n)) or real(p, params))
    out = ours.generate_until(reqs)
    assert len(out) == 6 and seen == [(2, 3)]


def test_settings_the_engine_lacks_fall_back_to_hf(models):
    ours, hf = models
    reqs = requests(ours, {"until": [], "do_sample": False, "max_gen_toks": 8, "num_beams": 2}, QUESTIONS[:2])
    assert ours.params_for(reqs[0].args[1]) is None
    assert ours.generate_until(reqs) == hf.generate_until(reqs)


def test_stop_on_text_looks_at_generated_tokens_only():
    from suite.models import load_model
    from suite.rollout import StopOnText

    _, tokenizer = load_model("tiny-llama")
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    word = tokenizer("cat", add_special_tokens=False)["input_ids"][:1]
    assert len(newline) == 1
    stopped = StopOnText(["\n\n"], tokenizer)
    assert not stopped(newline) and not stopped(word)  # the prompt's "\n" + a generated "\n" is no stop
    assert not stopped(newline + word + newline)
    assert stopped(word + newline + newline)


def test_rlrepro_is_the_default_backend_without_a_gpu(tmp_path, monkeypatch):
    from suite import evaluate as ev

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert ev.default_backend() == "rlrepro"


@pytest.mark.slow
def test_evaluate_runs_a_task_through_the_rlrepro_backend_with_hfs_outputs(tmp_path):
    from suite.data import prepare
    from suite.evaluate import evaluate

    data = tmp_path / "data"
    prepare("arithmetic_smoke", "train", str(data))
    kwargs = dict(data_dir=str(data), limit=6, seed=0, batch_size=4)
    ours = evaluate("tiny-llama-warm", "arithmetic_smoke", tmp_path / "ours.json", bf16=False, **kwargs)
    hf = evaluate("tiny-llama-warm", "arithmetic_smoke", tmp_path / "hf.json", backend="hf", **kwargs)
    assert ours["backend"] == "rlrepro" and hf["backend"] == "hf"
    assert ours["generation_precision"] == "fp32"
    read = lambda p: [json.loads(line)["responses"] for line in open(p)]  # noqa: E731
    assert read(tmp_path / "ours.json.samples.jsonl") == read(tmp_path / "hf.json.samples.jsonl")
    assert ours["metrics"] == hf["metrics"]


def test_generation_precision_and_rows_are_the_backends_settings():
    """bf16=True generates from a bf16 copy in batches of generation_rows, leaving the loaded model (which answers
    log-likelihood requests) in fp32; "auto" follows the CPU; False samples from the loaded model itself."""
    from suite.precision import native_bf16

    location = resolve_model("tiny-llama")
    lm = RolloutLM(pretrained=location, dtype="float32", device="cpu", batch_size=2, bf16=True, generation_rows=7)
    assert lm.engine.model.dtype == torch.bfloat16 and lm.model.dtype == torch.float32
    assert lm.engine.batch_size == 7 and lm.engine.model is not lm.model
    auto = RolloutLM(pretrained=location, dtype="float32", device="cpu", batch_size=2, bf16="auto")
    assert auto.generation_bf16 == native_bf16("cpu") and auto.engine.batch_size == 2
    plain = RolloutLM(pretrained=location, dtype="float32", device="cpu", batch_size=2)
    assert plain.engine.model is plain.model
    out = lm.generate_until(requests(lm, {"until": ["\n"], "max_gen_toks": 4, "do_sample": False}))
    assert len(out) == len(QUESTIONS) and all(isinstance(t, str) for t in out)
