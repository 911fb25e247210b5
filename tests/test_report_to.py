"""Live metrics (issue 21, item 6): ``train.report_to`` streams each step's metrics.jsonl row to TensorBoard (read
back here with TensorBoard's own event reader) and to W&B in offline mode; the key is validated, normalised as
TRL's, and never part of the config hash."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
import warnings

import pytest

from suite import tracking
from suite.config import ConfigError, TrainConfig
from suite.io import SuiteWarning, read_jsonl
from suite.trainer import Trainer
from tests.test_trainer import tiny_config

HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None
needs_tensorboard = pytest.mark.skipif(not HAS_TENSORBOARD, reason="tensorboard is not installed "
                                       "(pip install -e '.[tracking]'; scripts/install.sh installs it)")


def events(run_dir):
    """Every scalar TensorBoard's reader shows for the run: {tag: [(step, value), ...]}."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={SCALARS: 0})  # 0: keep every event
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def assert_matches_jsonl(scalars: dict, rows: list[dict]) -> None:
    """Each step's train/<key> is the JSONL row's value at that step (TensorBoard keeps float32)."""
    assert [s for s, _ in scalars["train/reward"]] == [r["step"] for r in rows]
    assert [v for _, v in scalars["train/reward"]] == pytest.approx([r["reward"] for r in rows], rel=1e-6, abs=1e-7)
    numeric = [k for k, v in rows[0].items() if k != "step" and isinstance(v, (int, float))]
    assert {f"train/{k}" for k in numeric} == set(scalars)
    for key in numeric:
        assert scalars[f"train/{key}"] == [(r["step"], pytest.approx(r[key], rel=1e-6, abs=1e-7)) for r in rows], key


@needs_tensorboard
def test_tensorboard_gets_every_step_that_metrics_jsonl_gets(data_dir):
    out = data_dir / "run-tb"
    Trainer(tiny_config(data_dir, steps=2, save_every=5, report_to=["tensorboard"]), out).run()
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    assert_matches_jsonl(events(out), rows)


@needs_tensorboard
def test_a_resumed_run_shows_each_step_once_with_the_resumed_value(data_dir):
    """Steps 1-3, a checkpoint at 2, a "crash"; the resumed run redoes step 3 with other rewards. TensorBoard's
    reader shows steps 1-4 once each, step 3 as the resumed run logged it: what metrics.jsonl says."""
    out = data_dir / "run-tb-resume"
    cfg = tiny_config(data_dir, steps=4, save_every=2, report_to="tensorboard")
    Trainer(cfg, out).run(max_steps=3)
    first_step3 = read_jsonl(out / "metrics.jsonl")[2]["reward"]
    resumed = Trainer(cfg, out, resume=True)
    assert resumed.start_step == 2
    resumed.reward_fn = lambda text, answers: 0.25  # the redone step 3 differs from the first attempt's
    resumed.run()
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and rows[2]["reward"] == 0.25 != first_step3
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 2  # one event file per attempt
    assert_matches_jsonl(events(out), rows)


class FakeWandb(types.ModuleType):
    """Stands in for the wandb package: records what the trainer asks of it."""

    def __init__(self):
        super().__init__("wandb")
        self.__spec__ = importlib.machinery.ModuleSpec("wandb", None)  # others ask find_spec("wandb") too
        self.inits, self.logged, self.finished = [], [], 0

    def init(self, **kwargs):
        self.inits.append(kwargs)
        fake = self

        class Run:
            def log(self, values, step):
                fake.logged.append((step, dict(values)))

            def finish(self):
                fake.finished += 1

        return Run()


