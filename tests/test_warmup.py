"""tiny-llama-warm (suite/warmup.py): the corpus is right where it says so, the warm-up learns, deterministically."""


import pytest
import torch

from suite.data import REGISTRY, prepare, load_records
from suite.rewards import get_reward
from suite.warmup import SCHEDULE, SMOKE_SETS, corpus, smoke_records, warm_up


@pytest.fixture(scope="module")
def sources():
    return corpus()


def test_every_source_has_rows_with_right_and_wrong_answers(sources):
    assert set(sources) == set(SCHEDULE)
    for name, rows in sources.items():
        assert rows, name
        assert all(right and wrong for _, right, wrong in rows), name


def test_right_answers_score_1_and_wrong_answers_score_0(sources):
    math = get_reward("math_verify")
    for (prompt, right, wrong), rec in zip(sources["arithmetic"][::2], smoke_records("arithmetic_smoke")):
        assert rec["prompt"] in prompt
        assert math(right[0], rec["answers"]) == 1.0
        assert all(math(w, rec["answers"]) == 0.0 for w in wrong)
    countdown = get_reward("countdown")
    for (prompt, right, wrong), rec in zip(sources["countdown"], smoke_records("countdown_smoke")):
        assert countdown(right[0], rec["answers"]) == 1.0, (right, rec["metadata"])
        assert all(countdown(w, rec["answers"]) == 0.0 for w in wrong), (wrong, rec["metadata"])
    for prompt, right, wrong in sources["choice"]:
        letter = right[0][-1]
        assert all(w[-1] != letter for w in wrong) and len(wrong) == 3


def test_the_smoke_sets_are_registered_and_their_test_splits_are_held_out(tmp_path):
    for name in SMOKE_SETS:
        assert name in REGISTRY
        prepare(name, "train", tmp_path)
        prepare(name, "test", tmp_path)
        train = {r["prompt"] for r in load_records(name, "train", tmp_path)}
        test = {r["prompt"] for r in load_records(name, "test", tmp_path)}
        assert len(train) == 16 and test and not train & test
        assert [r["prompt"] for r in load_records(name, "train", tmp_path)] == [r["prompt"] for r in smoke_records(name)]


def test_warm_up_learns_and_is_deterministic():
    """A few arithmetic steps lower the loss, and the same seed gives the same weights."""
    from suite.models import load_model

    schedule = {"arithmetic": (30, 32)}
    weights = []
    for _ in range(2):
        model, tokenizer = load_model("tiny-llama")
        losses = warm_up(model, tokenizer, schedule=schedule)["arithmetic"]
        assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_check_weights_moved_sees_an_unchanged_and_a_changed_model(tmp_path):
    import importlib.util

    from suite.models import load_model

    spec = importlib.util.spec_from_file_location("moved", "scripts/check_weights_moved.py")
    moved = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(moved)
    model, tokenizer = load_model("tiny-llama")
    model.save_pretrained(tmp_path / "same")
    assert moved.max_change(tmp_path / "same", "tiny-llama") == 0.0
    with torch.no_grad():
        model.model.norm.weight[3] += 0.25
    model.save_pretrained(tmp_path / "changed")
    assert moved.max_change(tmp_path / "changed", "tiny-llama") == pytest.approx(0.25)
