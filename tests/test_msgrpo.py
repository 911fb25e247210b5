"""MS-GRPO + AAW: sampling probabilities and the episode-to-step broadcast against hand-computed
numbers, a scripted policy through collect, option checks, and resume."""

import math

import pytest
import torch

from suite.algos.msgrpo import Options, episode_advantages, sample_units, sampling_probs, step_advantages
from suite.config import TrainConfig
from suite.data import prepare
from suite.io import read_jsonl
from suite.losses import aggregate, episode_row_weights
from suite.rollout import Rollouts, collate
from suite.trainer import Trainer
from tests.helpers import assert_weights_moved


# ------------------------------------------------------------------ equations
def test_episode_advantages_and_step_broadcast():
    # returns 1, 0, 0, 0: mean 0.25, sample std sqrt((.75^2 + 3 * .25^2) / 3) = sqrt(0.25) = 0.5
    # A = (1.5, -0.5, -0.5, -0.5); a group with equal returns gets 0
    adv = episode_advantages(torch.tensor([[1.0, 0, 0, 0], [2.0, 2, 2, 2]]))
    assert adv[0].tolist() == pytest.approx([1.5, -0.5, -0.5, -0.5], abs=1e-5)
    assert adv[1].tolist() == [0.0, 0.0, 0.0, 0.0]
    # episodes of 2, 1, 3 and 1 steps: every step carries its episode's A
    steps = step_advantages(adv[0].tolist(), [2, 1, 3, 1])
    assert steps == pytest.approx([1.5, 1.5, -0.5, -0.5, -0.5, -0.5, -0.5], abs=1e-5)
    # without the std division (scale_rewards: false): A = R - mean
    assert episode_advantages(torch.tensor([[1.0, 0, 0, 0]]), scale_by_std=False)[0].tolist() == \
        pytest.approx([0.75, -0.25, -0.25, -0.25])


def test_softmax_sampling_probabilities():
    adv = torch.tensor([1.5, -0.5, -0.5, -0.5])
    # |A| = 1.5, .5, .5, .5; T = 1: e^1.5 = 4.481689, e^.5 = 1.648721, Z = 4.481689 + 3 * 1.648721 = 9.427852
    p = sampling_probs(adv, "softmax", 1.0)
    assert p.tolist() == pytest.approx([0.475367, 0.174878, 0.174878, 0.174878], abs=1e-6)
    # T = 0.5: e^3 = 20.085537, e^1 = 2.718282, Z = 28.240383
    p = sampling_probs(adv, "softmax", 0.5)
    assert p.tolist() == pytest.approx([0.711235, 0.096255, 0.096255, 0.096255], abs=1e-6)
    # large T -> uniform; softmax depends on |A| only, not its sign
    assert sampling_probs(adv, "softmax", 1e6).tolist() == pytest.approx([0.25] * 4, abs=1e-6)
    assert sampling_probs(-adv, "softmax", 1.0).tolist() == pytest.approx(sampling_probs(adv, "softmax", 1.0).tolist())


def test_proportional_and_uniform_probabilities():
    adv = torch.tensor([1.5, -0.5, -0.5, -0.5, 0.0])
    # |A| sums to 3: 1.5 / 3 = .5, .5 / 3 = .166667, 0
    assert sampling_probs(adv, "proportional").tolist() == pytest.approx([0.5, 1 / 6, 1 / 6, 1 / 6, 0.0])
    assert sampling_probs(adv, "uniform").tolist() == pytest.approx([0.2] * 5)
    # every advantage 0: proportional falls back to uniform
    assert sampling_probs(torch.zeros(4), "proportional").tolist() == pytest.approx([0.25] * 4)
    with pytest.raises(ValueError, match="unknown sampling scheme"):
        sampling_probs(adv, "greedy")


