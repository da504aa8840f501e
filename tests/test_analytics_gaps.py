"""Gap analytics on both engines: equal to a plain pandas/scipy reading of the same rows."""

from __future__ import annotations

import os
import time
import warnings
from collections import Counter
from datetime import UTC, date, datetime

import ibis
import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pytest
from scipy import stats as sp
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from corridor.analytics import (
    DIMENSIONS,
    AnalyticsQueryError,
    GapResult,
    gap_stats,
    gap_table,
    summarise_gaps,
)
from corridor.analytics.feedback.gaps import GAP_SUMS
from corridor.errors import ContractError
from corridor.ingest.pipeline import Ingestor
from corridor.store import open_store
from test_analytics_data import (
    assert_frames_match,
    bucket,
    dataset,
    facts,
    groups,
    load,
    normalise,
    stores_on_both_engines,
)

CASES = [
    ([], None),
    (["touchpoint"], None),
    (["stage", "segment"], None),
    (["department", "region"], None),
    (["channel", "agent"], None),
    (["partner", "source"], None),
    (["touchpoint"], "month"),
    (["channel"], "week"),
    (["stage"], "quarter"),
    ([], "day"),
]


def _quiet(fn, *args, **kwargs):
    """scipy/statsmodels warn (and pytest errors) on degenerate samples; we want their NaN."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _t_interval(x: np.ndarray, conf: float) -> tuple[float, float]:
    if len(x) < 2:
        return (np.nan, np.nan)
    if np.ptp(x) == 0:  # scipy refuses scale 0; the t interval has zero width
        return (x.mean(), x.mean())
    return _quiet(sp.t.interval, conf, len(x) - 1, loc=x.mean(), scale=sp.sem(x))


def reference(df: pd.DataFrame, by: list[str], period: str | None, conf: float = 0.95):
    """The gap table computed from raw rows with pandas, scipy and statsmodels only."""
    rated = df[df["expectation"].notna() & df["experience"].notna()].copy()
    rated["gap"] = rated["experience"] - rated["expectation"]
    keys = list(by)
    if period:
        rated["_p"] = bucket(rated["occurred_at"], period)
        keys.append("_p")
    cells = {key: rows for key, rows in groups(rated, keys)}
    out = []
    for key, rows in cells.items():
        n, gap = len(rows), rows["gap"].to_numpy()
        below = int((rows["experience"] < rows["expectation"]).sum())
        rec = dict(zip(by, key, strict=False))
        if period:
            rec["period"] = key[-1].start_time.tz_localize("UTC")
            rec["period_label"] = key[-1]
        rec.update(n=n, n_below=below)
        for col in ("expectation", "experience"):
            x = rows[col].to_numpy()
            rec[f"mean_{col}"] = x.mean()
            rec[f"mean_{col}_low"], rec[f"mean_{col}_high"] = _t_interval(x, conf)
        rec["mean_gap"] = gap.mean()
        rec["sd_gap"] = np.std(gap, ddof=1) if n > 1 else np.nan
        rec["mean_gap_low"], rec["mean_gap_high"] = _t_interval(gap, conf)
        rec["share_below"] = below / n
        rec["share_below_low"], rec["share_below_high"] = proportion_confint(
            below, n, alpha=1 - conf, method="wilson"
        )
        if period:
            prev = cells.get((*key[:-1], key[-1] - 1))
            if prev is None:
                rec.update(
                    delta_mean_gap=np.nan,
                    p_value_mean_gap=np.nan,
                    delta_share_below=np.nan,
                    p_value_share_below=np.nan,
                )
            else:
                pgap = prev["gap"].to_numpy()
                pbelow = int((prev["experience"] < prev["expectation"]).sum())
                rec["prev_n"] = len(prev)
                rec["delta_mean_gap"] = gap.mean() - pgap.mean()
                rec["p_value_mean_gap"] = (
                    _quiet(sp.ttest_ind, gap, pgap, equal_var=False).pvalue
                    if n > 1 and len(prev) > 1
                    else np.nan
                )
                rec["delta_share_below"] = below / n - pbelow / len(prev)
                rec["p_value_share_below"] = _quiet(
                    proportions_ztest, [below, pbelow], [n, len(prev)]
                )[1]
        out.append(rec)
    frame = pd.DataFrame(out)
    if period and "prev_n" not in frame:
        frame["prev_n"] = np.nan
    return frame


@pytest.fixture
def loaded(ingestor):
    data = dataset()
    load(ingestor, data)
    return ingestor.store, facts(data)


def test_gap_table_equals_pandas_reference(loaded):
    store, df = loaded
    for by, period in CASES:
        result = gap_table(store, by=by, period=period)
        keys = [*by, *(["period"] if period else [])]
        expected = reference(df, by, period)
        assert_frames_match(
            result.frame, expected.drop(columns=["period_label"], errors="ignore"), keys
        )
        assert result.n == int(expected["n"].sum())
        # both significance tests ran somewhere: the data has consecutive periods
        if period:
            assert result.frame["p_value_mean_gap"].notna().any()
            assert result.frame["p_value_share_below"].notna().any()


def test_result_columns_and_metadata(loaded):
    store, _ = loaded
    r = gap_table(store, by=["touchpoint"], period="month", confidence=0.9)
    assert isinstance(r, GapResult) and r.confidence == 0.9
    assert list(r.frame.columns) == [
        "touchpoint",
        "period",
        "period_label",
        "n",
        "n_below",
        "mean_expectation",
        "mean_expectation_low",
        "mean_expectation_high",
        "mean_experience",
        "mean_experience_low",
        "mean_experience_high",
        "mean_gap",
        "sd_gap",
        "se_gap",
        "mean_gap_low",
        "mean_gap_high",
        "share_below",
        "share_below_low",
        "share_below_high",
        "prev_n",
        "delta_mean_gap",
        "p_value_mean_gap",
        "delta_share_below",
        "p_value_share_below",
    ]
    assert "Welch" in r.method and "Wilson" in r.method
    assert r.query == {
        "by": ["touchpoint"],
        "period": "month",
        "filters": {},
        "since": None,
        "until": None,
    }
    f = r.frame
    assert np.allclose(f["mean_gap"], f["mean_experience"] - f["mean_expectation"])
    ok = f["n"] > 1
    assert (f.loc[ok, "mean_gap_low"] <= f.loc[ok, "mean_gap"]).all()
    assert (f["share_below_low"] <= f["share_below"]).all()
    records = r.to_records()
    assert len(records) == len(f)
    first = records[0]
    assert isinstance(first["period"], datetime) and first["period"].tzinfo is not None
    assert first["prev_n"] is None and first["p_value_mean_gap"] is None  # NaN -> None
    assert isinstance(first["n"], int) and isinstance(first["mean_gap"], float)
    table = r.to_arrow()
    assert table.num_rows == len(f) and table.schema.field("period").type.tz == "UTC"
    assert b'"confidence": 0.9' in table.schema.metadata[b"corridor"]


def test_filters_and_time_range(loaded):
    store, df = loaded
    filters = {"channel": ["web", "app"], "segment": ["consumer", None]}
    r = gap_table(
        store, by=["channel"], filters=filters, since="2025-02-01", until=date(2025, 5, 1)
    )
    sel = df[
        df["channel"].isin(["web", "app"])
        & (df["segment"].isin(["consumer"]) | df["segment"].isna())
        & (df["occurred_at"] >= pd.Timestamp("2025-02-01", tz="UTC"))
        & (df["occurred_at"] < pd.Timestamp("2025-05-01", tz="UTC"))
    ]
    assert_frames_match(r.frame, reference(sel, ["channel"], None), ["channel"])
    assert set(r.frame["channel"]) == {"web", "app"}
    assert r.query["filters"] == {"channel": ["web", "app"], "segment": ["consumer", None]}
    assert r.query["since"] == "2025-02-01T00:00:00+00:00"
    # a single value may be given as a string; None selects the missing group
    one = gap_table(store, filters={"touchpoint": "checkout"})
    assert one.n == reference(df[df["touchpoint"] == "checkout"], [], None)["n"].iloc[0]
    missing = gap_table(store, by="touchpoint", filters={"touchpoint": [None]})
    assert missing.frame["touchpoint"].isna().all() and len(missing.frame) == 1
    # a time with an offset is converted to UTC; the bound is exclusive
    t = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)
    a = gap_table(store, until="2025-03-01T03:00:00+01:00").n
    b = gap_table(store, until=t).n
    assert a == b == int(reference(df[df["occurred_at"] < t], [], None)["n"].iloc[0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"by": ["touchpoint", "colour"]}, "unknown grouping 'colour'; allowed: touchpoint, stage"),
        ({"by": ["touchpoint", "touchpoint"]}, "more than once"),
        ({"filters": {"colour": ["red"]}}, "unknown filter 'colour'; allowed: touchpoint"),
        ({"filters": {"channel": []}}, "filter 'channel' has no values"),
        ({"filters": {"channel": [3]}}, "must be strings"),
        ({"period": "year"}, "unknown period 'year'; allowed: day, week, month, quarter"),
        ({"since": "yesterday"}, "not an ISO-8601 date"),
        ({"since": "2025-03-01", "until": "2025-02-01"}, "must be before until"),
        ({"confidence": 95}, "confidence must be"),
    ],
)
def test_bad_queries_say_what_is_allowed(kwargs, match):
    """Refused before any engine work: the source is never touched."""
    with pytest.raises(AnalyticsQueryError, match=match) as info:
        gap_table({}, **kwargs)
    assert isinstance(info.value, ContractError) and isinstance(info.value, ValueError)
    assert info.value.status_code == 422
    if "unknown grouping" in match or "unknown filter" in match:
        for name in DIMENSIONS:
            assert name in str(info.value)


# -- periods --------------------------------------------------------------------------------------

BOUNDARY = [  # (feedback_id, occurred_at as sent, day, ISO week, month, quarter)
    ("b1", "2024-12-31T23:59:59Z", "2024-12-31", "2025-W01", "2024-12", "2024-Q4"),
    ("b2", "2025-01-01T00:00:00Z", "2025-01-01", "2025-W01", "2025-01", "2025-Q1"),
    ("b3", "2025-01-05T23:59:59.999Z", "2025-01-05", "2025-W01", "2025-01", "2025-Q1"),
    ("b4", "2025-01-06T00:00:00Z", "2025-01-06", "2025-W02", "2025-01", "2025-Q1"),
    ("b5", "2025-03-31T23:59:59Z", "2025-03-31", "2025-W14", "2025-03", "2025-Q1"),
    ("b6", "2025-04-01T01:30:00+02:00", "2025-03-31", "2025-W14", "2025-03", "2025-Q1"),
    ("b7", "2025-04-01T00:00:00Z", "2025-04-01", "2025-W14", "2025-04", "2025-Q2"),
    ("b8", "2025-03-30T23:00:00-02:00", "2025-03-31", "2025-W14", "2025-03", "2025-Q1"),
]


def _load_boundary(ingestor):
    n = len(BOUNDARY)
    report = ingestor.ingest(
        "feedback",
        pa.table(
            {
                "feedback_id": [b[0] for b in BOUNDARY],
                "occurred_at": [b[1] for b in BOUNDARY],
                "touchpoint": ["checkout"] * n,
                "source": ["survey"] * n,
                "expectation": [7.0] * n,
                "experience": [float(i) for i in range(n)],
            }
        ),
    )
    assert report.rejected == 0, report.as_dict()


@pytest.mark.parametrize(
    ("period", "column"), [("day", 2), ("week", 3), ("month", 4), ("quarter", 5)]
)
def test_periods_bucket_in_utc(ingestor, period, column):
    _load_boundary(ingestor)
    r = gap_table(ingestor.store, period=period)
    expected = pd.Series([b[column] for b in BOUNDARY]).value_counts().sort_index()
    got = r.frame.set_index("period_label")["n"]
    assert got.to_dict() == expected.to_dict()
    assert (r.frame["period"].dt.tz is not None) and (r.frame["period"].dt.hour == 0).all()
    starts = r.frame["period"]
    if period == "week":
        assert (starts.dt.weekday == 0).all()  # ISO weeks start on Monday
    if period in ("month", "quarter"):
        assert (starts.dt.day == 1).all()


def test_periods_ignore_the_local_time_zone(store_url, engine, small_map):
    """Buckets stay UTC when the PostgreSQL database's default time zone, or the process's
    local time zone (DuckDB), is somewhere else (UTC+14 here)."""
    zone = "Pacific/Kiritimati"
    old_tz = os.environ.get("TZ")
    if engine == "postgres":
        with psycopg.connect(store_url, autocommit=True) as con:
            con.execute(f"ALTER DATABASE \"{con.info.dbname}\" SET timezone TO '{zone}'")
        with psycopg.connect(store_url) as con:
            assert con.execute("SHOW timezone").fetchone() == (zone,)
    else:
        os.environ["TZ"] = zone
        time.tzset()
    try:
        with open_store(store_url) as store:
            ingestor = Ingestor(store)
            ingestor.load_map(small_map)
            _load_boundary(ingestor)
            for period, column in (("day", 2), ("week", 3), ("month", 4)):
                got = gap_table(store, period=period).frame.set_index("period_label")["n"]
                assert got.to_dict() == Counter(b[column] for b in BOUNDARY), period
            ingestor.close()
    finally:
        if engine != "postgres":
            if old_tz is None:
                del os.environ["TZ"]
            else:
                os.environ["TZ"] = old_tz
            time.tzset()


def test_change_is_against_the_calendar_period_just_before(ingestor):
    """March is compared with February; with February empty, April has no comparison."""
    rows = [
        ("2025-02-10T00:00:00Z", 8.0, [5.0, 6.0, 7.0, 6.0]),
        ("2025-03-10T00:00:00Z", 8.0, [7.0, 8.0, 9.0, 8.0]),
        ("2025-05-10T00:00:00Z", 8.0, [3.0, 4.0, 5.0, 9.0]),
    ]
    ids, at, exp, xp = [], [], [], []
    for i, (ts, e, xs) in enumerate(rows):
        for j, x in enumerate(xs):
            ids.append(f"c{i}{j}")
            at.append(ts)
            exp.append(e)
            xp.append(x)
    n = len(ids)
    ingestor.ingest(
        "feedback",
        pa.table(
            {
                "feedback_id": ids,
                "occurred_at": at,
                "source": ["survey"] * n,
                "expectation": exp,
                "experience": xp,
            }
        ),
    )
    f = gap_table(ingestor.store, period="month").frame.set_index("period_label")
    assert list(f.index) == ["2025-02", "2025-03", "2025-05"]
    feb, mar = np.array(rows[0][2]) - 8, np.array(rows[1][2]) - 8
    assert f.loc["2025-03", "delta_mean_gap"] == pytest.approx(mar.mean() - feb.mean())
    ref = sp.ttest_ind(mar, feb, equal_var=False)
    assert f.loc["2025-03", "p_value_mean_gap"] == pytest.approx(ref.pvalue)
    assert f.loc["2025-03", "delta_share_below"] == pytest.approx(0.25 - 1.0)
    assert f.loc["2025-03", "p_value_share_below"] == pytest.approx(
        proportions_ztest([1, 4], [4, 4])[1]
    )
    assert pd.isna(f.loc["2025-05", "prev_n"]) and np.isnan(f.loc["2025-05", "delta_mean_gap"])


# -- sufficient statistics ---------------------------------------------------------------------


def test_daily_sufficient_statistics_roll_up_to_the_same_answer(loaded):
    """What a rollup table would hold (sums by day × touch point × channel × segment × region),
    summed to month × touch point, gives exactly what the direct query gives."""
    store, _ = loaded
    fine = gap_stats(store, by=["touchpoint", "channel", "segment", "region"], period="day")
    assert list(fine.columns) == ["touchpoint", "channel", "segment", "region", "period", *GAP_SUMS]
    fine["period"] = (
        fine["period"].dt.tz_localize(None).dt.to_period("M").dt.start_time.dt.tz_localize("UTC")
    )
    monthly = fine.groupby(["touchpoint", "period"], dropna=False, as_index=False)[
        list(GAP_SUMS)
    ].sum()
    rolled = summarise_gaps(monthly, by=["touchpoint"], period="month")
    direct = gap_table(store, by=["touchpoint"], period="month").frame
    keys = ["touchpoint", "period"]
    assert_frames_match(
        rolled.drop(columns=["period_label"]), direct.drop(columns=["period_label"]), keys
    )
    assert (
        normalise(rolled, keys)["period_label"].tolist()
        == normalise(direct, keys)["period_label"].tolist()
    )


def test_tiny_in_memory_tables_need_no_store():
    """Analytics are pure over Ibis tables: a mapping of memtables works as a source."""
    fb = pd.DataFrame(
        {
            "feedback_id": ["a", "b", "c", "d", "e"],
            "occurred_at": pd.to_datetime(["2025-01-01"] * 5, utc=True),
            "person_id": [None] * 5,
            "touchpoint": ["checkout", "checkout", "checkout", None, None],
            "interaction_id": [None] * 5,
            "partner_id": [None] * 5,
            "source": ["survey", "survey", "review", "review", "review"],
            "expectation": [8.0, 6.0, 9.0, 5.0, None],
            "experience": [6.0, 7.0, 4.0, 5.0, 3.0],
            "nps": [10, 3, 8, None, None],
            "csat": [None] * 5,
            "ces": [None] * 5,
        }
    ).astype({"nps": "Int64", "csat": "Int64", "ces": "Int64"})
    f = gap_table({"feedback": ibis.memtable(fb)}, by="source").frame.set_index("source")
    assert f.loc["survey", "n"] == 2 and f.loc["survey", "mean_gap"] == pytest.approx(-0.5)
    assert f.loc["review", "n"] == 2 and f.loc["review", "share_below"] == 0.5
    with pytest.raises(AnalyticsQueryError, match="table 'interactions' is needed"):
        gap_table({"feedback": ibis.memtable(fb)}, by="channel")


def test_no_matching_rows(loaded):
    store, _ = loaded
    none = gap_table(store, filters={"channel": ["email"]})
    assert none.n == 0 and len(none.frame) == 1 and none.frame["n"].iloc[0] == 0
    assert np.isnan(none.frame["mean_gap"].iloc[0]) and np.isnan(none.frame["share_below"].iloc[0])
    empty = gap_table(store, by=["touchpoint"], period="week", filters={"channel": ["email"]})
    assert empty.n == 0 and empty.frame.empty
    assert "p_value_mean_gap" in empty.frame.columns
    assert empty.to_records() == [] and empty.to_arrow().num_rows == 0


def test_same_numbers_on_both_engines(tmp_path, request, small_map):
    """One implementation, two engines: identical frames, groups and periods included."""
    stores = stores_on_both_engines(tmp_path, request, small_map)
    for by, period in CASES:
        duck = gap_table(stores["duckdb"], by=by, period=period).frame
        pg = gap_table(stores["postgres"], by=by, period=period).frame
        pd.testing.assert_frame_equal(duck, pg, check_exact=False, rtol=1e-12, atol=1e-12)
    filters = {"region": ["north", None], "source": ["survey"]}
    a = gap_table(stores["duckdb"], by="partner", filters=filters, since="2025-03-01")
    b = gap_table(stores["postgres"], by="partner", filters=filters, since="2025-03-01")
    pd.testing.assert_frame_equal(a.frame, b.frame, check_exact=False, rtol=1e-12, atol=1e-12)
    assert a.n == b.n > 0
