"""train.init_from (a run that starts from another run's final weights) and game demonstrations (the records an
SFT format warm start trains on): config resolution and its errors, the trainer's start, the demo records."""

import copy

import pytest
import torch

from suite.config import ConfigError, TrainConfig, parse_profile
from suite.data import prepare
from suite.envs.base import LanguageAgentEnv
from suite.envs.registry import TRAIN_SEED_OFFSET, game_demos, make_game
from suite.models import load_model
from suite.tasks.retaining import expert_response
from suite.trainer import Trainer

TRAIN = {"steps": 2, "prompts_per_step": 2, "group_size": 4, "lr": 1e-3, "max_new_tokens": 8}


def raw_profile(tmp_path):
    experiments = {
        "warm": {"paper": "toy", "method": "sft", "eval_tasks": ["gsm8k"],
                 "train": {**TRAIN, "prompt_template": "plain", "train_dataset": "frozen_lake_3x3_random_demos",
                           "algo": {"data": "expert"}}},
        "arm": {"paper": "toy", "method": "grpo", "eval_tasks": ["gsm8k"], "seeds": [0, 1],
                "train": {**TRAIN, "init_from": "warm"}},
    }
    return {"profile": "t", "model": "tiny-llama", "data": {"dir": str(tmp_path / "data")},
            "runs_dir": str(tmp_path / "runs"), "results_dir": str(tmp_path / "res"),
            "eval": {"tasks": {"gsm8k": {"limit": 2}}}, "experiments": experiments}


# --- the profile ------------------------------------------------------------------------------------------------

def test_an_unseeded_source_serves_every_seed_and_a_seeded_one_its_own(tmp_path):
    raw = raw_profile(tmp_path)
    profile = parse_profile(raw)
    assert [profile.experiments[f"arm_s{s}"].train.init_from for s in (0, 1)] == ["warm", "warm"]
    raw["experiments"]["warm"]["seeds"] = [0, 1, 2]
    profile = parse_profile(raw)
    assert [profile.experiments[f"arm_s{s}"].train.init_from for s in (0, 1)] == ["warm_s0", "warm_s1"]
    raw["experiments"]["arm"]["seeds"] = [0, 5]
    with pytest.raises(ConfigError, match=r"experiments\.arm\.train\.init_from = 'warm' names an experiment with "
                                          r"seeds \[0, 1, 2\]: give 'arm' seeds from that list"):
        parse_profile(raw, "p.yaml")


def test_init_from_is_part_of_the_run_hash_only_when_set(tmp_path):
    raw = raw_profile(tmp_path)
    profile = parse_profile(raw)
    started = profile.experiments["arm_s0"].train
    plain = TrainConfig(**{**{k: getattr(started, k) for k in TRAIN}, "experiment": "arm_s0", "method": "grpo",
                           "model": "tiny-llama", "data_dir": started.data_dir, "seed": 0})
    assert plain.hash() != started.hash()
    assert plain.hash() == TrainConfig(**{**plain.__dict__, "init_from": ""}).hash()


@pytest.mark.parametrize("change, message", [
    (lambda r: r["experiments"]["arm"]["train"].update(init_from="nope"),
     r"^p\.yaml: experiments\.arm\.train\.init_from = 'nope' names no trained experiment of this profile; "
     r"trained ones: \['arm_s1', 'warm'\]"),
    (lambda r: r["experiments"]["warm"].update(model="tiny-llama-warm"),
     r"experiments\.arm\.train\.init_from = 'warm': that run trains model 'tiny-llama-warm', this one names "
     r"'tiny-llama'"),
    (lambda r: r["experiments"]["warm"]["train"].update(init_from="arm_s0"),
     r"the chain .* is a cycle"),
])
def test_a_bad_init_from_names_the_key_and_the_fix(tmp_path, change, message):
    raw = copy.deepcopy(raw_profile(tmp_path))
    change(raw)
    with pytest.raises(ConfigError, match=message) as err:
        parse_profile(raw, "p.yaml")
    assert err.value.key == "init_from"


