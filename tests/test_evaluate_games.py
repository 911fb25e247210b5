"""Game evaluation: results-JSON schema, reference policies, a model agent, held-out seeds, bad settings."""

import json

import pytest

from suite import evaluate as ev
from suite.config import parse_profile
from suite.data import prepare
from suite.envs.evaluate_games import evaluate_game, heldout_seeds, settings
from suite.envs.registry import TRAIN_SEED_OFFSET, game_seeds
from suite.io import read_jsonl

SCHEMA = {"task", "model", "metrics", "n", "limit", "sampling", "backend", "lm_eval_version", "seed", "config_hash"}
METRICS = {"success_rate", "mean_return", "episode_length", "invalid_action_rate"}


def test_planner_through_the_shared_entry_point(tmp_path):
    out = tmp_path / "planner" / "frozen_lake.json"
    result = ev.evaluate("planner", "frozen_lake", out, limit=6, seed=0, config_hash="abc")
    assert set(result) == SCHEMA and json.loads(out.read_text()) == result
    assert result["lm_eval_version"] == "n/a" and result["backend"] == "reference"
    assert result["n"] == 6 and result["limit"] == 6 and result["config_hash"] == "abc"
    assert set(result["metrics"]) == METRICS
    assert all(set(m) == {"value", "stderr"} for m in result["metrics"].values())
    # BFS on deterministic, solvable maps always reaches the goal, with no invalid answers
    assert result["metrics"]["success_rate"] == {"value": 1.0, "stderr": 0.0}
    assert result["metrics"]["mean_return"]["value"] == 1.0
    assert result["metrics"]["invalid_action_rate"]["value"] == 0.0
    samples = read_jsonl(str(out) + ".samples.jsonl")
    assert [s["seed"] for s in samples] == [0, 1, 2, 3, 4, 5]
    assert all(s["success"] and s["length"] == len(s["actions"]) == len(s["responses"]) for s in samples)


def test_random_policy_is_seeded_and_worse_than_the_planner(tmp_path):
    a = evaluate_game("random", "frozen_lake", tmp_path / "a.json", limit=30)
    b = evaluate_game("random", "frozen_lake", tmp_path / "b.json", limit=30)
    assert a["metrics"] == b["metrics"]
    planner = evaluate_game("planner", "frozen_lake", tmp_path / "p.json", limit=30)
    assert a["metrics"]["success_rate"]["value"] < planner["metrics"]["success_rate"]["value"] == 1.0
    snake = evaluate_game("random", "snake_poison_apple", tmp_path / "s.json", limit=5,
                          overrides={"game_kwargs": {"max_steps": 6}})
    assert snake["metrics"]["episode_length"]["value"] <= 6 and snake["sampling"]["game_kwargs"] == {"max_steps": 6}


def test_repeats_redraw_the_dynamics(tmp_path):
    result = evaluate_game("planner", "frozen_lake_slippery", tmp_path / "r.json", limit=3, overrides={"repeats": 2})
    assert result["n"] == 6 and result["sampling"]["repeats"] == 2
    rows = read_jsonl(str(tmp_path / "r.json") + ".samples.jsonl")
    assert [(r["seed"], r["repeat"]) for r in rows] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]


def test_model_agent_greedy(tmp_path):
    overrides = {"generation_kwargs": {"max_gen_toks": 4}, "game_kwargs": {"max_steps": 2}, "prompt_style": "direct"}
    result = evaluate_game("tiny-llama", "snake", tmp_path / "m.json", limit=2, overrides=overrides, batch_size=2)
    assert set(result) == SCHEMA and result["backend"] == "rlrepro" and result["n"] == 2
    assert result["sampling"]["generation_kwargs"] == {"max_gen_toks": 4, "do_sample": False, "temperature": 1.0}
    rows = read_jsonl(str(tmp_path / "m.json") + ".samples.jsonl")
    assert all(isinstance(r, str) for row in rows for r in row["responses"])
    again = evaluate_game("tiny-llama", "snake", tmp_path / "m2.json", limit=2, overrides=overrides, batch_size=1)
    assert again["metrics"] == result["metrics"]
    assert read_jsonl(str(tmp_path / "m2.json") + ".samples.jsonl") == rows  # greedy: batch size does not matter
    # the trainer's engine (the default) and transformers' generate play the same greedy games
    hf = evaluate_game("tiny-llama", "snake", tmp_path / "h.json", limit=2, overrides=overrides, batch_size=2,
                       backend="hf")
    assert hf["backend"] == "hf" and read_jsonl(str(tmp_path / "h.json") + ".samples.jsonl") == rows