def test_sample_units():
    probs = sampling_probs(torch.tensor([1.5, -0.5, 0.0, 0.0]), "proportional")  # .75, .25, 0, 0
    assert sample_units(probs, 0) == [0, 1, 2, 3]  # 0 = every unit
    assert sample_units(probs, 9) == [0, 1, 2, 3]  # more than there are, without replacement
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        drawn = sample_units(probs, 3, generator=g)
        # both positive units come before any zero-advantage unit
        assert len(set(drawn)) == 3 and set(drawn[:2]) == {0, 1} and drawn[2] in {2, 3}
    # with replacement, frequencies follow the probabilities: softmax of |A| = (2, 0) at T = 1
    p = sampling_probs(torch.tensor([2.0, 0.0]), "softmax")  # e^2 / (e^2 + 1) = 0.880797
    drawn = sample_units(p, 20000, replacement=True, generator=torch.Generator().manual_seed(1))
    assert drawn.count(0) / 20000 == pytest.approx(0.880797, abs=0.01)
    # seeded: the same generator state draws the same units
    a = sample_units(p, 5, replacement=True, generator=torch.Generator().manual_seed(3))
    assert a == sample_units(p, 5, replacement=True, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("option,value,message", [
    ("sampling", "greedy", r"train\.algo\.sampling = 'greedy' is not one of"),
    ("sample_unit", "token", r"train\.algo\.sample_unit = 'token'"),
    ("temperature_ep", 0.0, r"train\.algo\.temperature_ep = 0\.0 must be > 0"),
    ("update_samples", -1, r"train\.algo\.update_samples = -1 must be"),
    ("history", -2, r"train\.algo\.history = -2"),
    ("format_penalty", 0.5, r"train\.algo\.format_penalty = 0\.5 must be <= 0"),
    ("fallback", "skip", r"train\.algo\.fallback = 'skip'"),
    ("prompt_style", "chatty", r"train\.algo\.prompt_style = 'chatty'"),
    ("game", "chess", r"train\.algo\.game = 'chess'"),
    ("response_prefill", 3, r"train\.algo\.response_prefill = 3 must be a string"),
])
def test_options_name_the_bad_value(option, value, message):
    with pytest.raises(ValueError, match=message):
        Options(**{option: value})


def test_game_kwargs_are_checked_against_the_game():
    with pytest.raises(ValueError, match=r"game_kwargs .* do not fit game 'frozen_lake'"):
        Options(game="frozen_lake", game_kwargs={"num_enemies": 2})


def test_profile_rejects_bad_algo_option():
    from suite.config import load_profile, parse_profile
    import yaml

    raw = yaml.safe_load(open("config/smoke.yaml"))
    raw["experiments"]["msgrpo_aaw_fl"]["train"]["algo"]["temperature_ep"] = -1
    with pytest.raises(ValueError, match=r"temperature_ep = -1 must be > 0"):
        parse_profile(raw, "smoke-edited")
    assert load_profile("config/smoke.yaml").experiments["msgrpo_random"].train is None


# ------------------------------------------------ the objective's normalisation
# Two episodes of different lengths: episode A has two steps (per-token losses 1, 2, 3 and 4), episode B one
# (6, 8). The paper's J = (1/G) sum_j (1/T_j) sum_t mean_tokens: A = ((1+2+3)/3 + 4/1) / 2 = (2 + 4) / 2 = 3,
# B = (6+8)/2 = 7, J = (3 + 7) / 2 = 5; token-mean would give 24/6 = 4, a mean over rows (2 + 4 + 7)/3 = 13/3.
STEP_LOSS = [[1.0, 2.0, 3.0], [4.0], [6.0, 8.0]]
STEP_EPISODE = [0, 0, 1]


def test_episode_step_token_mean_on_two_episodes_of_different_lengths():
    assert episode_row_weights(STEP_EPISODE, 3) == pytest.approx([0.25, 0.25, 0.5])  # 1 / (E * T_e)
    assert episode_row_weights([], 3) == pytest.approx([1 / 3] * 3)  # no ids: every row an episode of one step
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0], [6.0, 8.0, 0.0]])
    mask = torch.tensor([[1.0, 1, 1], [1, 0, 0], [1, 1, 0]])
    kw = dict(total_tokens=6, total_seqs=3, max_len=3)
    weight = torch.tensor(episode_row_weights(STEP_EPISODE, 3))
    assert aggregate(per_token, mask, "episode-step-token-mean", row_weight=weight, **kw).item() == pytest.approx(5.0)
    assert aggregate(per_token, mask, "token-mean", **kw).item() == pytest.approx(4.0)
    assert aggregate(per_token, mask, "seq-mean-token-mean", **kw).item() == pytest.approx(13 / 3)


