"""Expectation drift: the change-point search against exhaustive search (and ruptures), the
description of each change against scipy on the raw rows, market events, and both engines."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats as sp

from conftest import make_store_url
from corridor.analytics import AnalyticsQueryError, DriftResult, drift_stats, expectation_drift
from corridor.analytics.feedback.drift import (
    DRIFT_SUMS,
    change_penalty,
    detect_drift,
    dispersion,
    pelt,
    pooled_variance,
    segment_cost,
    segment_series,
)
from corridor.ingest.pipeline import Ingestor
from corridor.store import open_store

# -- the search on one series --------------------------------------------------------------------


def _sums(groups: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = np.array([len(g) for g in groups], dtype=float)
    s = np.array([g.sum() for g in groups])
    q = np.array([(g * g).sum() for g in groups])
    return n, s, q


def _exhaustive(n, s, q, penalty, min_segment, scale=1.0) -> list[int]:
    """Every segmentation of a short series, the cheapest one (ties: fewest changes)."""
    cost = segment_cost(n, s, q, scale)
    T, best, arg = len(n), np.inf, []
    for k in range(T):
        for cps in itertools.combinations(range(1, T), k):
            bounds = [0, *cps, T]
            if any(b - a < min_segment for a, b in itertools.pairwise(bounds)):
                continue
            total = sum(float(cost(a, b)) for a, b in itertools.pairwise(bounds)) + penalty * k
            if total < best - 1e-9:
                best, arg = total, list(cps)
    return arg


def _random_series(rng: np.random.Generator):
    T = int(rng.integers(2, 11))
    levels = np.repeat(rng.normal(0.0, 1.0, 4), 3)[:T]
    groups = [rng.normal(levels[t], 1.0, int(rng.integers(1, 25))) for t in range(T)]
    return (*_sums(groups), float(rng.uniform(0.5, 15.0)), int(rng.integers(1, 4)))


def test_pelt_finds_the_optimal_segmentation():
    """PELT's pruning is exact: the same change points as trying every segmentation."""
    rng = np.random.default_rng(20250301)
    for _ in range(300):
        n, s, q, penalty, min_segment = _random_series(rng)
        scale = float(rng.uniform(0.5, 2.0))
        assert pelt(n, s, q, penalty, min_segment, scale) == _exhaustive(
            n, s, q, penalty, min_segment, scale
        )


def test_pelt_agrees_with_ruptures():
    """The maintained implementation (ruptures, Truong et al. 2020) with the same cost."""
    rpt = pytest.importorskip("ruptures", reason="ruptures is only the reference here")
    from ruptures.base import BaseCost
    from ruptures.exceptions import NotEnoughPoints

    class SumsCost(BaseCost):
        model = "sufficient-statistics"
        min_size = 1

        def fit(self, signal):
            self.signal = signal
            self.cost = segment_cost(signal[:, 0], signal[:, 1], signal[:, 2])
            return self

        def error(self, start, end):
            if end - start < self.min_size:
                raise NotEnoughPoints
            return float(self.cost(start, end))

    rng = np.random.default_rng(7)
    for _ in range(200):
        n, s, q, penalty, min_segment = _random_series(rng)
        if len(n) < 2 * min_segment:
            continue
        cost = SumsCost()
        cost.min_size = min_segment
        algo = rpt.Pelt(custom_cost=cost, min_size=min_segment, jump=1)
        expected = algo.fit(np.column_stack([n, s, q])).predict(pen=penalty)[:-1]
        assert pelt(n, s, q, penalty, min_segment) == expected


def test_pelt_edge_cases():
    n, s, q = _sums([np.array([1.0, 2.0]), np.array([9.0, 8.0])])
    assert pelt(n, s, q, penalty=0.1, min_segment=1) == [1]
    assert pelt(n, s, q, penalty=0.1, min_segment=2) == []  # too short for two segments
    assert pelt(n[:1], s[:1], q[:1], penalty=0.1) == []
    with pytest.raises(ValueError, match="min_segment"):
        pelt(n, s, q, penalty=1.0, min_segment=0)


