"""The forecast analysis (issue 16.1–16.2) on both engines: series read from the rollup equal
those of the base tables, a planted trend is continued and a flat touch point's true mean is
inside its interval, a backtested forecast's intervals are calibrated and never narrower than the
model's, volumes are counted as pandas counts them, the unfinished period is left
out, every measure answers with its backtest, and the declaration refuses what it cannot do."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from corridor.analytics.anticipation.forecasts import forecast_table
from corridor.analytics.core import registry
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.feedback import rollup

MONTHS = 24
NOW = datetime(2027, 1, 15, tzinfo=UTC)  # inside the month after the data: all months complete


def _company(seed: int = 11) -> dict[str, pa.Table]:
    """Two years of monthly feedback at two touch points: checkout's gap falls 0.06 a month
    (from +0.5), support_call's stays at −1.0; ten to forty answers a month, each ± 1.5."""
    rng = np.random.default_rng(seed)
    ix, fb = [], []
    for m in range(MONTHS):
        year, month = 2025 + m // 12, m % 12 + 1
        for tp, mean in (("checkout", 0.5 - 0.06 * m), ("support_call", -1.0)):
            for j in range(int(rng.integers(10, 40))):
                iid = f"{tp}-{m}-{j}"
                at = datetime(year, month, int(rng.integers(1, 28)), 12, tzinfo=UTC)
                channel = "web" if tp == "checkout" else "voice"
                ix.append({"interaction_id": iid, "person_id": f"p{j % 25}", "occurred_at": at,
                           "touchpoint": tp, "channel": channel})  # fmt: skip
                if j % 3 == 2:
                    continue  # not every interaction is rated
                expectation = float(rng.integers(5, 9))
                experience = float(np.clip(round(expectation + mean + rng.normal(0, 1.5)), 0, 10))
                nps = float(rng.integers(0, 11))
                fb.append({"feedback_id": f"f-{iid}", "person_id": f"p{j % 25}",
                           "occurred_at": at, "interaction_id": iid, "touchpoint": tp,
                           "source": "survey", "expectation": expectation,
                           "experience": experience, "nps": nps})  # fmt: skip
    people = [{"person_id": f"p{i}", "kind": "customer", "segment": "a" if i % 2 else "b",
               "region": "north"} for i in range(25)]  # fmt: skip
    return {
        "people": pa.Table.from_pylist(people),
        "interactions": pa.Table.from_pylist(ix),
        "feedback": pa.Table.from_pylist(fb),
    }


@pytest.fixture
def company(ingestor):
    data = _company()
    for kind in ("people", "interactions", "feedback"):
        report = ingestor.ingest(kind, data[kind])
        assert report.rejected == 0, report.as_dict(max_errors=3)
    ingestor.refresh_rollup()
    return ingestor.store, data


def _row(result, touchpoint: str, step: int = 1) -> pd.Series:
    f = result.frame
    return f[(f["touchpoint"] == touchpoint) & (f["step"] == step)].iloc[0]


def test_the_gap_forecast_continues_a_planted_trend_on_both_engines(company):
    store, _ = company
    assert rollup.is_current(store)
    r = forecast_table(store, horizon=3, now=NOW)
    assert list(r.frame["touchpoint"].unique()) == ["checkout", "support_call"]
    assert r.frame.groupby("touchpoint").size().tolist() == [3, 3]
    assert r.frame["period_label"].tolist()[:3] == ["2027-01", "2027-02", "2027-03"]
    falling, flat = _row(r, "checkout"), _row(r, "support_call")
    assert falling["n_periods"] == MONTHS and falling["last_period"] == "2026-12"
    truth_next = 0.5 - 0.06 * MONTHS  # experience is rounded, so only roughly this
    assert falling["low_95"] < truth_next < falling["high_95"]
    assert falling["forecast"] < 0.5 - 0.06 * (MONTHS - 6)  # below where it was half a year ago
    assert flat["low_80"] < -1.0 < flat["high_80"]
    for row in (falling, flat):
        assert row["low_95"] < row["low_80"] < row["forecast"] < row["high_80"] < row["high_95"]
        assert row["backtest_n"] > 0 and row["mase"] > 0
        assert 0 <= row["coverage_80"] <= row["coverage_95"] <= 1
    widths = r.frame[r.frame["touchpoint"] == "checkout"].eval("high_95 - low_95").to_numpy()
    assert np.all(np.diff(widths) >= 0)
    pooled = r.extra["backtest"]
    assert pooled["groups"] == 2 and pooled["points"] > 0 and pooled["mase"] > 0
    assert r.n == int(r.frame.drop_duplicates("touchpoint")["n"].sum())