# --- the trainer ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo-data")
    prepare("frozen_lake_3x3_random_demos", "train", root)
    return root


def demo_config(data_dir, **overrides):
    base = dict(experiment="warm", model="tiny-llama", method="sft", data_dir=str(data_dir), steps=2,
                prompts_per_step=4, group_size=1, max_new_tokens=16, save_every=2, lr=1e-3, seed=3,
                train_dataset="frozen_lake_3x3_random_demos", prompt_template="plain", algo={"data": "expert"})
    return TrainConfig(**{**base, **overrides})


def test_a_run_starts_from_its_source_s_final_weights_and_uses_them_as_reference(demo_dir, tmp_path):
    runs = tmp_path / "runs"
    Trainer(demo_config(demo_dir), runs / "warm").run()
    warm, _ = load_model(str(runs / "warm" / "final"))
    tiny, _ = load_model("tiny-llama")
    assert any(not torch.equal(p, tiny.state_dict()[k]) for k, p in warm.state_dict().items())  # SFT moved them
    started = Trainer(demo_config(demo_dir, experiment="arm", init_from="warm", kl_coef=0.1), runs / "arm")
    assert started.start_model() == str(runs / "warm" / "final")
    for model in (started.policy, started.ref):
        state = model.state_dict()
        assert all(torch.equal(p, state[k]) for k, p in warm.state_dict().items())


def test_a_missing_source_run_says_which_run_to_train_first(demo_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train\.init_from = 'warm', but .*warm/final holds no finished "
                                                r"model; train 'warm' first"):
        Trainer(demo_config(demo_dir, experiment="arm", init_from="warm"), tmp_path / "runs" / "arm")


# --- game demonstrations ----------------------------------------------------------------------------------------

def test_game_demos_are_every_decision_of_a_replayable_random_episode():
    kwargs = {"size": 3, "max_steps": 5}
    records = game_demos("frozen_lake", "train", 3, game_kwargs=kwargs)
    seeds = sorted({r["metadata"]["seed"] for r in records})
    assert seeds == [TRAIN_SEED_OFFSET, TRAIN_SEED_OFFSET + 1, TRAIN_SEED_OFFSET + 2]
    assert len({r["id"] for r in records}) == len(records)
    for seed in seeds:
        episode = [r for r in records if r["metadata"]["seed"] == seed]
        assert [r["metadata"]["turn"] for r in episode] == list(range(len(episode)))
        assert 1 <= len(episode) <= 5  # the game's move cap
        env = LanguageAgentEnv(make_game("frozen_lake", **kwargs), seed=seed)
        env.reset(seed)
        for rec in episode:  # each prompt is the agent's prompt at that turn; the episode ends on its last record
            assert rec["prompt"] == env.prompt(style="direct")
            assert expert_response(rec) == f"<action>{rec['metadata']['action']}</action>"
            assert rec["metadata"]["action"] in rec["answers"] == ["LEFT", "DOWN", "RIGHT", "UP"]
            done = env.step(expert_response(rec)).done
        assert done and env.invalid_actions == 0
    assert records == game_demos("frozen_lake", "train", 3, game_kwargs=kwargs)  # seeded


def test_random_demos_name_every_move_about_equally():
    records = game_demos("frozen_lake", "train", 200, game_kwargs={"size": 3, "max_steps": 12})
    counts = {a: sum(r["metadata"]["action"] == a for r in records) for a in ("LEFT", "DOWN", "RIGHT", "UP")}
    assert all(abs(c / len(records) - 0.25) < 0.05 for c in counts.values()), counts


def test_a_bad_demo_style_names_the_choices():
    with pytest.raises(ValueError, match=r"style must be one of \('think', 'direct', 'direct_no_example'\)"):
        game_demos("frozen_lake", "train", 1, style="chatty")