def test_penalty_pooled_variance_and_dispersion_reference_values():
    assert change_penalty(12, 0.01) == pytest.approx(sp.norm.isf(0.01 / 22) ** 2)
    assert change_penalty(12, 0.01) == pytest.approx(sp.chi2.isf(0.01 / 11, 1))
    assert change_penalty(1, 0.05) == pytest.approx(sp.norm.isf(0.025) ** 2)
    with pytest.raises(AnalyticsQueryError, match="alpha"):
        change_penalty(12, 0.0)

    rng = np.random.default_rng(3)
    groups = [rng.normal(m, 1.5, k) for m, k in ((5, 10), (5.5, 12), (6, 8), (6, 15), (6.2, 9))]
    n, s, q = _sums(groups)
    within = sum(((g - g.mean()) ** 2).sum() for g in groups)
    var = within / (n.sum() - len(groups))
    assert pooled_variance(n, s, q) == pytest.approx(var, rel=1e-12)
    # Pearson's chi-square of the period means around their segment levels, over its df
    levels = [np.concatenate(groups[:2]).mean()] * 2 + [np.concatenate(groups[2:]).mean()] * 3
    pearson = sum(len(g) * (g.mean() - lv) ** 2 for g, lv in zip(groups, levels, strict=True))
    assert dispersion(n, s, [2], var) == pytest.approx(pearson / var / 3, rel=1e-12)
    assert np.isnan(dispersion(n, s, [1, 2, 3, 4], var))  # no residual degrees of freedom
    assert np.isnan(pooled_variance([1, 1], [3.0, 4.0], [9.0, 16.0]))  # no period has two


def test_noise_is_left_alone_and_a_step_is_found():
    rng = np.random.default_rng(11)
    false = 0
    for _ in range(100):  # 12 months of 200 ratings, no change: α = 0.01 bounds the errors
        n, s, q = _sums([rng.normal(7.0, 1.3, 200) for _ in range(12)])
        false += bool(segment_series(n, s, q).changes)
    assert false <= 3
    groups = [rng.normal(7.0 + (0.5 if t >= 7 else 0.0), 1.3, 200) for t in range(12)]
    seg = segment_series(*_sums(groups))
    assert seg.changes == [7] and seg.phi >= 1.0
    assert seg.penalty == pytest.approx(change_penalty(12, 0.01))


def test_overdispersion_correction_keeps_wobbling_periods_from_looking_like_changes():
    """Period means that wobble four times more than sampling explains (a changing mix of
    respondents) fool the uncorrected detector; the quasi-likelihood scale does not."""
    rng = np.random.default_rng(5)
    raw = corrected = 0
    for _ in range(60):
        wobble = rng.normal(0.0, np.sqrt(3.0 * 1.3**2 / 300), 24)
        n, s, q = _sums([rng.normal(7.0 + w, 1.3, 300) for w in wobble])
        raw += bool(segment_series(n, s, q, correct_overdispersion=False).changes)
        seg = segment_series(n, s, q)
        corrected += bool(seg.changes)
    assert raw >= 10 and corrected <= 3, (raw, corrected)


# -- the whole path on both engines ---------------------------------------------------------------

START = datetime(2025, 1, 1, tzinfo=UTC)
SHIFT_MONTH = 4  # checkout expectations step up from April


def drift_data(seed: int = 42) -> dict[str, pa.Table]:
    """Six months of surveys at checkout (expectation steps from ~6 to ~8 in April) and at
    support_call (steady), with market events near and far from the step."""
    rng = np.random.default_rng(seed)
    ids, at, tps, exp, xp = [], [], [], [], []
    for month in range(1, 7):
        for tp in ("checkout", "support_call"):
            for k in range(40):
                ids.append(f"{tp}-{month}-{k:02d}")
                day = int(rng.integers(0, 28))
                at.append(datetime(2025, month, 1 + day, int(rng.integers(0, 24)), tzinfo=UTC))
                tps.append(tp)
                if tp == "checkout":
                    lo = 7 if month >= SHIFT_MONTH else 5
                    exp.append(float(rng.integers(lo, lo + 3)))
                else:
                    exp.append(float(rng.integers(5, 9)))
                xp.append(float(rng.integers(4, 10)) if rng.random() < 0.8 else None)
    feedback = pa.table(
        {
            "feedback_id": ids,
            "occurred_at": pa.array(at, pa.timestamp("us", tz="UTC")),
            "touchpoint": tps,
            "source": ["survey"] * len(ids),
            "expectation": pa.array(exp, pa.float64()),
            "experience": pa.array(xp, pa.float64()),
        }
    )
    events = [  # id, when, touch points, expected next to the April checkout change
        ("mkt-far", datetime(2025, 1, 20, tzinfo=UTC), "checkout", False),
        ("mkt-all", datetime(2025, 3, 3, tzinfo=UTC), None, True),
        ("mkt-checkout", datetime(2025, 4, 2, tzinfo=UTC), "checkout;home_delivery", True),
        ("mkt-other", datetime(2025, 4, 9, tzinfo=UTC), "support_call", False),
        ("mkt-may", datetime(2025, 5, 31, 23, 59, tzinfo=UTC), "checkout", True),
        ("mkt-june", datetime(2025, 6, 1, tzinfo=UTC), "checkout", False),
    ]
    market = pa.table(
        {
            "event_id": [e[0] for e in events],
            "occurred_at": pa.array([e[1] for e in events], pa.timestamp("us", tz="UTC")),
            "kind": ["competitor_move"] * len(events),
            "touchpoints": [e[2] for e in events],
            "description": [f"event {e[0]}" for e in events],
        }
    )
    return {"feedback": feedback, "market_events": market}


