"""ExGRPO's replay buffer (suite/replay.py) on scripted sequences and hand-computed numbers."""

import math

import numpy as np
import pytest

from suite.replay import ReplayBuffer, Trajectory, allocate, bucket_weight


def traj(*ids):
    return Trajectory(list(ids), [-0.5] * len(ids), step=1)


def test_bucket_moves_and_retirement_on_a_scripted_sequence():
    buf = ReplayBuffer(group_size=4)
    assert buf.update("q1", 2, [traj(1, 2), traj(3)]) == "stored"
    assert buf.buckets() == {2: ["q1"]} and buf.num_trajectories() == 2
    # q1 solved 3/4 next time: it moves to bucket 3; the repeated trajectory (1, 2) is not stored twice
    assert buf.update("q1", 3, [traj(1, 2), traj(4, 5)]) == "moved"
    assert buf.buckets() == {3: ["q1"]}
    assert [t.completion_ids for t in buf.trajectories["q1"]] == [[1, 2], [3], [4, 5]]
    assert buf.update("q2", 1, [traj(7)]) == "stored"
    assert buf.update("q2", 1, [traj(8)]) == "kept"
    # a group with no correct answer leaves a question where it is (and does not add an unseen one)
    assert buf.update("q1", 0) == "kept" and buf.bucket_of["q1"] == 3
    assert buf.update("q3", 0) == "ignored" and "q3" not in buf
    # 4/4: retired, out of the buffer with its trajectories, and it stays retired
    assert buf.update("q1", 4) == "retired"
    assert "q1" not in buf and "q1" not in buf.trajectories and buf.retired == {"q1"}
    assert buf.update("q1", 2, [traj(9)]) == "ignored" and "q1" not in buf
    # a question never seen before can be retired directly
    assert buf.update("q4", 4) == "retired"
    assert buf.buckets() == {1: ["q2"]}
    assert buf.stats() == {"buffer_questions": 1.0, "buffer_trajectories": 2.0, "retired_questions": 2.0,
                           "bucket_1": 1.0, "bucket_2": 0.0, "bucket_3": 0.0}
    with pytest.raises(ValueError, match="k = 5"):
        buf.update("q5", 5)


def test_gaussian_bucket_probabilities():
    # N(k; mu = K/2 = 4, sigma = 1): w_k = exp(-(k - 4)^2 / 2) / sqrt(2 pi)
    assert bucket_weight(4, 8) == pytest.approx(1 / math.sqrt(2 * math.pi))  # 0.398942
    assert bucket_weight(3, 8) == pytest.approx(0.241971, abs=1e-6)  # 0.398942 * e^-0.5
    assert bucket_weight(2, 8) == pytest.approx(0.053991, abs=1e-6)  # 0.398942 * e^-2
    assert bucket_weight(3, 8, sigma=2.0) == pytest.approx(math.exp(-1 / 8) / math.sqrt(8 * math.pi))
    buf = ReplayBuffer(group_size=8)
    for qid, k in [("a", 2), ("b", 3), ("c", 4), ("d", 4)]:
        buf.update(qid, k, [traj(1)])
    # non-empty buckets 2, 3, 4 (bucket weight, not question count): e^-2 + e^-0.5 + 1 = 1.741866
    probs = buf.probabilities()
    assert probs[4] == pytest.approx(1 / 1.741866, abs=1e-6)  # 0.574097
    assert probs[3] == pytest.approx(0.606531 / 1.741866, abs=1e-6)  # 0.348205
    assert probs[2] == pytest.approx(0.135335 / 1.741866, abs=1e-6)  # 0.077696
    # linear: k / K -> 2/8, 3/8, 4/8 over 9/8; uniform: 1/3 each
    lin = ReplayBuffer(8, "linear")
    uni = ReplayBuffer(8, "uniform")
    for b in (lin, uni):
        for qid, k in [("a", 2), ("b", 3), ("c", 4)]:
            b.update(qid, k, [traj(1)])
    assert lin.probabilities() == pytest.approx({2: 2 / 9, 3: 3 / 9, 4: 4 / 9})
    assert uni.probabilities() == pytest.approx({2: 1 / 3, 3: 1 / 3, 4: 1 / 3})
    with pytest.raises(ValueError, match="bucket weighting"):
        ReplayBuffer(8, "cubic")


