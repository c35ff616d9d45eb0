"""Full-jitter backoff: bounds, growth, spread and validation."""

from __future__ import annotations

import random
import statistics

import pytest

from tidings import ConfigurationError
from tidings.backoff import Backoff, full_jitter


def test_delays_stay_within_the_exponential_ceiling() -> None:
    """Every delay lies in [0, min(cap, base * 2**attempt)]."""
    rng = random.Random(1)
    for attempt in range(80):
        ceiling = min(2.0, 0.01 * 2.0**attempt)
        for _ in range(200):
            assert 0.0 <= full_jitter(attempt, 0.01, 2.0, rng) <= ceiling


def test_delays_are_spread_uniformly_not_in_step() -> None:
    """Full jitter: at the cap, delays are uniform over [0, cap] (mean cap/2,
    every tenth of the range hit), so clients that failed together do not
    retry together."""
    rng = random.Random(2)
    draws = [full_jitter(10, 0.1, 1.0, rng) for _ in range(20_000)]
    assert abs(statistics.fmean(draws) - 0.5) < 0.02
    assert abs(statistics.pstdev(draws) - (1 / 12) ** 0.5) < 0.02  # a uniform's spread
    deciles = [0] * 10
    for d in draws:
        deciles[min(9, int(d * 10))] += 1
    assert min(deciles) > 1_700 and max(deciles) < 2_300
    assert len({round(d, 6) for d in draws[:100]}) == 100  # no two clients alike


def test_backoff_widens_then_resets() -> None:
    """Backoff.next widens the window per attempt up to the cap; reset starts over."""
    b = Backoff(0.05, 1.0, random.Random(3))
    ceilings = []
    for _ in range(8):
        ceilings.append(b.ceiling())
        assert 0 <= b.next() <= ceilings[-1]
    assert ceilings == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    b.reset()
    assert b.ceiling() == 0.05


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        Backoff(-1, 1)
    with pytest.raises(ConfigurationError):
        full_jitter(-1, 0.1, 1)