NEAR = "mkt-all;mkt-checkout;mkt-may"


def _load(ingestor: Ingestor, data: dict[str, pa.Table]) -> None:
    for kind in ("feedback", "market_events"):
        report = ingestor.ingest(kind, data[kind])
        assert report.rejected == 0, report.as_dict(max_errors=5)


@pytest.fixture
def drift_store(ingestor):
    data = drift_data()
    _load(ingestor, data)
    return ingestor.store, data["feedback"].to_pandas()


def test_the_step_is_found_and_described_as_scipy_would(drift_store):
    store, fb = drift_store
    r = expectation_drift(store)
    assert isinstance(r, DriftResult)
    f = r.frame
    assert list(f["touchpoint"]) == ["checkout"]  # support_call is steady
    row = f.iloc[0]
    assert row["date"] == pd.Timestamp("2025-04-01", tz="UTC") and row["period_label"] == "2025-04"

    checkout = fb[fb["touchpoint"] == "checkout"]
    month = pd.to_datetime(checkout["occurred_at"], utc=True).dt.month
    before = checkout.loc[month < SHIFT_MONTH, "expectation"].to_numpy()
    after = checkout.loc[month >= SHIFT_MONTH, "expectation"].to_numpy()
    ref = sp.ttest_ind(after, before, equal_var=False)
    low, high = ref.confidence_interval(0.95)
    assert row["size"] == pytest.approx(after.mean() - before.mean(), rel=1e-12)
    assert row["size_low"] == pytest.approx(low, rel=1e-9)
    assert row["size_high"] == pytest.approx(high, rel=1e-9)
    assert row["statistic"] == pytest.approx(ref.statistic, rel=1e-9)
    assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-6)
    assert row["p_value_adjusted"] == pytest.approx(min(1.0, 5 * ref.pvalue), rel=1e-6)
    assert (row["n_before"], row["n_after"]) == (len(before), len(after))
    assert row["mean_before"] == pytest.approx(before.mean())
    assert row["mean_after"] == pytest.approx(after.mean())
    assert row["before_start"] == pd.Timestamp("2025-01-01", tz="UTC")
    assert row["after_end"] == pd.Timestamp("2025-06-01", tz="UTC")
    assert row["periods"] == 6 and row["overdispersion"] >= 1.0
    assert row["market_events"] == NEAR

    s = r.series
    assert list(s.columns) == [
        "touchpoint",
        "period",
        "period_label",
        "n",
        "mean",
        "mean_low",
        "mean_high",
        "level",
        "level_mean",
    ]
    ck = s[s["touchpoint"] == "checkout"].reset_index(drop=True)
    assert ck["n"].tolist() == [40] * 6 and ck["level"].tolist() == [0, 0, 0, 1, 1, 1]
    assert ck["level_mean"].iloc[0] == pytest.approx(before.mean())
    by_month = checkout.groupby(month)["expectation"]
    np.testing.assert_allclose(ck["mean"], by_month.mean().to_numpy(), rtol=1e-12)
    sem = by_month.sem().to_numpy()
    np.testing.assert_allclose(
        ck["mean_high"], by_month.mean().to_numpy() + sp.t.ppf(0.975, 39) * sem, rtol=1e-9
    )
    assert r.n == len(fb)
    assert r.query["measure"] == "expectation" and r.query["period"] == "month"


