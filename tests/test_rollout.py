"""CPU speed choices: the inverse-CDF sampler, and the attention kernel per forward pass."""

import math

import pytest
import torch
from transformers import DynamicCache

from suite.models import EAGER_MAX_TOKENS, TINY, attention, cpu_attention, load_model
from suite.rollout import HFEngine, InverseCDFSampler, SamplingParams, left_pad, sampling_processors


def test_inverse_cdf_sampler_draws_each_token_with_its_softmax_probability():
    probs = torch.tensor([0.1, 0.2, 0.0, 0.7])
    rows = 40_000
    scores = probs.log().expand(rows, 4).clone()  # log 0 = -inf: a token that may never be drawn
    torch.manual_seed(0)
    out = InverseCDFSampler()(None, scores)
    assert torch.isfinite(out).sum(-1).eq(1).all()  # exactly one token left per row
    counts = torch.bincount(out.argmax(-1), minlength=4).float() / rows
    assert counts[2] == 0
    se = (probs * (1 - probs) / rows).sqrt()
    assert ((counts - probs).abs() <= 4 * se + 1e-9).all(), counts


def test_inverse_cdf_sampler_never_draws_a_token_of_probability_zero_at_the_ends():
    # the mass sits on the middle tokens only: draws near u = 0 and u = total must stay inside it
    scores = torch.tensor([[-math.inf, 0.0, 0.0, -math.inf]]).expand(10_000, 4).clone()
    torch.manual_seed(1)
    drawn = InverseCDFSampler()(None, scores).argmax(-1)
    assert set(drawn.tolist()) == {1, 2}


@pytest.mark.parametrize("u, expected", [(0.0, 1), (0.4999, 1), (0.5, 2), (1.0, 2)])
def test_inverse_cdf_sampler_at_the_edges_of_the_uniform_draw(monkeypatch, u, expected):
    # probabilities 0, 0.5, 0.5, 0: u = 0 and u = 1 (the total, reachable by rounding) still land on mass
    real_rand = torch.rand
    monkeypatch.setattr(torch, "rand", lambda *shape, **kw: torch.full(shape, u))
    scores = torch.tensor([[-math.inf, 0.0, 0.0, -math.inf]])
    drawn = InverseCDFSampler()(None, scores).argmax(-1).item()
    monkeypatch.setattr(torch, "rand", real_rand)
    assert drawn == expected


def test_sampling_processors_apply_temperature_and_top_p_before_the_draw():
    # logits 0, log 2, log 7 -> probabilities 0.1, 0.2, 0.7; at T = 0.5 they become 1, 4, 49 (/54)
    scores = torch.tensor([[0.0, math.log(2), math.log(7)]]).expand(40_000, 3).clone()
    torch.manual_seed(2)
    drawn = sampling_processors(SamplingParams(max_new_tokens=1, temperature=0.5))(None, scores).argmax(-1)
    freq = torch.bincount(drawn, minlength=3).float() / len(drawn)
    expected = torch.tensor([1, 4, 49]) / 54
    assert (freq - expected).abs().max() < 4 * (0.25 / len(drawn)) ** 0.5, freq
    # top-p 0.6 keeps the smallest set with mass >= 0.6: token 2 alone
    drawn = sampling_processors(SamplingParams(max_new_tokens=1, top_p=0.6))(None, scores).argmax(-1)
    assert drawn.eq(2).all()


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = load_model(TINY)
    return model.eval(), tokenizer


