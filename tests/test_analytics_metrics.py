"""NPS, CSAT and CES on both engines, and two-slice comparisons, against a pandas reading."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
)

from corridor.analytics import (
    AnalyticsQueryError,
    ComparisonResult,
    MetricResult,
    Slice,
    compare,
    metric_stats,
    metric_table,
    summarise_metrics,
)
from corridor.analytics.feedback.metrics import METRIC_SUMS
from test_analytics_data import (
    assert_frames_match,
    bucket,
    dataset,
    facts,
    groups,
    load,
    stores_on_both_engines,
)

CASES = [
    ([], None),
    (["touchpoint"], None),
    (["stage", "region"], None),
    (["channel", "segment"], None),
    (["partner"], "quarter"),
    (["agent", "department"], "month"),
    (["source"], "week"),
]
Z95 = sp.norm.ppf(0.975)


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _nps_by_hand(x: np.ndarray) -> tuple[float, float]:
    """NPS and its SE in points from raw 0–10 answers (Reichheld 2003; SE of p − d)."""
    if len(x) == 0:
        return np.nan, np.nan
    p, d = np.mean(x >= 9), np.mean(x <= 6)
    return 100 * (p - d), 100 * np.sqrt((p + d - (p - d) ** 2) / len(x))


def reference(df: pd.DataFrame, by: list[str], period: str | None) -> pd.DataFrame:
    """The metric table from raw rows with pandas, scipy and statsmodels only."""
    answered = df[df["nps"].notna() | df["csat"].notna() | df["ces"].notna()].copy()
    keys = list(by)
    if period:
        answered["_p"] = bucket(answered["occurred_at"], period)
        keys.append("_p")
    cells = {key: rows for key, rows in groups(answered, keys)}
    out = []
    for key, rows in cells.items():
        nps, csat, ces = (rows[c].dropna().to_numpy() for c in ("nps", "csat", "ces"))
        rec = dict(zip(by, key, strict=False))
        if period:
            rec["period"] = key[-1].start_time.tz_localize("UTC")
        score, se = _nps_by_hand(nps)
        rec.update(
            n=len(rows),
            nps_n=len(nps),
            promoters=int((nps >= 9).sum()),
            passives=int(((nps >= 7) & (nps <= 8)).sum()),
            detractors=int((nps <= 6).sum()),
            nps=score,
            nps_se=se,
            nps_low=max(score - Z95 * se, -100.0),
            nps_high=min(score + Z95 * se, 100.0),
            csat_n=len(csat),
            csat_top2=int((csat >= 4).sum()),
            ces_n=len(ces),
            ces_mean=ces.mean() if len(ces) else np.nan,
            ces_sd=np.std(ces, ddof=1) if len(ces) > 1 else np.nan,
            ces_easy=int((ces >= 5).sum()),
        )
        for name, hits, n in (
            ("csat_top2", rec["csat_top2"], len(csat)),
            ("ces_easy", rec["ces_easy"], len(ces)),
        ):
            rec[f"{name}_share"] = hits / n if n else np.nan
            low, high = proportion_confint(hits, n, method="wilson") if n else (np.nan, np.nan)
            rec[f"{name}_share_low"], rec[f"{name}_share_high"] = low, high
        if len(ces) > 1 and np.ptp(ces) > 0:
            rec["ces_mean_low"], rec["ces_mean_high"] = sp.t.interval(
                0.95, len(ces) - 1, loc=ces.mean(), scale=sp.sem(ces)
            )
        elif len(ces) > 1:  # scipy refuses scale 0; the t interval has zero width
            rec["ces_mean_low"] = rec["ces_mean_high"] = ces.mean()
        if period:
            prev = cells.get((*key[:-1], key[-1] - 1))
            if prev is not None:
                pn, pc, pe = (prev[c].dropna().to_numpy() for c in ("nps", "csat", "ces"))
                p_score, p_se = _nps_by_hand(pn)
                rec["delta_nps"] = score - p_score
                z = (score - p_score) / np.hypot(se, p_se) if np.hypot(se, p_se) > 0 else np.nan
                rec["p_value_nps"] = 2 * sp.norm.sf(abs(z))
                for name, now, before, cut in (
                    ("csat_top2_share", csat, pc, 4),
                    ("ces_easy_share", ces, pe, 5),
                ):
                    if len(now) and len(before):
                        rec[f"delta_{name}"] = np.mean(now >= cut) - np.mean(before >= cut)
                        rec[f"p_value_{name}"] = _quiet(
                            proportions_ztest,
                            [(now >= cut).sum(), (before >= cut).sum()],
                            [len(now), len(before)],
                        )[1]
                if len(ces) and len(pe):
                    rec["delta_ces_mean"] = ces.mean() - pe.mean()
                if len(ces) > 1 and len(pe) > 1:
                    rec["p_value_ces_mean"] = _quiet(sp.ttest_ind, ces, pe, equal_var=False).pvalue
        out.append(rec)
    return pd.DataFrame(out)


@pytest.fixture
def loaded(ingestor):
    data = dataset()
    load(ingestor, data)
    return ingestor.store, facts(data)


def test_metric_table_equals_pandas_reference(loaded):
    store, df = loaded
    for by, period in CASES:
        result = metric_table(store, by=by, period=period)
        keys = [*by, *(["period"] if period else [])]
        expected = reference(df, by, period)
        assert_frames_match(result.frame, expected, keys)
        assert result.n == int(expected["n"].sum())
        if period:
            assert result.frame["p_value_nps"].notna().any()


def test_result_columns(loaded):
    store, _ = loaded
    r = metric_table(store, by="touchpoint", period="quarter")
    assert isinstance(r, MetricResult)
    assert list(r.frame.columns) == [
        "touchpoint",
        "period",
        "period_label",
        "n",
        "nps_n",
        "promoters",
        "passives",
        "detractors",
        "nps",
        "nps_se",
        "nps_low",
        "nps_high",
        "csat_n",
        "csat_top2",
        "csat_top2_share",
        "csat_top2_share_low",
        "csat_top2_share_high",
        "ces_n",
        "ces_mean",
        "ces_sd",
        "ces_mean_low",
        "ces_mean_high",
        "ces_easy",
        "ces_easy_share",
        "ces_easy_share_low",
        "ces_easy_share_high",
        "delta_nps",
        "p_value_nps",
        "delta_csat_top2_share",
        "p_value_csat_top2_share",
        "delta_ces_mean",
        "p_value_ces_mean",
        "delta_ces_easy_share",
        "p_value_ces_easy_share",
    ]
    f = r.frame
    assert (f["promoters"] + f["passives"] + f["detractors"] == f["nps_n"]).all()
    assert ((f["nps_low"] >= -100) & (f["nps_high"] <= 100)).all()
    assert set(f["period_label"]) <= {"2025-Q1", "2025-Q2", "2025-Q3"}
    assert "Wilson" in r.method and r.to_arrow().num_rows == len(f)


def test_filters_time_range_and_errors(loaded):
    store, df = loaded
    r = metric_table(
        store,
        by="channel",
        filters={"touchpoint": ["checkout", "home_delivery"]},
        since="2025-04-01",
    )
    sel = df[
        df["touchpoint"].isin(["checkout", "home_delivery"])
        & (df["occurred_at"] >= pd.Timestamp("2025-04-01", tz="UTC"))
    ]
    assert_frames_match(r.frame, reference(sel, ["channel"], None), ["channel"])
    with pytest.raises(AnalyticsQueryError, match="unknown grouping 'nps'; allowed: touchpoint"):
        metric_table(store, by="nps")
    with pytest.raises(AnalyticsQueryError, match="unknown period 'hour'"):
        metric_table(store, period="hour")


def test_daily_sufficient_statistics_roll_up(loaded):
    store, _ = loaded
    fine = metric_stats(
        store, by=["touchpoint", "channel", "partner", "segment", "region"], period="day"
    )
    assert list(fine.columns)[-len(METRIC_SUMS) :] == list(METRIC_SUMS)
    fine["period"] = (
        fine["period"].dt.tz_localize(None).dt.to_period("Q").dt.start_time.dt.tz_localize("UTC")
    )
    quarterly = fine.groupby(["channel", "period"], dropna=False, as_index=False)[
        list(METRIC_SUMS)
    ].sum()
    rolled = summarise_metrics(quarterly, by=["channel"], period="quarter")
    direct = metric_table(store, by=["channel"], period="quarter").frame
    assert_frames_match(
        rolled.drop(columns="period_label"),
        direct.drop(columns="period_label"),
        ["channel", "period"],
    )


def test_same_numbers_on_both_engines(tmp_path, request, small_map):
    stores = stores_on_both_engines(tmp_path, request, small_map)
    for by, period in CASES:
        duck = metric_table(stores["duckdb"], by=by, period=period).frame
        pg = metric_table(stores["postgres"], by=by, period=period).frame
        pd.testing.assert_frame_equal(duck, pg, check_exact=False, rtol=1e-12, atol=1e-12)
    a, b = Slice({"channel": ["web"]}), Slice({"channel": ["voice"]}, since="2025-02-01")
    pd.testing.assert_frame_equal(
        compare(stores["duckdb"], a, b).frame,
        compare(stores["postgres"], a, b).frame,
        check_exact=False,
        rtol=1e-12,
        atol=1e-12,
    )


# -- two slices ---------------------------------------------------------------------------------


def test_compare_two_groups_against_scipy_and_statsmodels(loaded):
    """b − a for every measure. References: scipy ttest_ind(equal_var=False) and its
    confidence_interval, statsmodels proportions_ztest and confint_proportions_2indep
    (method="newcomb"), and the NPS difference by hand."""
    store, df = loaded
    r = compare(
        store,
        Slice({"channel": ["web"]}, label="web"),
        Slice({"channel": ["voice"]}, label="voice"),
    )
    assert isinstance(r, ComparisonResult)
    f = r.frame.set_index("measure")
    assert list(f.index) == [
        "mean_expectation",
        "mean_experience",
        "mean_gap",
        "share_below",
        "nps",
        "csat_top2_share",
        "ces_mean",
        "ces_easy_share",
    ]
    web, voice = df[df["channel"] == "web"], df[df["channel"] == "voice"]
    assert r.n == len(web) + len(voice)
    assert r.query["a"]["label"] == "web" and r.query["b"]["filters"] == {"channel": ["voice"]}

    def rated(rows: pd.DataFrame) -> pd.DataFrame:
        return rows[rows["expectation"].notna() & rows["experience"].notna()]

    ra, rb = rated(web), rated(voice)
    for measure, xa, xb in (
        ("mean_expectation", ra["expectation"], rb["expectation"]),
        ("mean_gap", ra["experience"] - ra["expectation"], rb["experience"] - rb["expectation"]),
        ("ces_mean", web["ces"].dropna(), voice["ces"].dropna()),
    ):
        ref = sp.ttest_ind(xb, xa, equal_var=False)
        ci = ref.confidence_interval(0.95)
        row = f.loc[measure]
        assert (row["n_a"], row["n_b"]) == (len(xa), len(xb))
        assert row["delta"] == pytest.approx(xb.mean() - xa.mean())
        assert (row["statistic"], row["p_value"], row["df"]) == pytest.approx(
            (ref.statistic, ref.pvalue, ref.df)
        )
        assert (row["delta_low"], row["delta_high"]) == pytest.approx((ci.low, ci.high))
        assert row["test"] == "welch_t"
    for measure, ha, na_, hb, nb in (
        (
            "share_below",
            (ra["experience"] < ra["expectation"]).sum(),
            len(ra),
            (rb["experience"] < rb["expectation"]).sum(),
            len(rb),
        ),
        (
            "csat_top2_share",
            (web["csat"] >= 4).sum(),
            web["csat"].notna().sum(),
            (voice["csat"] >= 4).sum(),
            voice["csat"].notna().sum(),
        ),
    ):
        row = f.loc[measure]
        z, p = proportions_ztest([hb, ha], [nb, na_])
        low, high = confint_proportions_2indep(hb, nb, ha, na_, method="newcomb", compare="diff")
        assert (row["estimate_a"], row["estimate_b"]) == pytest.approx((ha / na_, hb / nb))
        assert (row["statistic"], row["p_value"]) == pytest.approx((z, p))
        assert (row["delta_low"], row["delta_high"]) == pytest.approx((low, high))
    na_score, na_se = _nps_by_hand(web["nps"].dropna().to_numpy())
    nb_score, nb_se = _nps_by_hand(voice["nps"].dropna().to_numpy())
    row = f.loc["nps"]
    se = np.hypot(na_se, nb_se)
    assert (row["estimate_a"], row["estimate_b"], row["delta"]) == pytest.approx(
        (na_score, nb_score, nb_score - na_score)
    )
    assert row["p_value"] == pytest.approx(2 * sp.norm.sf(abs(nb_score - na_score) / se))
    assert (row["delta_low"], row["delta_high"]) == pytest.approx(
        (nb_score - na_score - Z95 * se, nb_score - na_score + Z95 * se)
    )


def test_compare_two_periods(loaded):
    """The same group over two quarters: the slices differ only in their time range."""
    store, df = loaded
    q1 = Slice({"touchpoint": ["home_delivery"]}, until="2025-04-01")
    q2 = Slice({"touchpoint": ["home_delivery"]}, since="2025-04-01", until="2025-07-01")
    f = compare(store, q1, q2).frame.set_index("measure")
    hd = df[df["touchpoint"] == "home_delivery"]
    t = pd.Timestamp("2025-04-01", tz="UTC")
    a = hd[hd["occurred_at"] < t]["nps"].dropna()
    b = hd[(hd["occurred_at"] >= t) & (hd["occurred_at"] < pd.Timestamp("2025-07-01", tz="UTC"))][
        "nps"
    ].dropna()
    assert (f.loc["nps", "n_a"], f.loc["nps", "n_b"]) == (len(a), len(b))
    assert f.loc["nps", "delta"] == pytest.approx(
        _nps_by_hand(b.to_numpy())[0] - _nps_by_hand(a.to_numpy())[0]
    )
    with pytest.raises(AnalyticsQueryError, match="unknown filter 'colour'"):
        compare(store, Slice({"colour": ["red"]}), q2)