def test_model_agent_response_prefill(tmp_path):
    """The prefill ends every prompt (tokenised apart from the chat template, as the trainer does) and starts every
    response the game reads."""
    from suite.envs.evaluate_games import ModelAgent

    overrides = {"generation_kwargs": {"max_gen_toks": 3}, "game_kwargs": {"max_steps": 2}, "prompt_style": "direct",
                 "response_prefill": "<action>"}
    result = evaluate_game("tiny-llama", "frozen_lake", tmp_path / "p.json", limit=2, overrides=overrides,
                           batch_size=2)
    assert result["sampling"]["response_prefill"] == "<action>"
    rows = read_jsonl(str(tmp_path / "p.json") + ".samples.jsonl")
    assert all(r.startswith("<action>") for row in rows for r in row["responses"])
    agent = ModelAgent("tiny-llama", {"max_gen_toks": 3, "do_sample": False, "temperature": 1.0},
                       response_prefill="<action>")
    tok = agent.tokenizer
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert agent.prompt_ids("hi") == (tok(chat, add_special_tokens=False)["input_ids"]
                                      + tok("<action>", add_special_tokens=False)["input_ids"])


def test_heldout_and_training_seeds_are_disjoint(tmp_path):
    train = prepare("frozen_lake_seeds", "train", tmp_path)
    test = prepare("frozen_lake_seeds", "test", tmp_path)
    train_seeds = {r["metadata"]["seed"] for r in read_jsonl(train)}
    test_seeds = {r["metadata"]["seed"] for r in read_jsonl(test)}
    assert not train_seeds & test_seeds and min(train_seeds) == TRAIN_SEED_OFFSET
    assert heldout_seeds("frozen_lake") == sorted(test_seeds)
    assert heldout_seeds("snake", limit=3) == [0, 1, 2]
    record = read_jsonl(test)[0]
    assert record == {"id": "frozen_lake-test-0", "prompt": "", "answers": [],
                      "metadata": {"game": "frozen_lake", "seed": 0}}
    with pytest.raises(ValueError, match="must not overlap"):
        game_seeds("snake", "train", TRAIN_SEED_OFFSET + 1)


@pytest.mark.parametrize("overrides,message", [
    ({"temperature": 0.5}, r"unknown override 'temperature'"),
    ({"fallback": "skip"}, r"fallback = 'skip' is not one of"),
    ({"repeats": 0}, r"repeats = 0 must be an integer >= 1"),
    ({"generation_kwargs": {"top_p": 0.9}}, r"unknown generation_kwargs \['top_p'\]"),
    ({"generation_kwargs": {"max_gen_toks": 0}}, r"generation_kwargs.max_gen_toks = 0"),
    ({"game_kwargs": {"num_enemies": 3}}, r"game_kwargs .* do not fit the game"),
    ({"response_prefill": 1}, r"response_prefill = 1 must be a string"),
])
def test_bad_settings_name_the_key(overrides, message):
    with pytest.raises(ValueError, match=message):
        settings("frozen_lake", overrides)


def test_bad_task_limit_and_model(tmp_path):
    with pytest.raises(ValueError, match="exceeds the 200 held-out seeds"):
        evaluate_game("planner", "frozen_lake", tmp_path / "x.json", limit=500)
    with pytest.raises(ValueError, match="unknown game task"):
        evaluate_game("planner", "chess", tmp_path / "x.json")
    from suite.models import ModelNotFoundError

    with pytest.raises(ModelNotFoundError):
        evaluate_game("no-such-model", "frozen_lake", tmp_path / "x.json", limit=1)


def test_reference_pseudo_models_in_a_profile(tmp_path):
    raw = {"profile": "t", "model": "tiny-llama", "data": {"dir": str(tmp_path)}, "runs_dir": str(tmp_path),
           "results_dir": str(tmp_path), "eval": {"tasks": {"frozen_lake": {"limit": 2}, "snake": {}}},
           "experiments": {"planner": {"paper": "msgrpo", "method": "base", "model": "planner",
                                       "eval_tasks": ["frozen_lake", "snake"]}}}
    exp = parse_profile(raw).experiments["planner"]
    assert exp.train is None and exp.model == "planner"
    assert ev.task_data("frozen_lake") is None  # nothing to prepare before a game evaluation
