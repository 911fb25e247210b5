"""suite/stats.py against hand-computed values (t tables, the binomial, closed-form bootstrap distributions)."""

import math

import numpy as np
import pytest

from suite import stats


def test_mean_and_standard_error_over_seeds():
    # [1, 2, 3]: mean 2, sample sd 1, SE 1/sqrt(3)
    mean, se = stats.mean_se([1.0, 2.0, 3.0])
    assert mean == 2.0 and se == pytest.approx(1 / math.sqrt(3))
    assert stats.mean_se([0.4]) == (0.4, None)  # one seed: no standard error over seeds


def test_paired_t_test_on_seed_means_matches_the_t_table():
    # differences [1, 2, 3]: t = 2 / (1 / sqrt 3) = 3.464 with 2 df; for 2 df P(|T| > t) = 1 - t / sqrt(2 + t^2)
    res = stats.paired_t_test([1.5, 2.5, 3.5], [0.5, 0.5, 0.5])
    assert res.mean == pytest.approx(2.0) and res.se == pytest.approx(1 / math.sqrt(3))
    assert res.t == pytest.approx(2 * math.sqrt(3)) and res.df == 2 and res.n == 3
    assert res.p == pytest.approx(1 - 12 ** 0.5 / 14 ** 0.5) and res.p == pytest.approx(0.0742, abs=1e-4)
    # 1 df (Cauchy): differences [1, 3], t = 2 / 1, P(|T| > 2) = 1 - (2 / pi) atan 2 = 0.2952
    res = stats.paired_t_test([1.0, 3.0], [0.0, 0.0])
    assert res.t == pytest.approx(2.0) and res.p == pytest.approx(1 - 2 / math.pi * math.atan(2.0))
    # a negative effect is two-sided too
    assert stats.paired_t_test([0.5, 0.5, 0.5], [1.5, 2.5, 3.5]).p == pytest.approx(0.0742, abs=1e-4)


def test_t_test_edge_cases():
    assert stats.paired_t_test([1.0, 1.0], [1.0, 1.0]).p == 1.0  # no difference at all
    same = stats.paired_t_test([2.0, 3.0], [1.0, 2.0])  # every seed +1 exactly
    assert same.t == math.inf and same.p == 0.0
    with pytest.raises(ValueError, match="at least 2 pairs"):
        stats.paired_t_test([1.0], [0.0])
    with pytest.raises(ValueError, match="one value per pair"):
        stats.paired_t_test([1.0, 2.0], [0.0])


def test_mcnemar_exact_on_the_discordant_pairs():
    # b = 8 (treatment right, control wrong), c = 1: p = 2 * (C(9,0) + C(9,1)) / 2^9 = 20 / 512
    treatment = [True] * 8 + [False] + [True] * 5 + [False] * 3
    control = [False] * 8 + [True] + [True] * 5 + [False] * 3  # 8 concordant problems do not count
    b, c, p = stats.mcnemar_exact(treatment, control)
    assert (b, c) == (8, 1) and p == pytest.approx(20 / 512) and p == pytest.approx(0.0391, abs=1e-4)
    assert stats.mcnemar_exact(control, treatment)[2] == pytest.approx(20 / 512)  # symmetric
    assert stats.mcnemar_exact([True, False], [True, False])[2] == 1.0  # no discordant pair
    assert stats.mcnemar_exact([True] * 5 + [False] * 5, [False] * 5 + [True] * 5)[2] == 1.0  # b = c: capped at 1


def test_bootstrap_on_identical_arms_finds_nothing():
    scores = {f"q{i}": float(i % 3 == 0) for i in range(30)}
    ids, diffs = stats.problem_differences([(scores, scores)] * 3)
    res = stats.paired_bootstrap(diffs)
    assert len(ids) == 30 and diffs.shape == (30, 3)
    assert res.mean == 0.0 and res.se == 0.0 and res.p == 1.0 and res.n_problems == 30 and res.n_pairs == 3


