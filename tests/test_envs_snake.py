"""Snake text game on hand-built boards: moves, growth, deaths, enemies, poison."""

import pytest

from suite.envs.base import RandomPolicy
from suite.envs.snake import SnakeGame, heuristic_policy

FAR_APPLE = [(6, 6)]


def board(agent, enemies=(), apples=FAR_APPLE, seed=0, **kwargs):
    game = SnakeGame(num_enemies=len(enemies), num_apples=len(apples), **kwargs)
    game.reset(seed=seed)
    game.load_state(agent, enemies, apples)
    return game


def test_move_body_follows_head():
    game = board([(3, 3), (3, 2)])
    result = game.step("RIGHT")
    assert game.agent.body == [(3, 4), (3, 3)]
    assert (result.reward, result.done) == (0.0, False)
    game.step("UP")
    assert game.agent.body == [(2, 4), (3, 4)]
    assert game.agent.heading == "UP"


def test_apple_gives_point_growth_and_respawn():
    game = board([(3, 3), (3, 2)], apples=[(3, 4)])
    result = game.step("RIGHT")
    assert result.reward == 1.0 and result.info["ate_apple"]
    assert game.agent.body == [(3, 4), (3, 3), (3, 2)]
    assert game.score == 1.0 and result.info["length"] == 3
    assert len(game.apples) == 1 and game.apples[0] not in game.agent.body


def test_poison_apple_costs_a_point_and_still_grows():
    game = board([(3, 3), (3, 2)], apples=[(3, 4)], poison_apple=True)
    assert game.name == "snake_poison_apple"
    result = game.step("RIGHT")
    assert result.reward == -1.0 and not result.done
    assert game.score == -1.0 and len(game.agent.body) == 3
    assert "poison apple (-1 point)" in result.observation


def test_wall_collision_ends_with_death_reward():
    game = board([(0, 3), (1, 3)], death_reward=-5.0)
    result = game.step("UP")
    assert result.done and result.reward == -5.0
    assert result.info["death"] == "wall"
    assert game.agent.body == [(0, 3), (1, 3)]  # board left as before the fatal move
    with pytest.raises(RuntimeError):
        game.step("LEFT")


def test_self_collision():
    game = board([(2, 2), (2, 3), (3, 3), (3, 2), (4, 2)])
    result = game.step("DOWN")
    assert result.done and result.reward == -1.0 and result.info["death"] == "self"


def test_reversing_onto_neck_is_self_collision():
    game = board([(3, 3), (3, 2)])
    result = game.step("LEFT")
    assert result.done and result.info["death"] == "self"


def test_following_own_tail_is_safe():
    game = board([(2, 2), (2, 3), (3, 3), (3, 2)])
    result = game.step("DOWN")
    assert not result.done
    assert game.agent.body == [(3, 2), (2, 2), (2, 3), (3, 3)]


def test_enemy_collision():
    game = board([(3, 3), (3, 2)], enemies=[[(3, 4), (2, 4)]])
    result = game.step("RIGHT")
    assert result.done and result.reward == -1.0 and result.info["death"] == "enemy"


def test_enemy_avoids_lethal_moves():
    for seed in range(20):
        game = board([(5, 5), (5, 4)], enemies=[[(0, 0), (0, 1)]], seed=seed)
        game.step("RIGHT")
        assert game.enemies[0].body == [(1, 0), (0, 0)]


def test_enemy_eats_apples_and_grows():
    game = board([(5, 5), (5, 4)], enemies=[[(0, 0), (0, 1)]], apples=[(1, 0)])
    result = game.step("RIGHT")
    assert result.reward == 0.0
    assert game.enemies[0].body == [(1, 0), (0, 0), (0, 1)]
    assert len(game.apples) == 1 and game.apples[0] != (1, 0)


def test_trapped_enemy_dies_and_respawns():
    game = board([(1, 1), (2, 1)], enemies=[[(0, 0), (0, 1)]])
    result = game.step("LEFT")  # agent head to (1, 0): the enemy has no safe move
    assert not result.done and result.info["enemy_deaths"] == 1
    assert len(game.enemies) == 1
    head = game.enemies[0].head
    assert abs(head[0] - 1) + abs(head[1] - 0) >= 3
    assert not set(game.enemies[0].body) & set(game.agent.body)