def test_episode_weights_come_from_the_whole_batch_so_micro_batches_sum_to_it():
    """collate gives each row its weight over all rows of the Rollouts: any split into micro-batches sums to J."""
    r = Rollouts(prompt_ids=[[1], [1, 2], [3]], completion_ids=[[5, 6, 7], [8], [9, 9]],
                 loss_mask=[[1] * 3, [1], [1] * 2], advantages=[[0.0] * 3, [0.0], [0.0] * 2], rewards=[0.0] * 3,
                 correct=[False] * 3, group=[0, 0, 0], episode=STEP_EPISODE)
    for split in ([[0, 1, 2]], [[0], [1], [2]], [[2, 0], [1]]):
        total = 0.0
        for rows in split:
            batch = collate(r, rows, pad_id=0)
            width = batch.completion_ids.shape[1]
            per_token = torch.tensor([STEP_LOSS[i] + [0.0] * (width - len(STEP_LOSS[i])) for i in rows])
            total += aggregate(per_token, batch.loss_mask, "episode-step-token-mean", total_tokens=6, total_seqs=3,
                               max_len=3, row_weight=batch.row_weight).item()
        assert total == pytest.approx(5.0)


def test_msgrpo_defaults_to_the_papers_normalisation():
    assert TrainConfig(experiment="m", method="msgrpo").loss_agg == "episode-step-token-mean"
    # a profile's explicit value wins
    assert TrainConfig(experiment="m", method="msgrpo", loss_agg="token-mean").loss_agg == "token-mean"


# ------------------------------------------------------------- the method
@pytest.fixture(scope="module")
def game_data(data_dir):
    prepare("frozen_lake_seeds", "train", data_dir)
    return data_dir


def msgrpo_config(data_dir, **overrides):
    algo = overrides.pop("algo", {})
    base = dict(experiment="m", method="msgrpo", model="tiny-llama", data_dir=str(data_dir),
                train_dataset="frozen_lake_seeds", steps=4, prompts_per_step=2, group_size=2, max_new_tokens=4,
                save_every=2, lr=1e-3, micro_batch_size=4, seed=5, max_prompt_tokens=128,
                algo={"game_kwargs": {"max_steps": 3}, "update_samples": 2, "sampling": "softmax", **algo})
    return TrainConfig(**{**base, **overrides})


# 3x3 map: RIGHT, RIGHT reaches G in two moves; RIGHT, DOWN falls into H; DOWN then nonsense is
# truncated at max_steps = 2 with one format penalty. Every episode lasts exactly two turns.
MAP = ["SFG", "FHF", "FFF"]
SCRIPTS = [("RIGHT", "RIGHT"), ("DOWN", "no idea"), ("RIGHT", "DOWN")]  # returns 1, -0.1, 0


def scripted(trainer):
    """Episode j of each group (position j % 3 in every batch) follows SCRIPTS[j % 3]."""
    calls = []

    def generate(prompt_ids, n, max_new_tokens=None):
        turn = len(calls)
        calls.append(len(prompt_ids))
        # the completion's token ids encode (script, turn); decode maps them back to text
        return [[10 + 3 * turn + i % 3, 7] for i in range(len(prompt_ids))]

    def decode(completions):
        texts = []
        for ids in completions:
            turn, script = divmod(ids[0] - 10, 3)
            texts.append(f"I choose <action>{SCRIPTS[script][turn]}</action>" if SCRIPTS[script][turn] != "no idea"
                         else "no idea")
        return texts

    trainer.generate, trainer.decode = generate, decode
    return calls


