"""Profile and task-YAML validation: bad input fails before any work, naming the key."""

import copy
from pathlib import Path

import pytest
import yaml

from suite.config import ConfigError, TrainConfig, load_profile, parse_profile
from suite.evaluate import TaskConfigError, load_task_config, task_data, task_manager

REPO = Path(__file__).resolve().parent.parent
SMOKE = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())


@pytest.mark.parametrize("profile", ["smoke", "mini", "paper"])
def test_shipped_profiles_are_valid(profile):
    p = load_profile(REPO / "config" / f"{profile}.yaml")
    assert p.experiments and all(e.eval_tasks for e in p.experiments.values())


def broken(edit):
    raw = copy.deepcopy(SMOKE)
    edit(raw)
    return raw


@pytest.mark.parametrize("edit,message", [
    (lambda r: r["train_defaults"].update(lr=5.0), r"train_defaults\.lr = 5\.0 must be in \(0, 1\)"),
    (lambda r: r["experiments"]["grpo_arith"]["train"].update(lr=5.0), r"smoke-edited: experiments\.grpo_arith\.train\.lr = 5\.0 must be in"),
    (lambda r: r["train_defaults"].update(group_size=0), r"train_defaults\.group_size = 0 must be >= 1"),
    (lambda r: r["train_defaults"].update(learning_rate=1e-5),
     r"train_defaults: unknown training key\(s\) \['learning_rate'\]"),
    (lambda r: r["train_defaults"].update(loss_agg="mean"), r"train_defaults\.loss_agg = 'mean' is not one of"),
    (lambda r: r["experiments"]["grpo_arith"].update(method="ppo-magic"), r"train\.method = 'ppo-magic' is not one of"),
    (lambda r: r["experiments"]["grpo_arith"]["train"].update(train_dataset="gsm9k"), r"train_dataset = 'gsm9k'"),
    (lambda r: r["experiments"]["grpo_arith"].update(eval_tasks=["mmlu_pro"]), r"eval_tasks: \['mmlu_pro'\] not declared"),
    (lambda r: r["eval"]["tasks"].update(svamp={}), r"eval\.tasks: no task YAML .* \['svamp'\]"),
    (lambda r: r["eval"]["tasks"]["gsm8k"].update(limit=0), r"eval\.tasks\.gsm8k\.limit: 0 is less than the minimum"),
    (lambda r: r.pop("model"), r"<top>: 'model' is a required property"),
    (lambda r: r.update(extra_key=1), r"Additional properties are not allowed \('extra_key'"),
])
def test_invalid_profile_values_name_the_key(edit, message):
    with pytest.raises(ConfigError, match=message):
        parse_profile(broken(edit), "smoke-edited")


def test_missing_and_malformed_profile_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_profile(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("profile: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml, line 2, column 1: not valid YAML"):
        load_profile(bad)


def test_untrained_experiments_of_one_model_share_their_evaluations():
    raw = copy.deepcopy(SMOKE)
    first_untrained = next(n for n, e in raw["experiments"].items() if "train" not in e)
    model = raw["experiments"][first_untrained].get("model", raw["model"])
    raw["experiments"]["other_base"] = {"paper": "foundation", "method": "base", "eval_tasks": ["gsm8k"]}
    raw["experiments"]["other_model"] = {"paper": "foundation", "method": "base", "model": "org/tiny-llama-2", "eval_tasks": ["gsm8k"]}
    prof = parse_profile(raw, source="test")
    trained = next(n for n, e in prof.experiments.items() if e.train is not None)
    assert prof.experiments["other_base"].model == model
    assert prof.eval_owner("other_base") == first_untrained
    assert prof.eval_owner("other_model") == "other_model"
    assert prof.eval_owner(trained) == trained
    assert prof.eval_path("res", "other_base", "gsm8k") == Path("res/evals") / first_untrained / "gsm8k.json"


def test_train_config_hash_changes_with_hyperparameters():
    a = TrainConfig(experiment="x", model="tiny-llama")
    assert a.hash() == TrainConfig(experiment="x", model="tiny-llama").hash()
    assert a.hash() != TrainConfig(experiment="x", model="tiny-llama", lr=2e-6).hash()


def test_task_yaml_loading_with_overrides():
    manager = task_manager()
    cfg = load_task_config(manager, "aime24", {"repeats": 2, "generation_kwargs": {"max_gen_toks": 16}})
    assert cfg["repeats"] == 2
    assert cfg["generation_kwargs"] == {"until": ["<|im_end|>"], "do_sample": True, "temperature": 0.6,
                                        "top_p": 1.0, "max_gen_toks": 16}
    assert callable(cfg["process_results"])
    assert task_data("aime24") == ("aime24", "test")


def test_unknown_task_lists_known_ones():
    with pytest.raises(TaskConfigError, match="unknown task 'gsm9k'.*gsm8k"):
        load_task_config(task_manager(), "gsm9k")


def test_malformed_task_yaml_names_the_file(tmp_path):
    (tmp_path / "broken.yaml").write_text("task: broken\noutput_type: [generate_until\n")
    with pytest.raises(TaskConfigError, match="broken.yaml is not valid YAML"):
        task_data("broken", tmp_path)
    (tmp_path / "nodata.yaml").write_text("task: nodata\noutput_type: generate_until\n")
    with pytest.raises(TaskConfigError, match="dataset_kwargs.dataset is missing"):
        task_data("nodata", tmp_path)


def test_task_yaml_missing_required_key(tmp_path):
    (tmp_path / "utils.py").write_text((REPO / "tasks" / "utils.py").read_text())
    (tmp_path / "half.yaml").write_text("task: half\noutput_type: generate_until\ndataset_kwargs: {dataset: gsm8k}\n")
    with pytest.raises(TaskConfigError, match="missing required key 'doc_to_text'"):
        load_task_config(task_manager(tmp_path), "half")
