"""Action extraction, prompt rendering, the invalid-action fallback and the registry."""

import pytest

from suite.envs.base import ActionExtractor, LanguageAgentEnv, StepResult, TextGame, prompt_template
from suite.envs.frozen_lake import ACTION_ALIASES, ACTIONS, FrozenLake
from suite.envs.registry import make_game
from suite.envs.snake import SnakeGame

CLASSIC = ["SFFF", "FHFH", "FFFH", "HFFG"]
EXTRACTOR = ActionExtractor(ACTIONS, ACTION_ALIASES)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<action>LEFT</action>", "LEFT"),
        ("Action: left", "LEFT"),
        ("I will move **Up**.", "UP"),
        ("<ACTION>  down </ACTION>", "DOWN"),
        ("<action> **right** </action>", "RIGHT"),
        ("Final action: `Down`", "DOWN"),
        # several mentions: the last wins
        ("<action>LEFT</action> no, better <action>RIGHT</action>", "RIGHT"),
        ("LEFT looks risky and RIGHT is a hole, so down it is.", "DOWN"),
        ("Action: left\n<action>UP</action>", "UP"),
        # an answer slot beats later prose
        ("<action>UP</action> (I also considered LEFT)", "UP"),
        # reasoning blocks are ignored, even when unterminated
        ("<think>LEFT is tempting</think>\nRIGHT", "RIGHT"),
        ("<think>I would go LEFT", None),
        # numeric aliases only as a whole answer
        ("<action>2</action>", "RIGHT"),
        ("3", "UP"),
        ("Action: 0", "LEFT"),
        ("I am in row 3 so I go down", "DOWN"),
        ("I am in row 3", None),
        # no action / illegal action
        ("", None),
        ("I am not sure what to do.", None),
        ("<action>JUMP</action>", None),
        ("LEFT? <action>JUMP</action>", None),
        ("<action></action>", None),
        # whole words only
        ("UPPER-LEFTISH upstairs downtown", None),
    ],
)
def test_extract(text, expected):
    assert EXTRACTOR.extract(text) == expected


def test_extract_respects_legal_subset_and_canonical_case():
    extractor = ActionExtractor(["Up", "Down"])
    assert extractor.extract("<action>LEFT</action>") is None
    assert extractor.extract("go DOWN") == "Down"


def test_aliases_for_unknown_actions_are_ignored():
    extractor = ActionExtractor(["UP"], {"1": "DOWN", "0": "UP"})
    assert extractor.extract("1") is None
    assert extractor.extract("0") == "UP"


def test_prompt_template():
    prompt = prompt_template("the board", ["LEFT", "RIGHT"], rules="the rules")
    assert prompt.startswith("the rules\n\nthe board\n\nLegal actions: LEFT, RIGHT.")
    assert prompt.endswith("<action>LEFT</action>.")
    assert prompt_template("obs", ["UP"]).startswith("obs\n\n")


def frozen_env(**kwargs):
    env = LanguageAgentEnv(FrozenLake(desc=CLASSIC), **kwargs)
    env.reset(seed=0)
    return env


def test_valid_text_plays_the_action():
    env = frozen_env()
    result = env.step("I think <action>RIGHT</action>")
    assert env.game.position == (0, 1) and result.reward == 0.0
    assert result.info["valid_action"] and result.info["invalid_actions"] == 0
    assert result.info["action"] == "RIGHT"


def test_invalid_text_noop_fallback_penalty_and_count():
    env = frozen_env()
    first = env.step("no idea")
    second = env.step("<action>JUMP</action>")
    assert env.game.position == (0, 0) and env.game.turn == 2
    assert first.reward == pytest.approx(-0.1) and second.reward == pytest.approx(-0.1)
    assert first.info["action"] == "noop" and not first.info["valid_action"]
    assert second.info["invalid_actions"] == 2 and second.info["game_reward"] == 0.0
    env.reset(seed=0)
    assert env.step("DOWN").info["invalid_actions"] == 0


def test_random_fallback_is_seeded_and_legal():
    def fallback_actions(seed):
        env = LanguageAgentEnv(FrozenLake(desc=["S" + "F" * 9 + "G"], max_steps=30),
                               format_penalty=-0.5, fallback="random")
        env.reset(seed=seed)
        results = [env.step("???") for _ in range(8)]
        assert all(r.reward == -0.5 for r in results)
        return [r.info["action"] for r in results]

    actions = fallback_actions(4)
    assert actions == fallback_actions(4)
    assert set(actions) <= set(ACTIONS) and len(set(actions)) > 1
    assert any(fallback_actions(seed) != actions for seed in range(5, 10))