def test_scripted_policy_through_collect(game_data, tmp_path):
    cfg = msgrpo_config(game_data, prompts_per_step=2, group_size=3,
                        algo={"game_kwargs": {"desc": MAP, "max_steps": 2}, "update_samples": 0, "history": 1})
    trainer = Trainer(cfg, tmp_path / "scripted")
    calls = scripted(trainer)
    r = trainer.method.collect(0)
    assert calls == [6, 6]  # one batched generation per turn for all 2 x 3 episodes
    # returns per group (1, -0.1, 0): mean 0.3, deviations (.7, -.4, -.3), sample var .74 / 2 = .37,
    # std 0.608276 -> A = (1.150793, -0.657596, -0.493197)
    a = [1.150793, -0.657596, -0.493197]
    assert len(r) == 12  # 6 episodes x 2 steps, every one trained (update_samples 0)
    episode_of_row = [0, 0, 1, 1, 2, 2] * 2
    assert [row[0] for row in r.advantages] == pytest.approx([a[e] for e in episode_of_row], abs=1e-5)
    assert all(len(set(row)) == 1 and len(row) == 2 for row in r.advantages)  # every token of a step
    assert r.rewards == pytest.approx([[1.0, -0.1, 0.0][e] for e in episode_of_row])
    assert r.correct == [e == 0 for e in episode_of_row]
    assert r.group == [0] * 6 + [1] * 6
    assert r.episode == episode_of_row[:6] + [e + 3 for e in episode_of_row[:6]]  # each row's episode, for J
    m = r.metrics
    assert m["success_rate"] == pytest.approx(2 / 6) and m["accuracy"] == m["success_rate"]
    assert m["mean_return"] == pytest.approx(0.3) and m["reward"] == m["mean_return"]
    assert m["episode_length"] == 2 and m["fallback_count"] == 2
    assert m["invalid_action_rate"] == pytest.approx(2 / 12)
    assert m["episodes_consumed"] == 6 and m["env_steps_consumed"] == 12 and m["trained_rows"] == 12
    # the prompt of a step is the observation at that step, with the last action (history 1)
    assert "Move 0 of 2" in r.prompts[0] and "previous actions" not in r.prompts[0]
    assert "Move 1 of 2" in r.prompts[1] and "Your previous actions, oldest first: RIGHT." in r.prompts[1]
    assert "S P G" in r.prompts[1]  # the agent moved right
    assert trainer.update(r)["grad_norm"] > 0


def test_a_response_prefill_is_context_that_the_game_reads(game_data, tmp_path):
    """response_prefill "<action>": every prompt ends with its tokens (after the chat template), the completion
    (trained) is only what the model generated, and the game reads prefill + completion ("RIGHT</action>")."""
    cfg = msgrpo_config(game_data, prompts_per_step=1, group_size=3,
                        algo={"game_kwargs": {"desc": MAP, "max_steps": 2}, "update_samples": 0,
                              "response_prefill": "<action>"})
    trainer = Trainer(cfg, tmp_path / "prefill")
    prefill = trainer.tokenizer("<action>", add_special_tokens=False)["input_ids"]
    seen = []

    def generate(prompt_ids, n, max_new_tokens=None):
        seen.extend(prompt_ids)
        return [[11, 7] for _ in prompt_ids]

    # without the prefill "RIGHT</action>" still names RIGHT; "<action>UP" would too: the test must tell the two
    # apart, so the completion is a bare closing tag after a word the extractor reads only inside the slot
    trainer.generate, trainer.decode = generate, lambda completions: ["2</action>" for _ in completions]
    r = trainer.method.collect(0)
    assert seen and all(p[-len(prefill):] == prefill for p in seen)
    chats = [trainer.chat_ids([{"role": "user", "content": q}]) for q in r.prompts]  # rows: episode-major
    assert sorted(p[:-len(prefill)] for p in seen) == sorted(chats)  # generation: turn-major
    assert r.completion_ids == [[11, 7]] * len(r.completion_ids)  # the prefill is not trained
    # "<action>2</action>": the slot's alias 2 is RIGHT (FrozenLake's action ids), two moves reach G
    assert r.texts[0] == "<action>2</action>" and r.metrics["invalid_action_rate"] == 0
    assert r.metrics["success_rate"] == 1.0


