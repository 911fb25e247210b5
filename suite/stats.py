"""Statistics for comparing two arms of a claim (treatment vs control) over seeds and problems.

Pure functions on numbers (numpy, scipy's Student-t and binomial distributions):

- :func:`mean_se`: mean and standard error of the mean (sample standard deviation / sqrt(n)) over seeds;
- :func:`paired_t_test`: the seed-level paired t-test, on the differences of per-seed metric means between
  treatment and control trained with the same seeds (two-sided p; needs 2 pairs);
- :func:`problem_differences`: per-problem score differences joined on the problem id, one column per seed pair;
- :func:`seed_problem_bootstrap` (the verdicts' test): the two-way paired bootstrap of that matrix, seed pairs and
  problems both resampled with replacement, so that the training randomness varies as well as the problems;
  two-sided p = 2 min(P(diff <= 0), P(diff >= 0)), at most 1;
- :func:`paired_bootstrap`: the problem-level paired bootstrap with the seeds pooled (each problem averaged over
  the seed pairs, problems resampled): it holds every seed's training fixed, so it is no test of a training method
  over seeds; kept for one evaluation of two fixed models and for comparison;
- :func:`mcnemar_exact`: McNemar's exact test for binary per-problem outcomes (binomial on the discordant pairs);
- :func:`mde`: the minimum detectable effect of a two-sided test at level alpha with the given power, from the
  standard error of the paired difference: (z_{1-alpha/2} + z_power) SE, 2.80 SE at alpha 0.05 and 80% power.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Hashable, Mapping, Sequence

import numpy as np
from scipy import stats as _scipy

BOOTSTRAP_ITERATIONS = 10_000
BOOTSTRAP_SEED = 0  # the numpy Generator's seed: the same inputs give the same p
_CHUNK = 1_000  # bootstrap iterations drawn at once (bounds memory for large test sets)
_CELLS = 4_000_000  # at most this many matrix cells gathered at once by the two-way bootstrap


def mean_se(values: Sequence[float]) -> tuple[float, float | None]:
    """(mean, standard error of the mean); the standard error is None for fewer than 2 values."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("mean_se of no values")
    if x.size < 2:
        return float(x.mean()), None
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))