def test_a_backtested_forecast_is_calibrated_and_never_narrower(company):
    """With a backtest, the intervals are calibrated by each group's out-of-sample errors
    (docs/anticipation.md, "The method" 5): the same point forecasts, intervals at least as
    wide as the model's own, which ``origins=0`` (no backtest, one fit) gives."""
    store, _ = company
    calibrated = forecast_table(store, horizon=3, now=NOW).frame
    model = forecast_table(store, horizon=3, origins=0, now=NOW).frame
    np.testing.assert_allclose(calibrated["forecast"], model["forecast"], rtol=1e-12)
    for lv in (80, 95):
        assert (calibrated[f"low_{lv}"] <= model[f"low_{lv}"] + 1e-12).all()
        assert (calibrated[f"high_{lv}"] >= model[f"high_{lv}"] - 1e-12).all()
    wider = calibrated["high_80"] - calibrated["low_80"] > model["high_80"] - model["low_80"] + 1e-9
    # checkout's falling gap: its out-of-sample errors outgrow the model's band; the flat
    # support_call's do not, and its intervals stay the model's
    assert wider[calibrated["touchpoint"] == "checkout"].all()
    assert not wider[calibrated["touchpoint"] == "support_call"].any()


def test_the_rollup_and_the_base_tables_give_the_same_forecasts(company):
    store, _ = company
    base = {n: store.table(n) for n in ("feedback", "interactions", "people", "touchpoints")}
    for measure in ("gap", "nps"):
        a = forecast_table(store, measure=measure, horizon=2, origins=2, now=NOW).frame
        b = forecast_table(base, measure=measure, horizon=2, origins=2, now=NOW).frame
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9)


def test_volumes_are_counted_as_pandas_counts_them(company):
    store, data = company
    fb = data["feedback"].to_pandas()
    ix = data["interactions"].to_pandas()
    for measure, frame in (("feedback", fb), ("interactions", ix)):
        r = forecast_table(store, measure=measure, horizon=1, origins=0, now=NOW)
        last = frame[frame["occurred_at"] >= pd.Timestamp("2026-12-01", tz="UTC")]
        want = last.groupby("touchpoint").size()
        got = r.frame.set_index("touchpoint")["last_value"]
        assert got.to_dict() == pytest.approx(want.astype(float).to_dict())
        assert (r.frame["low_95"] >= 0).all()
        assert (r.frame["backtest_n"] == 0).all() and np.isnan(r.frame["mase"]).all()
    with pytest.raises(AnalyticsQueryError, match="source"):
        forecast_table(store, measure="interactions", by=["source"], now=NOW)


def test_the_unfinished_period_is_left_out(company):
    store, _ = company
    inside = forecast_table(store, horizon=1, origins=0, now=datetime(2026, 12, 20, tzinfo=UTC))
    assert (inside.frame["last_period"] == "2026-11").all()
    assert (inside.frame["period_label"] == "2026-12").all()
    until = forecast_table(store, horizon=1, origins=0, until="2026-06-10", now=NOW)
    assert (until.frame["last_period"] == "2026-05").all()
    quarters = forecast_table(store, period="quarter", horizon=2, origins=2, now=NOW)
    assert quarters.frame["period_label"].tolist()[:2] == ["2027-Q1", "2027-Q2"]


@pytest.mark.parametrize("measure", ["gap", "nps", "csat", "ces", "feedback", "interactions"])
def test_every_measure_answers_within_its_range(company, measure):
    store, _ = company
    r = forecast_table(store, measure=measure, by=[], horizon=2, origins=3, now=NOW)
    if measure in ("csat", "ces"):  # nobody answered them: nothing to forecast
        assert r.frame.empty and r.n == 0
        return
    assert len(r.frame) == 2 and r.frame["model"].iloc[0] != "none"
    lo, hi = {"gap": (-10, 10), "nps": (-100, 100)}.get(measure, (0, np.inf))
    assert (r.frame["low_95"] >= lo).all() and (r.frame["high_95"] <= hi).all()
    assert r.extra["measure"] == measure and r.extra["season"] == 12


def test_the_declaration_reads_and_refuses_parameters(company):
    store, _ = company
    a = registry.get("forecast")
    kwargs = a.parse({"measure": ["nps"], "horizon": ["2"], "by": ["segment"], "period": ["week"]})
    assert kwargs == {"measure": "nps", "horizon": 2, "by": ["segment"], "period": "week"}
    result = a(store, **kwargs)
    assert set(result.frame["segment"]) == {"a", "b"}
    assert {c.name for c in a.columns} <= set(result.frame.columns)
    for bad in ({"measure": ["mood"]}, {"horizon": ["0"]}, {"origins": ["99"]},
                {"period": ["year"]}, {"confidence": ["0.9"]}):  # fmt: skip
        with pytest.raises(AnalyticsQueryError):
            a.parse(bad)
    with pytest.raises(AnalyticsQueryError, match="period"):
        forecast_table(store, period=None)
    empty = forecast_table(store, filters={"touchpoint": ["ad_click"]}, now=NOW)
    assert empty.frame.empty and list(empty.frame.columns)[:3] == ["touchpoint", "period",
                                                                   "period_label"]  # fmt: skip