@pytest.mark.parametrize("unit,k,rows", [("episode", 2, 4), ("step", 5, 5)])
def test_update_samples_episodes_or_steps(game_data, tmp_path, unit, k, rows):
    cfg = msgrpo_config(game_data, prompts_per_step=2, group_size=3,
                        algo={"game_kwargs": {"desc": MAP, "max_steps": 2}, "update_samples": k, "sample_unit": unit,
                              "sampling": "proportional"})
    trainer = Trainer(cfg, tmp_path / f"sampled-{unit}")
    scripted(trainer)
    r = trainer.method.collect(0)
    assert len(r) == rows and r.metrics["trained_units"] == k
    assert r.metrics["episodes_consumed"] == 6  # all six were played, only k units trained
    if unit == "episode":  # an episode enters with both of its steps
        assert r.metrics["trained_episodes"] == 2
        assert r.episode == [0, 0, 1, 1]  # one id per drawn episode
    else:  # steps drawn one by one keep their episode's id; the rows of one episode share it
        assert len(set(r.episode)) == r.metrics["trained_episodes"]
        by_prompt = {}
        for e, p in zip(r.episode, r.prompts):
            by_prompt.setdefault(e, []).append(p)
        assert all(len(set(ps)) == len(ps) for ps in by_prompt.values())  # distinct steps of one episode


def test_group_episodes_draw_their_own_dynamics(game_data, tmp_path):
    """The G episodes of a seed share the map but not the slips (unless same_dynamics)."""
    def second_positions(same):
        cfg = msgrpo_config(game_data, prompts_per_step=1, group_size=8,
                            algo={"game": "frozen_lake_slippery", "same_dynamics": same,
                                  "game_kwargs": {"desc": ["SFFF", "FFFF", "FFFF", "FFFG"], "max_steps": 2}})
        trainer = Trainer(cfg, tmp_path / f"dyn-{same}")
        trainer.generate = lambda ids, n, max_new_tokens=None: [[5]] * len(ids)
        trainer.decode = lambda completions: ["<action>DOWN</action>"] * len(completions)
        episodes = trainer.method.play(0)
        assert all(ep.length == 2 for ep in episodes)
        # the second prompt says where the first (slippery) DOWN took the agent
        return {next(line for line in ep.turns[1].prompt.splitlines() if line.startswith("You are at"))
                for ep in episodes}

    assert len(second_positions(True)) == 1
    assert len(second_positions(False)) > 1


def test_interrupted_and_resumed_run_is_identical(game_data, tmp_path):
    cfg = msgrpo_config(game_data, steps=3, save_every=2)
    straight = Trainer(cfg, tmp_path / "straight")
    straight.run()
    first = Trainer(cfg, tmp_path / "resumed")
    first.run(max_steps=2)  # "crash" after the step-2 checkpoint
    resumed = Trainer(cfg, tmp_path / "resumed", resume=True)
    assert resumed.start_step == 2 and resumed.method.totals["episodes"] == 8  # the method's state came back
    resumed.run()
    assert_weights_moved(straight.policy, cfg.model)
    for (name, a), b in zip(straight.policy.state_dict().items(), resumed.policy.state_dict().values()):
        assert torch.equal(a, b), name
    drop = ("gen_time", "update_time", "step_time", "gen_tokens_per_s", "tokens_per_s")
    rows_a = [{k: v for k, v in r.items() if k not in drop} for r in read_jsonl(tmp_path / "straight" / "metrics.jsonl")]
    rows_b = [{k: v for k, v in r.items() if k not in drop} for r in read_jsonl(tmp_path / "resumed" / "metrics.jsonl")]
    assert rows_a == rows_b and [r["episodes_consumed"] for r in rows_b] == [4, 8, 12]
    for key in ("success_rate", "mean_return", "episode_length", "invalid_action_rate", "fallback_count",
                "env_steps_consumed", "adv_abs_mean"):
        assert key in rows_b[0], key
    assert all(math.isfinite(r["loss"]) for r in rows_b)