def t_two_sided_p(t: float, df: float) -> float:
    """Two-sided p of a Student-t statistic with ``df`` degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return float(min(1.0, 2.0 * _scipy.t.sf(abs(t), df)))


@dataclass(frozen=True)
class TTest:
    mean: float  # mean difference (treatment - control)
    se: float  # its standard error
    t: float
    df: int
    p: float  # two-sided
    n: int  # pairs


def paired_t_test(treatment: Sequence[float], control: Sequence[float]) -> TTest:
    """Paired t-test of ``treatment[i] - control[i]`` (one pair per seed); two-sided p. Needs 2 pairs.
    Differences that are all equal give t = ±inf and p = 0, or t = 0 and p = 1 when they are all 0."""
    t_arr, c_arr = np.asarray(treatment, dtype=float), np.asarray(control, dtype=float)
    if t_arr.shape != c_arr.shape or t_arr.ndim != 1:
        raise ValueError(f"paired_t_test: treatment and control need one value per pair, got {t_arr.shape} and "
                         f"{c_arr.shape}")
    return one_sample_t_test(t_arr - c_arr)


def one_sample_t_test(differences: Sequence[float]) -> TTest:
    """t-test of mean(differences) = 0; two-sided p. Needs 2 values."""
    d = np.asarray(differences, dtype=float)
    if d.size < 2:
        raise ValueError(f"a t-test needs at least 2 pairs, got {d.size}")
    mean, se = mean_se(d)
    if se == 0:
        t = 0.0 if mean == 0 else math.copysign(math.inf, mean)
        return TTest(mean, 0.0, t, d.size - 1, 1.0 if mean == 0 else 0.0, d.size)
    t = mean / se
    return TTest(mean, se, t, d.size - 1, t_two_sided_p(t, d.size - 1), d.size)


def problem_differences(pairs: Sequence[tuple[Mapping[Hashable, float], Mapping[Hashable, float]]]
                        ) -> tuple[list, np.ndarray]:
    """Per-problem differences, one column per seed pair: ``pairs`` holds (treatment scores, control scores) of
    one seed each, a mapping problem id -> score. Rows are the problems every arm of every pair scored (the join
    on the id), in a fixed order. Returns (ids, matrix [problems, pairs])."""
    if not pairs:
        raise ValueError("problem_differences: no seed pairs")
    common = set(pairs[0][0])
    for t, c in pairs:
        common &= set(t) & set(c)
    ids = sorted(common, key=str)
    matrix = np.array([[t[i] - c[i] for t, c in pairs] for i in ids], dtype=float).reshape(len(ids), len(pairs))
    return ids, matrix


@dataclass(frozen=True)
class Bootstrap:
    mean: float  # observed mean difference over problems and seed pairs
    se: float  # standard deviation of the bootstrap means: the standard error of the mean difference
    p: float  # two-sided: 2 min(P(mean* <= 0), P(mean* >= 0)), at most 1
    n_problems: int
    n_pairs: int
    iterations: int


def _matrix(differences, iterations: int, name: str) -> np.ndarray:
    """``differences`` as a [problems, seed pairs] matrix (a vector is one pair), checked for a bootstrap."""
    d = np.asarray(differences, dtype=float)
    if d.ndim == 1:
        d = d[:, None]
    if d.ndim != 2 or d.shape[0] == 0 or d.shape[1] == 0:
        raise ValueError(f"{name}: needs at least one problem and one seed pair, got shape {d.shape}")
    if iterations < 1:
        raise ValueError(f"{name}: iterations must be >= 1")
    return d


def paired_bootstrap(differences, iterations: int = BOOTSTRAP_ITERATIONS, seed: int = BOOTSTRAP_SEED) -> Bootstrap:
    """Paired bootstrap over problems: ``differences`` is a vector (one difference per problem) or a matrix
    [problems, seed pairs]; each problem's differences are averaged over the pairs, the problems are resampled
    with replacement ``iterations`` times (numpy ``default_rng(seed)``) and the mean taken each time."""
    d = _matrix(differences, iterations, "paired_bootstrap")
    per_problem = d.mean(axis=1)
    n = per_problem.size
    rng = np.random.default_rng(seed)
    means = np.empty(iterations)
    for start in range(0, iterations, _CHUNK):
        size = min(_CHUNK, iterations - start)
        means[start:start + size] = per_problem[rng.integers(0, n, size=(size, n))].mean(axis=1)
    return _summarise(float(per_problem.mean()), means, n, d.shape[1])


def seed_problem_bootstrap(differences, iterations: int = BOOTSTRAP_ITERATIONS,
                           seed: int = BOOTSTRAP_SEED) -> Bootstrap:
    """Two-way paired bootstrap of ``differences`` [problems, seed pairs]: each of ``iterations`` resamples draws
    the seed pairs (columns) with replacement and, independently, the problems (rows) with replacement, and takes
    the mean of the resampled matrix (numpy ``default_rng(seed)``). One draw of problems serves every drawn seed
    pair: each seed is scored on the same problems (seeds and problems are crossed, not nested), so two seeds that
    agree on every problem give the problem bootstrap's SE, not a smaller one. With k seed pairs a resample draws
    one given pair k times with probability k^-k (1/27 at k = 3), so one pair whose difference is clearly below 0
    keeps p at about 2/27 = 0.074 or more at k = 3: a claim needs every seed to show it."""
    d = _matrix(differences, iterations, "seed_problem_bootstrap")
    n, k = d.shape
    rng = np.random.default_rng(seed)
    means = np.empty(iterations)
    chunk = max(1, min(_CHUNK, _CELLS // (n * k)))
    for start in range(0, iterations, chunk):
        size = min(chunk, iterations - start)
        rows, cols = rng.integers(0, n, size=(size, n)), rng.integers(0, k, size=(size, k))
        means[start:start + size] = d[rows[:, :, None], cols[:, None, :]].mean(axis=(1, 2))
    return _summarise(float(d.mean()), means, n, k)


def _summarise(observed: float, means: np.ndarray, n_problems: int, n_pairs: int) -> Bootstrap:
    """A bootstrap's result from its resampled means: SE = their standard deviation, two-sided p."""
    # an exact 0 up to rounding: a mean of equal differences must not fall on either side by floating-point noise
    means[np.abs(means) < 1e-12] = 0.0
    p = min(1.0, 2.0 * min(float(np.mean(means <= 0)), float(np.mean(means >= 0))))
    return Bootstrap(observed, float(means.std(ddof=1)) if means.size > 1 else 0.0, p, n_problems, n_pairs,
                     means.size)


def mcnemar_exact(treatment: Sequence[bool], control: Sequence[bool]) -> tuple[int, int, float]:
    """McNemar's exact test on paired binary outcomes (one pair per problem): (b, c, two-sided p), where b counts
    the problems the treatment got right and the control wrong, c the reverse, and p = min(1, 2 P(X <= min(b, c)))
    for X ~ Binomial(b + c, 1/2)."""
    t_arr, c_arr = np.asarray(treatment, dtype=bool), np.asarray(control, dtype=bool)
    if t_arr.shape != c_arr.shape:
        raise ValueError(f"mcnemar_exact: one outcome per problem in each arm, got {t_arr.shape} and {c_arr.shape}")
    b, c = int(np.sum(t_arr & ~c_arr)), int(np.sum(~t_arr & c_arr))
    n = b + c
    p = 1.0 if n == 0 else min(1.0, 2.0 * float(_scipy.binom.cdf(min(b, c), n, 0.5)))
    return b, c, p


def mde(se_diff: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Minimum detectable effect of a two-sided test at level ``alpha`` with ``power``, from the standard error of
    the paired difference: (z_{1-alpha/2} + z_power) * SE (2.80 SE at the defaults)."""
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError("mde: alpha and power must be in (0, 1)")
    z = NormalDist()
    return (z.inv_cdf(1 - alpha / 2) + z.inv_cdf(power)) * float(se_diff)
