"""Facets on both engines: functional against emotional and solicited against unsolicited,
equal to a plain pandas/scipy/statsmodels reading of the same rows."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats as sp
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
)

from conftest import make_store_url
from corridor.analytics import (
    AnalyticsQueryError,
    FacetResult,
    SourceFacetResult,
    facet_table,
    source_facets,
)
from corridor.analytics.feedback.facets import (
    BINS,
    FACET_SUMS,
    facet_stats,
    pearson,
    source_facet_stats,
)
from corridor.ingest.pipeline import Ingestor
from corridor.store import open_store
from test_analytics_data import bucket, dataset, facts, groups, load

SIDE = {"survey": "solicited", "review": "unsolicited", "social": "unsolicited"}


def facet_data(seed: int = 11) -> dict[str, pa.Table]:
    """The analytics data set with emotions that follow the gap, and some transcripts (which
    belong to neither side of the solicited/unsolicited split)."""
    data = dataset()
    rng = np.random.default_rng(seed)
    fb = data["feedback"]
    x = fb.column("experience").to_numpy(zero_copy_only=False)
    e = fb.column("expectation").to_numpy(zero_copy_only=False)
    gap = np.nan_to_num(x - e, nan=0.0)
    emotion = np.clip(np.rint(0.5 * gap + rng.normal(0, 0.8, len(gap))), -3, 3).astype(int)
    present = rng.random(len(gap)) > 0.3
    fb = fb.append_column(
        "emotion", pa.array([int(v) if p else None for v, p in zip(emotion, present, strict=True)])
    )
    source = fb.column("source").to_pylist()
    source = ["transcript" if i % 10 == 3 else s for i, s in enumerate(source)]
    data["feedback"] = fb.set_column(fb.schema.get_field_index("source"), "source", [source])
    return data


def frame_of(data: dict[str, pa.Table]) -> pd.DataFrame:
    f = facts(data)
    emotion = data["feedback"].to_pandas().set_index("feedback_id")["emotion"]
    f["emotion"] = f["feedback_id"].map(emotion).astype(float)
    return f


@pytest.fixture
def loaded(ingestor):
    data = facet_data()
    load(ingestor, data)
    return ingestor.store, frame_of(data)


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _t(x: np.ndarray) -> tuple[float, float]:
    if len(x) < 2:
        return (np.nan, np.nan)
    if np.ptp(x) == 0:
        return (x.mean(), x.mean())
    return _quiet(sp.t.interval, 0.95, len(x) - 1, loc=x.mean(), scale=sp.sem(x))


def _keyed(df: pd.DataFrame, by: list[str], period: str | None):
    keys = list(by)
    if period:
        df = df.assign(_p=bucket(df["occurred_at"], period))
        keys.append("_p")
    for key, rows in groups(df, keys):
        rec = dict(zip(by, key, strict=False))
        if period:
            rec["period"] = key[-1].start_time.tz_localize("UTC")
        yield rec, rows


def assert_frames(actual: pd.DataFrame, expected: pd.DataFrame, keys: list[str]) -> None:
    def norm(df):
        df = df.copy()
        for k in keys:
            if k != "period":
                df[k] = df[k].astype(object).where(df[k].notna(), None)
        if keys:
            df = df.sort_values(keys, na_position="last", kind="mergesort")
        return df.reset_index(drop=True)

    a, e = norm(actual), norm(expected)
    assert len(a) == len(e)
    for k in keys:
        assert a[k].tolist() == e[k].tolist(), k
    for col in e.columns:
        if col in keys:
            continue
        if col.endswith("_counts"):
            assert a[col].tolist() == e[col].tolist(), col
            continue
        np.testing.assert_allclose(
            a[col].to_numpy(dtype=float, na_value=np.nan),
            e[col].to_numpy(dtype=float, na_value=np.nan),
            rtol=1e-9,
            atol=1e-12,
            equal_nan=True,
            err_msg=col,
        )


# -- functional against emotional ----------------------------------------------------------------


def facet_reference(df: pd.DataFrame, by: list[str], period: str | None) -> pd.DataFrame:
    df = df[df["experience"].notna() | df["emotion"].notna()]
    out = []
    for rec, rows in _keyed(df, by, period):
        rec["n"] = len(rows)
        for name in ("experience", "emotion"):
            x = rows[name].dropna().to_numpy()
            rec[f"n_{name}"] = len(x)
            rec[f"mean_{name}"] = x.mean() if len(x) else np.nan
            rec[f"mean_{name}_low"], rec[f"mean_{name}_high"] = _t(x)
        emo = rows["emotion"].dropna().to_numpy()
        neg = int((emo < 0).sum())
        rec["n_negative_emotion"] = neg
        rec["share_negative_emotion"] = neg / len(emo) if len(emo) else np.nan
        lo, hi = proportion_confint(neg, len(emo), 0.05, "wilson") if len(emo) else (np.nan,) * 2
        rec["share_negative_emotion_low"], rec["share_negative_emotion_high"] = lo, hi
        both = rows[rows["experience"].notna() & rows["emotion"].notna()]
        x, y = both["experience"].to_numpy(), both["emotion"].to_numpy()
        rec["n_both"] = len(both)
        r = lo = hi = p = np.nan
        if len(x) >= 2 and np.ptp(x) > 0 and np.ptp(y) > 0:
            res = _quiet(sp.pearsonr, x, y)
            r = res.statistic
            if len(x) >= 3:
                p = res.pvalue
            if len(x) >= 4:
                lo, hi = res.confidence_interval(0.95)
        rec.update(correlation=r, correlation_low=lo, correlation_high=hi, p_value_correlation=p)
        out.append(rec)
    return pd.DataFrame(out)


CASES = [([], None), (["touchpoint"], None), (["channel", "segment"], None), (["source"], "month")]


@pytest.mark.parametrize(("by", "period"), CASES)
def test_facet_table_equals_pandas_reference(loaded, by, period):
    store, df = loaded
    r = facet_table(store, by=by, period=period)
    keys = [*by, *(["period"] if period else [])]
    expected = facet_reference(df, by, period)
    assert_frames(r.frame.drop(columns=["period_label"], errors="ignore"), expected, keys)
    assert r.n == int(expected["n"].sum())


def test_facet_columns_and_metadata(loaded):
    store, _ = loaded
    r = facet_table(store, by="touchpoint", period="quarter", confidence=0.9)
    assert isinstance(r, FacetResult) and r.confidence == 0.9
    assert list(r.frame.columns) == [
        "touchpoint",
        "period",
        "period_label",
        "n",
        "n_experience",
        "mean_experience",
        "mean_experience_low",
        "mean_experience_high",
        "n_emotion",
        "mean_emotion",
        "mean_emotion_low",
        "mean_emotion_high",
        "n_negative_emotion",
        "share_negative_emotion",
        "share_negative_emotion_low",
        "share_negative_emotion_high",
        "n_both",
        "correlation",
        "correlation_low",
        "correlation_high",
        "p_value_correlation",
    ]
    assert (
        {"2025-Q1", "2025-Q2"} <= set(r.frame["period_label"]) <= {"2025-Q1", "2025-Q2", "2025-Q3"}
    )
    # emotions follow the gap in this data: the two facets move together
    overall = facet_table(store).frame.iloc[0]
    assert overall["correlation"] > 0.3 and overall["correlation_low"] > 0
    assert r.to_arrow().num_rows == len(r.frame)
    sums = facet_stats(store, by="touchpoint")
    assert list(sums.columns) == ["touchpoint", *FACET_SUMS]


def test_pearson_from_sums_matches_scipy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=50)
    y = 0.4 * x + rng.normal(size=50)
    r = pearson(50, x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum(), 0.9)
    ref = sp.pearsonr(x, y)
    assert r.r == pytest.approx(ref.statistic, rel=1e-12)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    lo, hi = ref.confidence_interval(0.9)
    assert (r.low, r.high) == (pytest.approx(lo, rel=1e-12), pytest.approx(hi, rel=1e-12))
    flat = pearson([3, 1], [3.0, 1.0], [6.0, 2.0], [3.0, 1.0], [14.0, 4.0], [6.0, 2.0])
    assert np.isnan(flat.r).all()  # no variance in x; a single pair


# -- solicited against unsolicited ---------------------------------------------------------------


def source_reference(
    df: pd.DataFrame, by: list[str], period: str | None, measure: str = "experience"
) -> pd.DataFrame:
    bins = BINS[measure]
    df = df.assign(side=df["source"].map(SIDE))
    df = df[df["side"].notna()]
    df = df.assign(
        value=df["experience"] - df["expectation"] if measure == "gap" else df["experience"]
    )
    df = df[df["value"].notna()]
    out = []
    for rec, rows in _keyed(df, by, period):
        parts = {}
        for side in ("solicited", "unsolicited"):
            part = rows[rows["side"] == side]
            v = part["value"].to_numpy()
            parts[side] = part
            rec[f"{side}_n"] = len(v)
            rec[f"{side}_mean"] = v.mean() if len(v) else np.nan
            rec[f"{side}_mean_low"], rec[f"{side}_mean_high"] = _t(v)
            b = np.clip(np.floor(v), bins[0], bins[-1]).astype(int)
            rec[f"{side}_counts"] = [int((b == k).sum()) for k in bins]
            rated = part[part["expectation"].notna() & part["experience"].notna()]
            below = int((rated["experience"] < rated["expectation"]).sum())
            rec[f"{side}_n_rated"], rec[f"{side}_n_below"] = len(rated), below
            rec[f"{side}_share_below"] = below / len(rated) if len(rated) else np.nan
            lo, hi = (
                proportion_confint(below, len(rated), 0.05, "wilson")
                if len(rated)
                else (np.nan,) * 2
            )
            rec[f"{side}_share_below_low"], rec[f"{side}_share_below_high"] = lo, hi
        u = parts["unsolicited"]["value"].to_numpy()
        s = parts["solicited"]["value"].to_numpy()
        rec["delta_mean"] = u.mean() - s.mean() if len(u) and len(s) else np.nan
        lo = hi = p = np.nan
        if len(u) > 1 and len(s) > 1:
            t = _quiet(sp.ttest_ind, u, s, equal_var=False)
            lo, hi = t.confidence_interval(0.95)
            p = t.pvalue
        rec.update(delta_mean_low=lo, delta_mean_high=hi, p_value_mean=p)
        nu, bu = rec["unsolicited_n_rated"], rec["unsolicited_n_below"]
        ns, bs = rec["solicited_n_rated"], rec["solicited_n_below"]
        skew = lo = hi = p = np.nan
        if nu and ns:
            skew = bu / nu - bs / ns
            lo, hi = confint_proportions_2indep(bu, nu, bs, ns, method="newcomb", compare="diff")
            if 0 < bu + bs < nu + ns:
                p = proportions_ztest([bu, bs], [nu, ns])[1]
        rec.update(negativity_skew=skew, negativity_skew_low=lo, negativity_skew_high=hi)
        rec["p_value_skew"] = p
        out.append(rec)
    return pd.DataFrame(out)


SOURCE_CASES = [
    (["touchpoint"], None, "experience"),
    ([], None, "experience"),
    (["touchpoint"], "quarter", "gap"),
    (["region", "channel"], None, "experience"),
]


@pytest.mark.parametrize(("by", "period", "measure"), SOURCE_CASES)
def test_source_facets_equal_pandas_reference(loaded, by, period, measure):
    store, df = loaded
    r = source_facets(store, by=by, period=period, measure=measure)
    keys = [*by, *(["period"] if period else [])]
    expected = source_reference(df, by, period, measure)
    assert_frames(r.frame.drop(columns=["period_label"], errors="ignore"), expected, keys)
    assert r.n == int(expected["solicited_n"].sum() + expected["unsolicited_n"].sum())
    assert r.bins == BINS[measure]
    for side in ("solicited", "unsolicited"):  # the counts add up to n
        assert (r.frame[f"{side}_counts"].map(sum) == r.frame[f"{side}_n"]).all()


def test_source_facet_columns_metadata_and_errors(loaded):
    store, df = loaded
    r = source_facets(store)
    assert isinstance(r, SourceFacetResult)
    side_cols = [
        "n",
        "mean",
        "mean_low",
        "mean_high",
        "counts",
        "n_rated",
        "n_below",
        "share_below",
        "share_below_low",
        "share_below_high",
    ]
    assert list(r.frame.columns) == [
        "touchpoint",
        *(f"solicited_{c}" for c in side_cols),
        *(f"unsolicited_{c}" for c in side_cols),
        "delta_mean",
        "delta_mean_low",
        "delta_mean_high",
        "p_value_mean",
        "negativity_skew",
        "negativity_skew_low",
        "negativity_skew_high",
        "p_value_skew",
    ]
    meta = r.metadata()
    assert meta["measure"] == "experience" and meta["bins"] == list(range(11))
    rec = r.to_records()[0]
    assert isinstance(rec["solicited_counts"], list) and len(rec["solicited_counts"]) == 11
    table = r.to_arrow()
    assert str(table.schema.field("solicited_counts").type) == "list<item: int64>"
    # transcripts are on neither side
    transcripts = int((df["source"] == "transcript").sum())
    assert transcripts > 0
    assert r.n == int(
        df["source"].isin(list(SIDE)).sum()
        - df["experience"].isna()[df["source"].isin(list(SIDE))].sum()
    )
    only_reviews = source_facets(store, by=None, filters={"source": ["review"]})
    assert only_reviews.frame["solicited_n"].iloc[0] == 0
    nothing = source_facets(store, by=None, filters={"source": ["transcript"]})
    assert nothing.n == 0 and len(nothing.frame) == 1 and nothing.frame["solicited_n"][0] == 0
    sums = source_facet_stats(store, by="touchpoint")
    assert list(sums.columns) == [
        "touchpoint",
        "side",
        "bin",
        "n",
        "sum_value",
        "sumsq_value",
        "n_rated",
        "n_below",
    ]
    with pytest.raises(AnalyticsQueryError, match="leave 'source' out of the grouping"):
        source_facets(store, by=["touchpoint", "source"])
    with pytest.raises(AnalyticsQueryError, match="unknown measure 'nps'; allowed: experience"):
        source_facets(store, measure="nps")


def test_same_numbers_on_both_engines(tmp_path, request, small_map):
    data = facet_data()
    frames = {}
    for engine in ("duckdb", "postgres"):
        store = open_store(make_store_url(engine, tmp_path, request))
        request.addfinalizer(store.close)
        ingestor = Ingestor(store)
        ingestor.load_map(small_map)
        load(ingestor, data)
        ingestor.close()
        frames[engine] = [
            facet_table(store, by=["partner", "region"], period="month").frame,
            source_facets(store, by=["touchpoint", "agent"], period="week", measure="gap").frame,
            source_facets(store, by=None).frame,
        ]
    for duck, pg in zip(frames["duckdb"], frames["postgres"], strict=True):
        pd.testing.assert_frame_equal(duck, pg, check_exact=False, rtol=1e-12, atol=1e-12)