def test_wandb_gets_an_offline_run_of_each_step(data_dir, monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    out = data_dir / "run-wandb-fake"
    cfg = tiny_config(data_dir, steps=2, save_every=5, report_to="wandb")
    Trainer(cfg, out).run()
    rows = read_jsonl(out / "metrics.jsonl")
    [init] = fake.inits
    assert init["mode"] == "offline" and init["dir"] == str(out) and init["project"] == "rlrepro"
    assert init["name"] == "t" and init["config"]["lr"] == cfg.lr and init["config"]["report_to"] == ["wandb"]
    assert [step for step, _ in fake.logged] == [1, 2]
    for (step, values), row in zip(fake.logged, rows):
        assert values["train/reward"] == row["reward"] and "train/step" not in values
    assert fake.finished == 1


@needs_tensorboard
def test_the_sinks_are_closed_when_training_fails(data_dir, monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    out = data_dir / "run-sinks-fail"
    trainer = Trainer(tiny_config(data_dir, steps=3, save_every=5, report_to=["tensorboard", "wandb"]), out)
    collect = trainer.method.collect

    def collect_then_fail(step):
        if step == 1:
            raise RuntimeError("out of memory, say")
        return collect(step)

    trainer.method.collect = collect_then_fail
    with pytest.raises(RuntimeError, match="out of memory"):
        trainer.run()
    assert fake.finished == 1 and [step for step, _ in fake.logged] == [1]
    assert events(out)["train/reward"] == [(1, pytest.approx(read_jsonl(out / "metrics.jsonl")[0]["reward"]))]


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb is not installed (pip install wandb)")
def test_a_real_wandb_writes_an_offline_run_into_the_run_directory(data_dir, monkeypatch, tmp_path):
    for var, value in {"WANDB_SILENT": "true", "WANDB_CONFIG_DIR": str(tmp_path / "config"),
                       "WANDB_CACHE_DIR": str(tmp_path / "cache"), "WANDB_DATA_DIR": str(tmp_path / "data")}.items():
        monkeypatch.setenv(var, value)
    out = data_dir / "run-wandb"
    Trainer(tiny_config(data_dir, steps=2, save_every=5, report_to=["wandb"]), out).run()
    assert list((out / "wandb").glob("offline-run-*/run-*.wandb")), sorted(p.name for p in (out / "wandb").iterdir())


# --- the key ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value,normalised", [
    ([], []), (None, []), ("none", []), (["none"], []), ("tensorboard", ["tensorboard"]), ("WandB", ["wandb"]),
    (["wandb", "tensorboard", "wandb"], ["wandb", "tensorboard"]), ("all", ["all"]), (["tensorboard", "all"], ["all"]),
])
def test_report_to_is_normalised_as_trl_reads_it(tmp_path, value, normalised):
    cfg = tiny_config(tmp_path, report_to=value)
    assert cfg.report_to == normalised
    assert TrainConfig(**{**vars(cfg)}).report_to == normalised  # normalising again changes nothing


@pytest.mark.parametrize("value,says", [
    (["tensorbord"], r"names unknown sink\(s\) \['tensorbord'\]"), ("mlflow", r"\['mlflow'\]"),
    (5, "must be a list or a string"), (["tensorboard", 3], "must be a list or a string"),
])
def test_a_bad_report_to_names_the_key_and_the_valid_values(tmp_path, value, says):
    with pytest.raises(ConfigError, match=says) as info:
        tiny_config(tmp_path, report_to=value)
    assert "train.report_to" in str(info.value) and info.value.key == "report_to"
    if "unknown" in says or "mlflow" in says:
        assert "['tensorboard', 'wandb']" in str(info.value) and "'all'" in str(info.value)


def test_report_to_is_not_part_of_the_config_hash(tmp_path):
    plain = tiny_config(tmp_path)
    assert plain.report_to == []
    for value in ("tensorboard", ["tensorboard", "wandb"], "all", "none"):
        assert tiny_config(tmp_path, report_to=value).hash() == plain.hash()
    # a default config hashes as it did before the key existed (its runs and done.json files keep their identity)
    assert TrainConfig(experiment="x", model="tiny-llama").hash() == "7eae91275d08"


def test_a_missing_package_stops_the_trainer_at_its_start_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError
    monkeypatch.setattr("suite.trainer.load_model", lambda *a, **k: pytest.fail("a model was loaded first"))
    with pytest.raises(ConfigError, match=r"train\.report_to asks for 'wandb'.*pip install wandb"):
        Trainer(tiny_config(tmp_path, report_to=["wandb"]), tmp_path / "run")
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ConfigError, match=r"'tensorboard'.*pip install tensorboard"):
        tracking.resolve(["tensorboard"], "t")


@needs_tensorboard
def test_all_takes_the_installed_sinks_and_warns_about_the_others(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sinks = tracking.resolve(["all"], "t")
    assert list(sinks) == ["tensorboard"]
    assert any(issubclass(w.category, SuiteWarning) and "pip install wandb" in str(w.message) for w in caught)
    assert tracking.resolve([], "t") == {}