def test_engine_samples_the_first_token_as_transformers_multinomial_does(tiny):
    """Ours and ``generate(do_sample=True)`` both pass a chi-square test against the exact distribution."""
    model, tokenizer = tiny
    engine = HFEngine(model, tokenizer, batch_size=4000, bf16=False)
    prompt = tokenizer("What is 12 + 34?")["input_ids"]
    n, temperature = 4000, 0.3  # a peaked distribution, so most of its mass is in well-filled cells
    torch.manual_seed(0)
    # the engine drops a trailing pad token, so a drawn pad comes back as an empty completion
    ours = [c[0] if c else tokenizer.pad_token_id
            for c in engine.generate([prompt], SamplingParams(max_new_tokens=1, n=n, temperature=temperature))]
    ids, attn = left_pad([prompt] * n, tokenizer.pad_token_id)
    torch.manual_seed(1)
    with torch.no_grad():
        theirs = model.generate(input_ids=ids, attention_mask=attn, do_sample=True, top_k=0, max_new_tokens=1,
                                temperature=temperature, pad_token_id=tokenizer.pad_token_id)[:, -1].tolist()
        exact = torch.softmax(model(input_ids=torch.tensor([prompt])).logits[0, -1].double() / temperature, -1)

    def chi_square(draws):
        """Pearson's statistic over cells expecting >= 5 draws (the rest pooled into one cell), and its df."""
        counts = torch.bincount(torch.tensor(draws), minlength=exact.numel()).double()
        big = exact * n >= 5
        observed = torch.cat([counts[big], counts[~big].sum(0, keepdim=True)])
        expected = torch.cat([exact[big] * n, exact[~big].sum(0, keepdim=True) * n])
        return float(((observed - expected) ** 2 / expected).sum()), len(observed) - 1

    for draws in (ours, theirs):
        stat, df = chi_square(draws)
        assert df >= 10 and stat < df + 4 * (2 * df) ** 0.5, (stat, df)  # ~4 SD above the mean df
    # an off-by-one draw (the token after the sampled one) fails the same test
    shifted, df = chi_square([(t + 1) % exact.numel() for t in ours])
    assert shifted > df + 4 * (2 * df) ** 0.5


def test_engine_with_a_tiny_top_p_decodes_greedily(tiny):
    model, tokenizer = tiny
    engine = HFEngine(model, tokenizer, bf16=False)
    prompts = [tokenizer("What is 1 + 2?")["input_ids"], tokenizer("The quick brown")["input_ids"]]
    sampled = engine.generate(prompts, SamplingParams(max_new_tokens=8, top_p=1e-9, n=2))
    greedy = engine.generate(prompts, SamplingParams(max_new_tokens=8, greedy=True, n=2))
    assert sampled == greedy


def test_cpu_attention_is_sdpa_for_generation_eager_for_short_rows_and_untouched_on_gpu():
    cpu = torch.device("cpu")
    assert cpu_attention(cpu, None) == "sdpa"  # generation reads suite/kv_cache.py's strided views in place
    assert cpu_attention(cpu, EAGER_MAX_TOKENS) == "eager"
    assert cpu_attention(cpu, EAGER_MAX_TOKENS + 1) == "sdpa"
    assert cpu_attention(torch.device("cuda"), 10) is None


def test_eager_and_sdpa_give_the_same_logprobs_on_left_padded_rows(tiny):
    model, tokenizer = tiny
    rows = [tokenizer(t)["input_ids"] for t in ["What is 12 + 34? The answer", "Paris", "The quick brown fox."]]
    ids, attn = left_pad(rows, tokenizer.pad_token_id)
    positions = (attn.cumsum(1) - 1).clamp(min=0)
    out = {}
    with torch.no_grad():
        for impl in ("sdpa", "eager"):
            with attention(model, impl):
                out[impl] = torch.log_softmax(model(input_ids=ids, attention_mask=attn, position_ids=positions)
                                              .logits, -1)
    real = attn.bool()
    assert torch.allclose(out["sdpa"][real], out["eager"][real], atol=1e-5)


def test_attention_switch_is_undone_after_the_block_even_on_error(tiny):
    model, _ = tiny
    before = model.config._attn_implementation
    with pytest.raises(RuntimeError):
        with attention(model, "eager" if before != "eager" else "sdpa"):
            assert model.config._attn_implementation != before
            raise RuntimeError("boom")
    assert model.config._attn_implementation == before