def test_bootstrap_matches_its_closed_form_distribution():
    # two problems with differences 2 and 0: a resample's mean is 2, 1, 0 with probability 1/4, 1/2, 1/4, so
    # P(mean* <= 0) = 1/4 and p = 2 * 1/4 = 0.5; the SE is the sd of a 2-draw mean from {2, 0}: 1 / sqrt(2)
    res = stats.paired_bootstrap([2.0, 0.0])
    assert res.mean == 1.0 and res.iterations == 10_000
    assert res.p == pytest.approx(0.5, abs=0.03) and res.se == pytest.approx(1 / math.sqrt(2), abs=0.02)
    assert stats.paired_bootstrap([2.0, 0.0]) == res  # a fixed generator seed: the same p every time
    # a resample whose mean is 0 counts on both sides, also when floating point makes it 5.6e-17
    # (0.1 + 0.2 - 0.3): the p of differences in tenths is the p of the same differences in units
    assert stats.paired_bootstrap([0.1, 0.2, -0.3, 0.3]).p == stats.paired_bootstrap([1.0, 2.0, -3.0, 3.0]).p
    # every problem better: no resample reaches 0
    assert stats.paired_bootstrap([1.0, 0.5, 2.0, 1.0]).p == 0.0
    # a matrix [problems, pairs] averages each problem over its seed pairs first: rows (2, 2) and (0, 0) = above
    assert stats.paired_bootstrap(np.array([[2.0, 2.0], [1.0, -1.0]])).p == pytest.approx(0.5, abs=0.03)


def test_seed_problem_bootstrap_resamples_the_seeds():
    # no problem varies within a seed: each column is one value, -1, 10, 10. A resample's mean is the mean of 3 seed
    # draws with replacement, <= 0 only when all 3 draws are the first seed (1/27): p = 2/27; its SE is the seeds'
    # population sd / sqrt(3) = sqrt(((-1 - 19/3)^2 + 2 (10 - 19/3)^2) / 3 / 3) = 2.994
    d = np.tile([-1.0, 10.0, 10.0], (50, 1))
    res = stats.seed_problem_bootstrap(d)
    assert res.mean == pytest.approx(19 / 3) and (res.n_problems, res.n_pairs, res.iterations) == (50, 3, 10_000)
    assert res.p == pytest.approx(2 / 27, abs=0.012) and res.se == pytest.approx(2.994, abs=0.06)
    assert stats.seed_problem_bootstrap(d) == res  # a fixed generator seed
    # the pooled problem bootstrap sees no spread at all here: it holds the seeds fixed
    assert stats.paired_bootstrap(d).p == 0.0 and stats.paired_bootstrap(d).se == pytest.approx(0.0)
    # every seed better on every problem: no resample reaches 0
    assert stats.seed_problem_bootstrap(np.tile([1.0, 2.0, 0.5], (4, 1))).p == 0.0


def test_seed_problem_bootstrap_shares_the_problem_draw_between_seeds():
    # three seeds with the same differences (1, 1, 0, 0) on 4 problems: the problems are crossed with the seeds, so
    # the answer is the problem bootstrap's: P(mean* <= 0) = P(no 1 drawn in 4) = 1/16, p = 1/8, SE = 0.5 / 2.
    # Resampling problems apart within each seed would give SE 0.25 / sqrt(3) and p = 2 / 16^3.
    d = np.stack([[1.0, 1.0, 0.0, 0.0]] * 3, axis=1)
    res = stats.seed_problem_bootstrap(d)
    assert res.p == pytest.approx(1 / 8, abs=0.015) and res.se == pytest.approx(0.25, abs=0.01)
    assert stats.seed_problem_bootstrap([1.0, 1.0, 0.0, 0.0]).p == pytest.approx(res.p, abs=0.015)  # a vector
    with pytest.raises(ValueError, match="seed_problem_bootstrap: needs at least one problem"):
        stats.seed_problem_bootstrap(np.zeros((0, 3)))


def test_problem_differences_join_on_the_id_and_pool_the_seeds():
    t0, c0 = {"a": 1.0, "b": 1.0, "c": 0.0}, {"a": 0.0, "b": 1.0, "c": 0.0, "d": 1.0}
    t1, c1 = {"a": 1.0, "b": 0.0, "c": 1.0}, {"c": 0.0, "b": 1.0, "a": 1.0}
    ids, diffs = stats.problem_differences([(t0, c0), (t1, c1)])
    assert ids == ["a", "b", "c"]  # d: scored by one arm only
    assert diffs.tolist() == [[1.0, 0.0], [0.0, -1.0], [0.0, 1.0]]


def test_minimum_detectable_effect_at_80_percent_power():
    # (z_0.975 + z_0.8) SE = (1.96 + 0.84) SE
    assert stats.mde(1.0) == pytest.approx(2.80, abs=2e-3)
    assert stats.mde(0.05) == pytest.approx(0.140, abs=1e-4)
    assert stats.mde(0.05, alpha=0.01, power=0.9) == pytest.approx((2.5758 + 1.2816) * 0.05, abs=1e-4)
