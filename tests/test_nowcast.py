"""Nowcasts of weeks still filling (issue 14, item 3): chain-ladder delays and the gamma-Poisson nowcast."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from monitor.nowcast import Delays, estimate_delays, nowcast_week, prior_from_history

NAN = math.nan

# five event weeks, delays 0..2 (events first seen 0, 1, 2 weeks after the week ended); the latest
# week has only its delay-0 count, the one before it two delays
TRIANGLE = [
    [4, 2, 2],
    [2, 1, 1],
    [6, 3, 3],
    [2, 2, NAN],
    [4, NAN, NAN],
]


def test_chain_ladder_delays_by_hand():
    delays = estimate_delays(TRIANGLE, min_weeks=3)
    # f(0): cumulative counts at delay 1 over those at delay 0, weeks 1-4: (6+3+9+4) / (4+2+6+2) = 22/14
    # f(1): at delay 2 over delay 1, weeks 1-3: (8+4+12) / (6+3+9) = 24/18
    assert delays.factors == pytest.approx([22 / 14, 24 / 18])
    assert list(delays.weeks) == [4, 3]
    # F(2) = 1, F(1) = 18/24, F(0) = F(1) · 14/22
    assert delays.share == pytest.approx([18 / 24 * 14 / 22, 18 / 24, 1.0])
    assert delays.max_delay == 2


def test_too_little_history_gives_no_delays():
    assert estimate_delays(TRIANGLE, min_weeks=4) is None  # f(1) rests on 3 weeks
    nothing = estimate_delays([[0, 0], [0, 0], [0, NAN]], min_weeks=2)  # no events yet: nothing is late either
    assert isinstance(nothing, Delays) and list(nothing.share) == [1.0, 1.0]
    assert estimate_delays([[0, 3], [0, 1], [0, NAN]], min_weeks=2) is None  # only late events: no share known early


def test_a_triangle_must_hold_counts():
    with pytest.raises(ValueError, match="negative"):
        estimate_delays([[1, -1], [2, NAN]], min_weeks=1)


def test_a_complete_week_is_its_count():
    now = nowcast_week(7, 1.0, prior_mean=3, size=2)
    assert (now.expected, now.low, now.high) == (7.0, 7.0, 7.0)


def test_with_no_trust_in_the_history_the_nowcast_is_the_chain_ladder_estimate():
    now = nowcast_week(6, 0.4, prior_mean=3, size=1e-9)
    assert now.expected == pytest.approx(6 / 0.4, rel=1e-6)


@pytest.mark.parametrize(("observed", "share", "prior_mean", "size"), [(0, 0.3, 4.0, 2.0), (5, 0.5, 3.0, 1.5), (4, 0.8, 3.0, 5.0)])
def test_the_nowcast_is_the_final_count_given_what_is_known(observed, share, prior_mean, size):
    """Monte Carlo of the model itself: rate ~ gamma(size, mean prior_mean), final count N ~ Poisson(rate),
    each event known with probability `share`; among the draws with `observed` known, N's mean and
    percentiles must be the nowcast's."""
    rng = np.random.default_rng(5)
    rate = rng.gamma(size, prior_mean / size, size=4_000_000)
    final = rng.poisson(rate)
    known = rng.binomial(final, share)
    given = final[known == observed]
    assert given.size > 20_000
    now = nowcast_week(observed, share, prior_mean=prior_mean, size=size, level=0.9)
    assert now.expected == pytest.approx(given.mean(), rel=0.01)
    assert now.low == np.quantile(given, 0.05, method="inverted_cdf")
    assert now.high == np.quantile(given, 0.95, method="inverted_cdf")


def test_poisson_counts_add_the_prior_share_still_to_come():
    now = nowcast_week(2, 0.25, prior_mean=8, size=math.inf)
    assert now.expected == pytest.approx(2 + 8 * 0.75)


def test_bad_arguments_name_what_is_accepted():
    with pytest.raises(ValueError, match="share"):
        nowcast_week(1, 0.0, prior_mean=1, size=1)
    with pytest.raises(ValueError, match="count"):
        nowcast_week(-1, 0.5, prior_mean=1, size=1)


def test_prior_from_history():
    assert prior_from_history([3, 3, 3, 3]) == (3.0, math.inf)  # no more variation than Poisson
    mean, size = prior_from_history([0, 10, 0, 10])  # mean 5, variance 33.3: size = 25 / 28.3
    assert mean == 5.0 and size == pytest.approx(25 / (100 / 3 - 5))
    assert prior_from_history([]) == (0.1, math.inf)
    assert prior_from_history([0, 0, 0])[0] == 0.1  # never a prior of nothing


def test_delays_measured_at_once_follow_the_rule_row_by_row_and_ignore_impossible_timestamps():
    """`delays.measure` reads millions of sightings in one pass; each event is known from `known_at` (its first
    sight, or an earlier ACLED timestamp of its source's first ingest). A timestamp too large for any date
    (a broken export) is not an earlier sight and breaks nothing."""
    import random
    from datetime import date as day

    from monitor.delays import known_at, measure

    rng = random.Random(5)
    rows = []
    for i in range(3000):
        event = day(2022, 1, 3) + timedelta(days=rng.randrange(300))
        seen = datetime(2022, 1, 10, tzinfo=timezone.utc) + timedelta(hours=rng.randrange(24 * 330))
        stamp = rng.choice(["", str(int((seen - timedelta(days=rng.randrange(40))).timestamp())), "99999999999", "123abc"])
        rows.append((event.isoformat(), seen.isoformat(), stamp, rng.choice(["1", ""])))
    table = measure(rows, min_weeks=3)
    expected = sum(known_at(s, r, bool(f)) < datetime.fromisoformat(s) for _, s, r, f in rows if r != "99999999999")
    assert table.from_timestamp == expected > 0
    assert table.as_of == max(datetime.fromisoformat(s) for _, s, _, _ in rows)
    assert table.events == 3000 and table.delays is not None