def test_gaussian_on_the_count_and_on_the_accuracy_scale():
    """The reference weighs bucket k by N(k; K/2, 1) (count scale, the default); the paper writes N(k/K; 0.5, 1)
    (accuracy scale, ``gaussian_accuracy``), nearly flat. K = 8, buckets 1 and 4:
    count:    w_1 / w_4 = e^{-(1-4)^2/2} = e^-4.5 = 0.011109    -> P(bucket 1) = 0.011109 / 1.011109 = 0.010987
    accuracy: w_1 / w_4 = e^{-(1/8-1/2)^2/2} = e^-0.0703125 = 0.932102 -> P(bucket 1) = 0.932102 / 1.932102 = 0.482429
    """
    assert bucket_weight(1, 8, "gaussian_accuracy") == pytest.approx(0.932102 / math.sqrt(2 * math.pi), abs=1e-6)
    assert bucket_weight(4, 8, "gaussian_accuracy") == pytest.approx(1 / math.sqrt(2 * math.pi))
    count, accuracy = ReplayBuffer(8), ReplayBuffer(8, "gaussian_accuracy")
    for b in (count, accuracy):
        b.update("a", 1, [traj(1)])
        b.update("b", 4, [traj(2)])
    assert count.probabilities()[1] == pytest.approx(0.010987, abs=1e-6)
    assert accuracy.probabilities()[1] == pytest.approx(0.482429, abs=1e-6)
    # sigma is in accuracy units on that scale: sigma = 0.125 (one rollout of 8) gives the count-scale weights back
    narrow = ReplayBuffer(8, "gaussian_accuracy", sigma=0.125)
    narrow.update("a", 1, [traj(1)])
    narrow.update("b", 4, [traj(2)])
    assert narrow.probabilities()[1] == pytest.approx(0.010987, abs=1e-6)


def test_exgrpo_defaults_to_the_reference_weights():
    from suite.algos.exgrpo import ExGRPOOptions

    assert ExGRPOOptions().question_weighting == "gaussian" and ExGRPOOptions().bucket_sigma == 1.0
    assert ExGRPOOptions(question_weighting="gaussian_accuracy").question_weighting == "gaussian_accuracy"


def test_single_draws_follow_the_bucket_probabilities():
    buf = ReplayBuffer(group_size=8)
    for k in (2, 3, 4):
        for i in range(50):
            buf.update(f"{k}-{i}", k, [traj(1)])
    rng = np.random.default_rng(0)
    draws = [int(buf.sample(1, rng)[0].split("-")[0]) for _ in range(4000)]
    freq = {k: draws.count(k) / len(draws) for k in (2, 3, 4)}
    # binomial standard error at n = 4000 is <= 0.008; allow 4 of them
    assert freq == pytest.approx(buf.probabilities(), abs=0.03)


def test_sampling_is_without_replacement_and_overflow_is_redistributed():
    # allocate: bucket 0 (size 1) gets almost all of the multinomial mass; it can give only 1,
    # so the overflow goes to bucket 1, the only one with room
    rng = np.random.default_rng(0)
    for _ in range(20):
        counts = allocate([1, 10], [0.99, 0.01], 4, rng)
        assert counts == [1, 3]
    # overflow goes to the buckets with room in proportion to their weights, never past a bucket's size
    for _ in range(20):
        counts = allocate([2, 3, 50], [0.5, 0.3, 0.2], 10, rng)
        assert sum(counts) == 10 and counts[0] <= 2 and counts[1] <= 3
    # asking for more than the buffer holds gives everything once
    assert allocate([2, 3], [0.5, 0.5], 9, rng) == [2, 3]
    # through the buffer: the heavy bucket 4 holds 2 questions, the light bucket 1 (weight e^-4.5) 10
    buf = ReplayBuffer(group_size=8)
    for qid in ("h1", "h2"):
        buf.update(qid, 4, [traj(1)])
    for i in range(10):
        buf.update(f"l{i}", 1, [traj(1)])
    for seed in range(10):
        picked = buf.sample(5, np.random.default_rng(seed))
        assert len(picked) == len(set(picked)) == 5
        assert {"h1", "h2"} <= set(picked)  # bucket 4 is exhausted before the overflow moves on
    assert sorted(buf.sample(99, rng)) == sorted(buf.bucket_of)


def test_trajectory_selection():
    buf = ReplayBuffer(group_size=4)
    buf.update("q", 2, [traj(1), traj(2), traj(3)])
    rng = np.random.default_rng(0)
    assert buf.select("q", "min_entropy", rng, entropies=[0.9, 0.2, 0.4]) == 1
    assert buf.select("q", "min_entropy", rng, entropies=[0.3, 0.3, 0.4]) == 0  # first of equal minima
    picks = {buf.select("q", "random", rng) for _ in range(50)}
    assert picks == {0, 1, 2}
    with pytest.raises(ValueError, match="one entropy per stored trajectory"):
        buf.select("q", "min_entropy", rng, entropies=[0.1])
    with pytest.raises(ValueError, match="trajectory selection"):
        buf.select("q", "max_entropy", rng)


def test_state_dict_round_trip():
    buf = ReplayBuffer(group_size=4, weighting="linear")
    buf.update("q1", 2, [traj(1, 2), traj(3)])
    buf.update("q2", 1, [traj(4)])
    buf.update("q3", 4)
    again = ReplayBuffer(group_size=4, weighting="linear")
    again.load_state_dict(buf.state_dict())
    assert again.bucket_of == buf.bucket_of and again.retired == buf.retired
    assert again.trajectories == buf.trajectories
    assert again.sample(2, np.random.default_rng(3)) == buf.sample(2, np.random.default_rng(3))
    with pytest.raises(ValueError, match="group_size"):
        ReplayBuffer(group_size=8).load_state_dict(buf.state_dict())