def test_copies_of_a_prompt_share_its_prefill_and_decode_as_separate_rows_do(tiny):
    """n samples of a prompt start from one prefill (its keys and values repeated): same tokens, greedy or
    sampled at a fixed seed, as n separate rows; prompts of different lengths, so left padding is involved."""
    model, tokenizer = tiny
    engine = HFEngine(model, tokenizer, bf16=False)
    prompts = [tokenizer("What is 12 + 34? The answer")["input_ids"], tokenizer("Paris")["input_ids"]]
    rows = [p for p in prompts for _ in range(3)]
    for params in (SamplingParams(max_new_tokens=10, greedy=True), SamplingParams(max_new_tokens=10, temperature=0.7)):
        torch.manual_seed(3)
        shared = engine.generate(prompts, SamplingParams(**{**vars(params), "n": 3}))
        torch.manual_seed(3)
        separate = engine.generate(rows, params)
        assert shared == separate
        assert engine._chunks(prompts, 3) == [(prompts, 3)]


def test_generation_chunks_keep_groups_whole_and_split_rows_when_a_group_is_too_big(tiny):
    model, tokenizer = tiny
    engine = HFEngine(model, tokenizer, batch_size=4, bf16=False)
    a, b, c = [1], [2], [3]
    assert engine._chunks([a, b, c], 2) == [([a, b], 2), ([c], 2)]
    assert engine._chunks([a], 6) == [([a] * 4, 1), ([a] * 2, 1)]
    assert engine._chunks([a, b], 1) == [([a, b], 1)]


def test_rows_that_end_leave_the_batch_and_the_others_decode_as_generate_does(tiny, monkeypatch):
    """The engine drops ended rows from its batch and cache (suite/rollout.py HFEngine._decode); the rows left must
    still get generate()'s greedy tokens, and an ended row keeps its tokens up to its EOS."""
    model, tokenizer = tiny
    prompts = [[5, 6, 7, 8], [9, 10], [11, 12, 13], [14], [15, 16], [17, 18, 19, 20, 21]]
    ids, attn = left_pad(prompts, tokenizer.pad_token_id)
    with torch.no_grad():
        free = model.generate(input_ids=ids, attention_mask=attn, do_sample=False, max_new_tokens=16,
                              min_new_tokens=16, pad_token_id=tokenizer.pad_token_id)[:, ids.shape[1]:]
    # tiny-llama repeats a row's last token: ending on rows 0, 2 and 5's tokens ends those rows at their first
    # token, and the other three must go on decoding, from a batch and cache without them
    ends = {free[0, 0].item(), free[2, 0].item(), free[5, 0].item()}
    assert sum(bool(set(row) & ends) for row in free.tolist()) == 3
    engine = HFEngine(model, tokenizer, batch_size=8, bf16=False)
    engine.eos_ids = ends
    kept = []
    real_select = DynamicCache.batch_select_indices
    monkeypatch.setattr(DynamicCache, "batch_select_indices",
                        lambda cache, index: (kept.append(index.tolist()), real_select(cache, index)))
    ours = engine.generate(prompts, SamplingParams(max_new_tokens=16, greedy=True))
    assert kept == [[1, 3, 4]]  # the ended rows left the batch once, after the first token
    for r, row in enumerate(free.tolist()):
        assert ours[r] == (row[:1] if r in (0, 2, 5) else row), r


def test_draw_from_top_k_draws_the_top_k_softmax_at_the_temperature():
    from suite.rollout import draw_from_top_k

    # logits log 1..4 and two impossible tokens; top 2 at T = 0.5: weights 3^2 : 4^2 -> 9/25, 16/25
    scores = torch.tensor([0.0, math.log(2), math.log(3), math.log(4), -math.inf, -math.inf])
    rows = 40_000
    torch.manual_seed(3)
    drawn = draw_from_top_k(scores.expand(rows, 6).clone(), k=2, temperature=0.5)
    counts = torch.bincount(drawn, minlength=6).float() / rows
    expected = torch.tensor([0, 0, 9 / 25, 16 / 25, 0, 0])
    se = (expected * (1 - expected) / rows).sqrt()
    assert ((counts - expected).abs() <= 4 * se + 1e-9).all(), counts
