"""Cooper's reference-based reward model: template, truncation, losses, scoring, its own optimiser."""

import math

import pytest
import torch

from suite.rewards.reward_model import (
    RewardModel, bce_loss, format_input, pairwise_loss, truncate_middle,
)


@pytest.fixture(scope="module")
def rm():
    return RewardModel.from_pretrained("tiny-llama", seed=0, max_length=128, lr=1e-2, batch_size=4, bf16=False)


def test_template_is_the_papers():
    assert format_input("What is 2 + 2?", "4", "2 + 2 = 4") == (
        "<question>What is 2 + 2?</question>\n<reference_answer>4</reference_answer>\n<completion>2 + 2 = 4</completion>"
    )


def test_encode_is_the_template_when_it_fits(rm):
    ids = rm.encode("What is 12 + 34?", "46", "The answer is 46.")
    assert len(ids) <= 128
    assert rm.tokenizer.decode(ids) == format_input("What is 12 + 34?", "46", "The answer is 46.")


def test_truncate_middle_keeps_a_third_of_the_head_and_the_tail():
    # budget 6: head = 6 // 3 = 2 tokens, tail = 4 tokens
    assert truncate_middle(list(range(10)), 6) == [0, 1, 6, 7, 8, 9]
    assert truncate_middle([1, 2, 3], 6) == [1, 2, 3]


def test_only_the_completion_is_truncated(rm):
    question, reference = "What is 12 + 34?", "46"
    completion = "The quick brown fox. " * 30 + "So the answer is 46."
    ids = rm.encode(question, reference, completion)
    assert len(ids) == 128
    prefix = rm._ids(f"<question>{question}</question>\n<reference_answer>{reference}</reference_answer>\n<completion>")
    suffix = rm._ids("</completion>")
    body = rm._ids(completion)
    budget = 128 - len(prefix) - len(suffix)
    head = budget // 3
    assert ids[:len(prefix)] == prefix and ids[-len(suffix):] == suffix  # question and reference whole
    assert ids[len(prefix):-len(suffix)] == body[:head] + body[len(body) - (budget - head):]
    assert rm.tokenizer.decode(ids).endswith("So the answer is 46.</completion>")  # the final answer survives


def test_long_question_keeps_a_minimum_of_completion(rm):
    ids = rm.encode("How many? " * 40, "46", "The quick brown fox. " * 10)
    prefix = rm._ids("<question>" + "How many? " * 40 + "</question>\n<reference_answer>46</reference_answer>\n<completion>")
    assert len(ids) == len(prefix) + 16 + len(rm._ids("</completion>"))  # MIN_COMPLETION_TOKENS


def test_bce_loss_hand_computed():
    # logits (0, 2), labels (1, 0): -log σ(0) = ln 2 = 0.693147; -log(1 - σ(2)) = ln(1 + e^2) = 2.126928
    loss = bce_loss(torch.tensor([0.0, 2.0]), torch.tensor([1, 0]))
    assert loss.item() == pytest.approx((0.693147 + 2.126928) / 2, abs=1e-5)


def test_pairwise_loss_hand_computed():
    # s+ - s- = (1, -1): -log σ(1) = ln(1 + e^-1) = 0.313262; -log σ(-1) = ln(1 + e) = 1.313262
    loss = pairwise_loss(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
    assert loss.item() == pytest.approx((0.313262 + 1.313262) / 2, abs=1e-5)
    assert pairwise_loss(torch.tensor([3.0]), torch.tensor([3.0])).item() == pytest.approx(math.log(2))


def test_scores_do_not_depend_on_batching_or_padding(rm):
    triples = [("What is 1 + 1?", "2", "2"), ("What is 12 + 34?", "46", "12 + 34 = 46, so the answer is 46."),
               ("What is 5 + 5?", "10", "ten")]
    together = rm.score(triples)
    alone = torch.stack([rm.score([t])[0] for t in triples])
    assert torch.allclose(together, alone, atol=1e-5)  # left padding, order restored after length sorting
    assert torch.allclose(rm.rewards(triples), torch.sigmoid(together))


def test_pair_update_uses_the_rm_optimizer_and_raises_the_margin():
    rm = RewardModel.from_pretrained("tiny-llama", seed=0, max_length=128, lr=1e-3, batch_size=2, bf16=False)
    assert rm.optimizer.param_groups[0]["lr"] == 1e-3
    pos = [("What is 12 + 34?", "46", "\\boxed{46}"), ("What is 1 + 2?", "3", "\\boxed{3}")]
    neg = [("What is 12 + 34?", "46", "\\boxed{47}"), ("What is 1 + 2?", "3", "\\boxed{5}")]
    before = rm.score(pos) - rm.score(neg)
    stats = rm.update_pairs(pos, neg)
    # the reported loss is the pairwise loss of the scores before the step, over both micro-batches
    # (batch_size 2 = one pair per micro-batch)
    assert stats["rm_loss"] == pytest.approx(pairwise_loss(before, torch.zeros(2)).item(), abs=1e-4)
    after = rm.score(pos) - rm.score(neg)
    assert after.mean() > before.mean()
    assert rm.update_pairs([], []) == {}


def test_state_dict_round_trip():
    a = RewardModel.from_pretrained("tiny-llama", seed=0, max_length=64, lr=1e-2, bf16=False)
    a.update_pairs([("q", "1", "\\boxed{1}")], [("q", "1", "\\boxed{2}")])
    b = RewardModel.from_pretrained("tiny-llama", seed=1, max_length=64, lr=1e-2, bf16=False)
    b.load_state_dict(a.state_dict())
    for (name, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(x, y), name
    assert b.optimizer.state_dict()["state"][0]["exp_avg"].equal(a.optimizer.state_dict()["state"][0]["exp_avg"])


def test_seeded_head_is_reproducible():
    a = RewardModel.from_pretrained("tiny-llama", seed=3, bf16=False)
    b = RewardModel.from_pretrained("tiny-llama", seed=3, bf16=False)
    assert torch.equal(a.model.score.weight, b.model.score.weight)