def enemy_trajectory(seed):
    game = board([(3, 1), (4, 1)], enemies=[[(3, 5), (4, 5)]], seed=seed)
    bodies = []
    for action in ["UP", "UP", "RIGHT", "RIGHT", "DOWN"]:
        game.step(action)
        bodies.append(list(game.enemies[0].body))
    return bodies


def test_enemy_moves_reproducible_by_seed():
    assert enemy_trajectory(3) == enemy_trajectory(3)
    assert len({tuple(map(tuple, enemy_trajectory(seed))) for seed in range(10)}) > 1


def test_reset_is_seeded_and_consistent():
    game = SnakeGame(num_enemies=2, num_apples=3)
    first = game.reset(seed=11)
    assert game.reset(seed=11) == first
    assert game.reset(seed=12) != first
    cells = game.agent.body + [c for enemy in game.enemies for c in enemy.body] + game.apples
    assert len(cells) == len(set(cells)) == 2 + 2 * 2 + 3
    for enemy in game.enemies:
        distance = abs(enemy.head[0] - game.agent.head[0]) + abs(enemy.head[1] - game.agent.head[1])
        assert distance >= 3


def test_noop_keeps_heading():
    game = board([(3, 3), (3, 2)])
    result = game.noop()
    assert game.agent.body == [(3, 4), (3, 3)] and result.info["move"] == "RIGHT"


def test_episode_cap_truncates():
    game = board([(3, 3), (3, 2)], max_steps=3)
    results = [game.step(a) for a in ["RIGHT", "DOWN", "LEFT"]]
    assert [r.done for r in results] == [False, False, True]
    assert results[-1].info["truncated"] and results[-1].info["death"] is None


def test_render_symbols():
    game = board([(3, 3), (3, 2)], enemies=[[(0, 0), (0, 1)]], apples=[(6, 6)])
    lines = game.render().splitlines()
    assert lines[1] == "# # # # # # # # #"
    assert lines[2] == "# E e . . . . . #"
    assert lines[5] == "# . . S H . . . #"
    assert lines[8] == "# . . . . . . A #"
    assert "Your head is at (3, 3), moving RIGHT" in game.render()
    assert "Score: 0" in lines[0]


def test_load_state_rejects_bad_boards():
    game = SnakeGame()
    game.reset(seed=0)
    with pytest.raises(ValueError):
        game.load_state([(3, 3), (3, 5)])  # not connected
    with pytest.raises(ValueError):
        game.load_state([(3, 3), (3, 2)], apples=[(3, 3)])  # overlap


def test_heuristic_policy_choices():
    assert heuristic_policy(board([(3, 3), (3, 2)], apples=[(1, 3)])) == "UP"
    poisoned = board([(3, 3), (3, 2)], apples=[(3, 4)], poison_apple=True)
    assert heuristic_policy(poisoned) in {"UP", "DOWN"}


def average_return(policy_for_seed, seeds, poison=False):
    total = 0.0
    for seed in seeds:
        game = SnakeGame(poison_apple=poison)
        game.reset(seed=seed)
        policy = policy_for_seed(seed)
        while not game.done:
            total += game.step(policy(game)).reward
    return total / len(seeds)


def test_heuristic_beats_random():
    seeds = range(20)
    heuristic = average_return(lambda seed: heuristic_policy, seeds)
    random_return = average_return(RandomPolicy, seeds)
    assert heuristic > 5.0 > random_return


def test_success_means_surviving_to_the_cap():
    game = board([(3, 3), (3, 2)], max_steps=2)
    first, second = game.step("UP"), game.step("UP")
    assert not first.info["success"] and second.info["success"] and second.done
    dead = board([(0, 3), (1, 3)])
    result = dead.step("UP")  # into the wall
    assert result.done and not result.info["success"]


def test_dynamics_seed_keeps_the_board_and_redraws_enemy_moves():
    game = SnakeGame(num_enemies=2)
    start = game.reset(seed=4)
    trajectories = set()
    for k in range(8):
        assert game.reset(seed=4, dynamics_seed=k) == start
        for action in ("UP", "LEFT", "DOWN") if game.agent.heading != "DOWN" else ("DOWN", "LEFT", "UP"):
            if not game.done:
                game.step(action)
        trajectories.add(tuple(tuple(enemy.body) for enemy in game.enemies))
    assert len(trajectories) > 1
