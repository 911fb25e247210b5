"""Each method sets its paper's loss aggregation and advantage scaling (issue 19, item 3), a profile's explicit
value wins; training refuses top_p < 1 (item 5)."""

import pytest

from suite.config import METHOD_DEFAULTS, ConfigError, TrainConfig, load_profile

# method -> (loss_agg, scale_rewards), each the paper's / reference code's (docs/<paper>.md)
EXPECTED = {
    "grpo": ("token-mean", True),  # the foundation's GRPO (TRL / verl default)
    "igpo": ("seq-mean-token-mean", True),  # IGPO's GRPO objective: (1/G) sum_i (1/|o_i|) sum_t
    "cooper": ("seq-mean-token-mean", True),  # Cooper's GRPO objective, same form
    "msgrpo": ("episode-step-token-mean", True),  # MS-GRPO: (1/G) sum_j (1/T_j) sum_t, token mean per step
    "exgrpo": ("seq-mean-token-sum-norm", False),  # ExGRPO: r - mean; token sum / max length
    "rbd_grpo": ("seq-mean-token-mean", True),  # Retaining by Doing's GRPOLoss
    "sft": ("token-mean", True),  # cross-entropy over all response tokens (scale_rewards unused)
}


@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_each_method_sets_its_own_default(method):
    cfg = TrainConfig(experiment="x", method=method)
    assert (cfg.loss_agg, cfg.scale_rewards) == EXPECTED[method]


def test_an_explicit_value_wins_and_a_method_without_defaults_gets_grpos():
    cfg = TrainConfig(experiment="x", method="exgrpo", loss_agg="token-mean", scale_rewards=True)
    assert (cfg.loss_agg, cfg.scale_rewards) == ("token-mean", True)
    cfg = TrainConfig(experiment="x", method="igpo", scale_rewards=False)
    assert (cfg.loss_agg, cfg.scale_rewards) == ("seq-mean-token-mean", False)
    assert METHOD_DEFAULTS == {"loss_agg": "token-mean", "scale_rewards": True}
    # the filled-in values are part of the config (and of its hash)
    assert TrainConfig(experiment="x", method="msgrpo").hash() == \
        TrainConfig(experiment="x", method="msgrpo", loss_agg="episode-step-token-mean", scale_rewards=True).hash()


@pytest.mark.parametrize("profile", ["mini", "paper"])
def test_profiles_train_each_method_with_its_default_unless_they_say_otherwise(profile):
    for exp in load_profile(f"config/{profile}.yaml").experiments.values():
        if exp.train is None:
            continue
        agg, scale = EXPECTED[exp.method]
        if exp.name == "exgrpo_onpolicy":  # the GRPO baseline of ExGRPO: ExGRPO's loss settings, explicitly
            agg, scale = EXPECTED["exgrpo"]
        if exp.name == "cooper_rule":  # Cooper's rule-reward GRPO baseline: the paper's GRPO, as Cooper's runs
            agg = EXPECTED["cooper"][0]
        if (profile, exp.name) == ("paper", "grpo_gsm8k"):  # the foundation's GPU run: Dr. GRPO-style, explicitly
            agg = "seq-mean-token-sum-norm"
        assert (exp.train.loss_agg, exp.train.scale_rewards) == (agg, scale), (profile, exp.name)


def test_top_p_below_one_is_refused_for_training_with_the_fix():
    with pytest.raises(ConfigError, match=r"train\.top_p = 0\.9 is not supported for training.*set train\.top_p: 1\.0"):
        TrainConfig(experiment="x", top_p=0.9)
    assert TrainConfig(experiment="x", top_p=1.0).top_p == 1.0
