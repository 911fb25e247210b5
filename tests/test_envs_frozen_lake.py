"""FrozenLake text game: transitions, holes, goal, slips, random maps, planner."""

from collections import Counter

import pytest
from gymnasium.envs.toy_text.frozen_lake import generate_random_map

from suite.envs.frozen_lake import FrozenLake, bfs_optimal_actions, planner_policy

# gymnasium's classic 4x4 map
CLASSIC = ["SFFF", "FHFH", "FFFH", "HFFG"]
OPEN = ["SFFF", "FFFF", "FFFF", "FFFG"]


def play(game, actions):
    return [game.step(action) for action in actions]


def test_deterministic_moves_and_edges():
    game = FrozenLake(desc=CLASSIC)
    game.reset(seed=0)
    assert game.position == (0, 0)
    result = game.step("RIGHT")
    assert (game.position, result.reward, result.done) == ((0, 1), 0.0, False)
    game.step("LEFT")
    game.step("LEFT")  # into the edge: stays
    assert game.position == (0, 0)
    game.step("UP")
    assert game.position == (0, 0)
    game.step("DOWN")
    assert game.position == (1, 0)
    assert game.turn == 5


def test_hole_ends_episode_without_reward():
    game = FrozenLake(desc=CLASSIC)
    game.reset(seed=0)
    first, second = play(game, ["RIGHT", "DOWN"])
    assert not first.done
    assert second.done and second.reward == 0.0
    assert second.info["fell_in_hole"] and not second.info["success"]
    assert game.position == (1, 1)
    assert "fell into a hole" in second.observation
    with pytest.raises(RuntimeError):
        game.step("UP")


def test_goal_gives_reward_one():
    game = FrozenLake(desc=CLASSIC)
    game.reset(seed=0)
    results = play(game, ["DOWN", "DOWN", "RIGHT", "RIGHT", "DOWN", "RIGHT"])
    assert [r.reward for r in results] == [0, 0, 0, 0, 0, 1.0]
    assert [r.done for r in results] == [False] * 5 + [True]
    assert results[-1].info["success"] and game.position == (3, 3)


def test_max_steps_truncates():
    game = FrozenLake(desc=CLASSIC, max_steps=3)
    game.reset(seed=0)
    results = play(game, ["LEFT", "LEFT", "LEFT"])
    assert [r.done for r in results] == [False, False, True]
    assert results[-1].info["truncated"] and results[-1].reward == 0.0


def test_noop_keeps_position_and_uses_a_turn():
    game = FrozenLake(desc=CLASSIC, max_steps=2)
    game.reset(seed=0)
    game.step("RIGHT")
    result = game.noop()
    assert game.position == (0, 1) and result.reward == 0.0
    assert result.done and result.info["truncated"]


def test_illegal_action_raises():
    game = FrozenLake(desc=CLASSIC)
    game.reset(seed=0)
    with pytest.raises(ValueError):
        game.step("left")


def test_render_marks_agent_and_legend():
    game = FrozenLake(desc=CLASSIC)
    lines = game.reset(seed=0).splitlines()
    assert lines[1:5] == ["P F F F", "F H F H", "F F F H", "H F F G"]
    assert lines[5].startswith("Legend: P = you")
    game.step("RIGHT")
    assert game.render().splitlines()[1] == "S P F F"
    assert "Move 1 of 20" in game.render()


def test_slippery_moves_are_one_third_each():
    game = FrozenLake(desc=OPEN, is_slippery=True)
    outcomes = Counter()
    trials = 3000
    for seed in range(trials):
        game.reset(seed=seed)
        game.step("DOWN")  # intended (1, 0); perpendicular: LEFT -> stay, RIGHT -> (0, 1)
        outcomes[game.position] += 1
    assert set(outcomes) == {(1, 0), (0, 0), (0, 1)}
    for cell in outcomes:
        assert abs(outcomes[cell] / trials - 1 / 3) < 0.04


def test_deterministic_variant_ignores_seed_for_moves():
    game = FrozenLake(desc=OPEN)
    for seed in range(50):
        game.reset(seed=seed)
        game.step("DOWN")
        assert game.position == (1, 0)


def trajectory(seed, actions):
    game = FrozenLake(is_slippery=True, max_steps=len(actions))
    steps = [(game.reset(seed=seed), 0.0, False)]
    for action in actions:
        if game.done:
            break
        result = game.step(action)
        steps.append((result.observation, result.reward, result.done))
    return steps


def test_same_seed_same_slippery_trajectory():
    actions = ["RIGHT", "DOWN"] * 5
    assert trajectory(7, actions) == trajectory(7, actions)
    assert any(trajectory(seed, actions) != trajectory(7, actions) for seed in range(8, 12))


def test_random_maps_are_seeded_and_solvable():
    game = FrozenLake()
    maps = set()
    for seed in range(200):
        game.reset(seed=seed)
        assert game.desc == generate_random_map(4, 0.8, seed=seed)
        assert game.desc[0][0] == "S" and game.desc[3][3] == "G"
        path = bfs_optimal_actions(game.desc)
        assert path is not None
        results = play(game, path)
        assert results[-1].reward == 1.0 and results[-1].done
        maps.add(tuple(game.desc))
    assert len(maps) > 50


def test_bfs_shortest_path_and_unsolvable_map():
    path = bfs_optimal_actions(CLASSIC)
    assert len(path) == 6
    assert bfs_optimal_actions(["SH", "HG"]) is None
    assert bfs_optimal_actions(CLASSIC, start=(3, 3)) == []
    assert bfs_optimal_actions(["SFG"]) == ["RIGHT", "RIGHT"]


def test_planner_policy_solves_deterministic_maps():
    game = FrozenLake()
    for seed in range(30):
        game.reset(seed=seed)
        result = None
        while not game.done:
            result = game.step(planner_policy(game))
        assert result.reward == 1.0 and game.turn == len(bfs_optimal_actions(game.desc))


def test_dynamics_seed_keeps_the_map_and_redraws_the_slips():
    game = FrozenLake(is_slippery=True)
    first = game.reset(seed=5)
    desc = list(game.desc)
    outcomes = set()
    for k in range(12):
        assert game.reset(seed=5, dynamics_seed=k) == first and game.desc == desc
        game.step("RIGHT")
        outcomes.add(game.position)
    assert len(outcomes) > 1  # slips differ between dynamics seeds
    runs = []
    for _ in range(2):  # a dynamics seed is reproducible
        game.reset(seed=5, dynamics_seed=3)
        runs.append([game.step(a).observation for a in ("RIGHT", "DOWN")] if not game.done else [])
    assert runs[0] == runs[1]