def test_result_records_arrow_and_columns(drift_store):
    store, _ = drift_store
    r = expectation_drift(store, confidence=0.9, alpha=0.05)
    assert list(r.frame.columns) == [
        "touchpoint",
        "date",
        "period_label",
        "size",
        "size_low",
        "size_high",
        "statistic",
        "p_value",
        "p_value_adjusted",
        "mean_before",
        "mean_after",
        "n_before",
        "n_after",
        "before_start",
        "after_end",
        "periods",
        "overdispersion",
        "market_events",
    ]
    rec = r.to_records()[0]
    assert rec["date"].tzinfo is not None and isinstance(rec["n_before"], int)
    assert rec["market_events"] == NEAR
    table = r.to_arrow()
    assert table.num_rows == len(r.frame) and table.schema.field("date").type.tz == "UTC"
    assert b'"alpha": 0.05' in table.schema.metadata[b"corridor"]
    assert r.confidence == 0.9


def test_weeks_gaps_filters_and_no_grouping(drift_store):
    store, fb = drift_store
    weekly = expectation_drift(store, period="week", filters={"touchpoint": "checkout"})
    assert len(weekly.frame) == 1
    # the first ISO week of April 2025 starts on 31 March; the change sits within a week of it
    assert abs(weekly.frame["date"].iloc[0] - pd.Timestamp("2025-03-31", tz="UTC")) <= (
        pd.Timedelta(days=7)
    )
    overall = expectation_drift(store, by=None, filters={"touchpoint": ["checkout"]})
    assert "touchpoint" not in overall.frame.columns and len(overall.frame) == 1
    # without a touch point, every event near the change counts
    assert overall.frame["market_events"].iloc[0] == "mkt-all;mkt-checkout;mkt-other;mkt-may"
    gaps = expectation_drift(store, measure="gap")
    assert gaps.n == int(fb["experience"].notna().sum())
    early = expectation_drift(store, until="2025-04-01")
    assert early.frame.empty and "market_events" in early.frame.columns
    sums = drift_stats(store, period="month")
    assert list(sums.columns) == ["touchpoint", "period", *DRIFT_SUMS]
    changes, _ = detect_drift(sums, period="month")
    pd.testing.assert_frame_equal(
        changes, expectation_drift(store).frame.drop(columns="market_events")
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"period": None}, "drift needs a period"),
        ({"period": "year"}, "unknown period 'year'"),
        ({"measure": "mood"}, "unknown measure 'mood'; allowed: expectation"),
        ({"alpha": 1.5}, "alpha must lie strictly between 0 and 1"),
        ({"min_segment": 0}, "min_segment must be a whole number"),
        ({"by": ["colour"]}, "unknown grouping 'colour'"),
        ({"confidence": 2}, "confidence must be"),
    ],
)
def test_bad_requests_say_what_is_allowed(drift_store, kwargs, match):
    store, _ = drift_store
    with pytest.raises(AnalyticsQueryError, match=match):
        expectation_drift(store, **kwargs)


def test_same_numbers_on_both_engines(tmp_path, request, small_map):
    data = drift_data()
    results = {}
    for engine in ("duckdb", "postgres"):
        store = open_store(make_store_url(engine, tmp_path, request))
        request.addfinalizer(store.close)
        ingestor = Ingestor(store)
        ingestor.load_map(small_map)
        _load(ingestor, data)
        ingestor.close()
        results[engine] = (
            expectation_drift(store),
            expectation_drift(store, period="week", measure="gap", by=["touchpoint", "source"]),
        )
    for duck, pg in zip(results["duckdb"], results["postgres"], strict=True):
        pd.testing.assert_frame_equal(duck.frame, pg.frame, check_exact=False, rtol=1e-12)
        pd.testing.assert_frame_equal(duck.series, pg.series, check_exact=False, rtol=1e-12)
        assert duck.n == pg.n


def test_timestamps_of_market_events_bucket_like_the_engine():
    """A change dated 2025-06-01 sees May, June and July: the event at 2025-05-31 23:59 UTC
    is in May, one at 2025-08-01 00:00 is not."""
    from corridor.analytics.feedback.drift import annotate_market_events

    changes = pd.DataFrame(
        {"touchpoint": ["checkout"], "date": [pd.Timestamp("2025-06-01", tz="UTC")]}
    )
    events = pd.DataFrame(
        {
            "event_id": ["a", "b", "c", "d"],
            "occurred_at": pd.to_datetime(
                [
                    "2025-04-30T23:59:59Z",
                    "2025-05-31T23:59:00Z",
                    "2025-07-31T23:59:59Z",
                    "2025-08-01T00:00:00Z",
                ],
                utc=True,
            ),
            "touchpoints": [["checkout"], [], ["checkout", "invoice"], ["checkout"]],
        }
    )
    got = annotate_market_events(changes, events, "month")
    assert got["market_events"].tolist() == ["b;c"]