def test_snake_noop_fallback_keeps_heading():
    game = SnakeGame(num_enemies=0, num_apples=1)
    env = LanguageAgentEnv(game)
    env.reset(seed=0)
    game.load_state([(3, 3), (3, 2)], apples=[(6, 6)])
    result = env.step("hmm")
    assert game.agent.head == (3, 4) and result.info["move"] == "RIGHT"
    assert result.reward == pytest.approx(-0.1)


class NoNoopGame(TextGame):
    name = "no_noop"

    def reset(self, seed=None):
        return "start"

    def legal_actions(self):
        return ["GO"]

    def step(self, action):
        return StepResult("end", 1.0, True)


def test_fallback_configuration_is_checked():
    with pytest.raises(ValueError, match="no no-op"):
        LanguageAgentEnv(NoNoopGame(), fallback="noop")
    with pytest.raises(ValueError, match="fallback must be"):
        LanguageAgentEnv(NoNoopGame(), fallback="skip")
    env = LanguageAgentEnv(NoNoopGame(), fallback="random", seed=0)
    env.reset()
    result = env.step("nothing")  # penalty is added to the game's reward of 1
    assert result.info["action"] == "GO" and result.reward == pytest.approx(0.9)


@pytest.mark.parametrize(
    "name, cls, attribute, value",
    [
        ("frozen_lake", FrozenLake, "is_slippery", False),
        ("frozen_lake_slippery", FrozenLake, "is_slippery", True),
        ("snake", SnakeGame, "apple_reward", 1.0),
        ("snake_poison_apple", SnakeGame, "apple_reward", -1.0),
    ],
)
def test_registry(name, cls, attribute, value):
    game = make_game(name, max_steps=7)
    assert isinstance(game, cls) and game.name == name
    assert getattr(game, attribute) == value and game.max_steps == 7


def test_registry_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as error:
        make_game("tetris")
    for name in ["frozen_lake", "frozen_lake_slippery", "snake", "snake_poison_apple"]:
        assert name in str(error.value)


def test_prompt_history_and_direct_style():
    env = frozen_env()
    env.step("<action>RIGHT</action>")
    env.step("gibberish")  # invalid: the no-op is played and recorded
    assert env.actions == ["RIGHT", "noop"]
    assert "Your previous actions, oldest first: RIGHT, noop." in env.prompt(history=2)
    assert "Your previous actions, oldest first: noop." in env.prompt(history=1)
    assert "previous actions" not in env.prompt()
    direct = env.prompt(style="direct")
    assert direct.endswith("Reply with exactly one legal action inside tags and nothing else, for example <action>LEFT</action>.")
    bare = env.prompt(style="direct_no_example")
    assert bare.endswith("Legal actions: LEFT, DOWN, RIGHT, UP.\nReply with exactly one legal action inside "
                         "<action></action> tags and nothing else.")
    assert "for example" not in bare and bare.replace(bare.split("\n")[-1], "") == direct.replace(
        direct.split("\n")[-1], "")  # only the instruction's last line differs
    with pytest.raises(ValueError, match="prompt style"):
        env.prompt(style="verbose")
    env.reset(seed=0)
    assert env.actions == []


def test_play_episodes_in_lockstep():
    from suite.envs.base import play_episodes

    envs = [LanguageAgentEnv(FrozenLake(desc=CLASSIC)) for _ in range(3)]
    scripts = [["RIGHT", "DOWN"], ["DOWN", "DOWN", "RIGHT", "RIGHT", "DOWN", "RIGHT"], ["what?", "LEFT", "UP"]]
    batches = []

    def act(active, prompts):
        batches.append(len(active))
        return [(scripts[envs.index(env)][len(env.actions)], len(env.actions)) for env in active]

    for env in envs:
        env.game.max_steps = 3
    episodes = play_episodes(envs, [0, 1, 2], act)
    # hole after 2 turns; truncated at 3 turns (the goal needs 6); one invalid turn then truncated at 3
    assert batches == [3, 3, 2]
    assert [ep.length for ep in episodes] == [2, 3, 3]
    assert [ep.seed for ep in episodes] == [0, 1, 2] and episodes[0].game == "frozen_lake"
    assert [ep.success for ep in episodes] == [False, False, False]
    assert episodes[2].invalid == 1 and episodes[2].ret == pytest.approx(-0.1)
    assert [t.payload for t in episodes[1].turns] == [0, 1, 2]
    assert "Move 1 of 3" in episodes[1].turns[1].prompt
    goal = [LanguageAgentEnv(FrozenLake(desc=CLASSIC))]
    won = play_episodes(goal, [0], lambda active, prompts: [(scripts[1][len(goal[0].actions)], None)])
    assert won[0].success and won[0].ret == 1.0 and won[0].length == 6
    with pytest.raises(ValueError, match="act returned 0 responses for 1 prompts"):
        play_episodes(goal, [0], lambda active, prompts: [])
