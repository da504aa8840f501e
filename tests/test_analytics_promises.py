"""Promises on both engines: kept rates and gaps equal a plain pandas/scipy/statsmodels reading
of the same rows, for interaction columns, JSON attributes and feedback fields."""

from __future__ import annotations

import copy
import re
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats as sp
from statsmodels.stats.proportion import proportion_confint

from conftest import SMALL_MAP, make_store_url
from corridor.analytics import AnalyticsQueryError, PromiseResult, promise_stats, promise_table
from corridor.analytics.feedback.promises import PROMISE_GAP_SUMS, PROMISE_SUMS, attribute_value
from corridor.domain.corridor_map import CorridorMap
from corridor.ingest.pipeline import Ingestor
from corridor.store import open_store
from test_analytics_data import TOUCHPOINTS, bucket, dataset, facts, load

PROMISES = {  # touch point -> [(key, metric, target)]
    "ad_click": [("ad-nps", "nps", "== 10"), ("ad-ghost", "clicks", "> 0")],
    "checkout": [("checkout-3min", "duration_minutes", "<= 3"), ("checkout-big", "value", "> 100")],
    "home_delivery": [
        ("delivery-wait", "wait", "< 10"),
        ("delivery-text", "wait_text", "<= 5"),
        ("delivery-on-time", "on_time", ">= 1"),
    ],
    "support_call": [("call-helpful", "experience", ">= 7"), ("call-calm", "emotion", ">= 0")],
}
#: touch points in map order, promises by key within one (the promises table keeps no order)
ORDER = [key for tp in TOUCHPOINTS for key, _, _ in sorted(PROMISES.get(tp, []))]
NUMBER = re.compile(r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$")


def promise_map() -> CorridorMap:
    doc = copy.deepcopy(SMALL_MAP)
    for tp in doc["touchpoints"]:
        tp["promises"] = [
            {"key": k, "metric": m, "target": t, "source": "advertising"}
            for k, m, t in PROMISES.get(tp["key"], [])
        ]
    return CorridorMap.from_dict(doc)


def promise_data(seed: int = 7) -> dict[str, pa.Table]:
    """The analytics data set with durations, values, extra columns kept as JSON attributes
    (a number, a numeric string, a flag) and emotions."""
    data = dataset()
    rng = np.random.default_rng(seed)
    it = data["interactions"]
    n = it.num_rows

    def some(values: list, p_missing: float) -> list:
        return [None if rng.random() < p_missing else v for v in values]

    it = it.append_column(
        "duration_minutes",
        pa.array(some(list(np.round(rng.lognormal(1.0, 0.6, n), 2)), 0.15), pa.float64()),
    )
    it = it.append_column(
        "value", pa.array(some(list(np.round(rng.uniform(10, 300, n), 2)), 0.2), pa.float64())
    )
    tp = it.column("touchpoint").to_pylist()
    delivery = [t == "home_delivery" for t in tp]
    waits = np.round(rng.uniform(2, 16, n), 1)
    it = it.append_column(
        "wait",
        pa.array(
            [
                float(w) if d and rng.random() < 0.85 else None
                for w, d in zip(waits, delivery, strict=True)
            ],
            pa.float64(),
        ),
    )
    texts = [f" {rng.integers(1, 9)}.5 ", "n/a", "3", "", "7e0", None]
    it = it.append_column(
        "wait_text",
        pa.array([texts[int(rng.integers(0, 6))] if d else None for d in delivery], pa.string()),
    )
    it = it.append_column(
        "on_time",
        pa.array(
            [bool(rng.random() < 0.6) if d and rng.random() < 0.9 else None for d in delivery],
            pa.bool_(),
        ),
    )
    data["interactions"] = it
    fb = data["feedback"]
    emotion = some([int(v) for v in rng.integers(-3, 4, fb.num_rows)], 0.3)
    data["feedback"] = fb.append_column("emotion", pa.array(emotion, pa.int64()))
    return data


def _load(ingestor: Ingestor, data: dict[str, pa.Table]) -> None:
    ingestor.load_map(promise_map())
    load(ingestor, data)


@pytest.fixture
def loaded(ingestor):
    data = promise_data()
    _load(ingestor, data)
    return ingestor.store, data


# -- the reference: plain pandas -----------------------------------------------------------------


def _text_number(v: object) -> float:
    return float(v) if isinstance(v, str) and NUMBER.match(v) else np.nan


def interaction_frame(data: dict[str, pa.Table]) -> pd.DataFrame:
    it = data["interactions"].to_pandas()
    pe = data["people"].to_pandas()[["person_id", "segment", "region"]]
    df = it.merge(pe, on="person_id", how="left")
    df["occurred_at"] = pd.to_datetime(df["occurred_at"], utc=True)
    df["channel"] = df["channel"]
    df["partner"] = df["partner_id"]
    df["agent"] = df["agent_id"]
    df["stage"] = df["touchpoint"].map(lambda k: TOUCHPOINTS[k][0])
    df["department"] = df["touchpoint"].map(lambda k: TOUCHPOINTS[k][1])
    df["wait_text"] = df["wait_text"].map(_text_number)
    df["on_time"] = df["on_time"].map(lambda v: np.nan if v is None or pd.isna(v) else float(v))
    df["clicks"] = np.nan
    for c in ("segment", "region", "partner", "agent"):
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df


def feedback_frame(data: dict[str, pa.Table]) -> pd.DataFrame:
    f = facts(data)
    emotion = data["feedback"].to_pandas().set_index("feedback_id")["emotion"]
    f["emotion"] = f["feedback_id"].map(emotion).astype(float)
    f["gap"] = f["experience"] - f["expectation"]
    return f


OPS = {
    "<=": np.less_equal,
    ">=": np.greater_equal,
    "<": np.less,
    ">": np.greater,
    "==": np.equal,
}


def _t(x: np.ndarray) -> tuple[float, float]:
    if len(x) < 2:
        return (np.nan, np.nan)
    if np.ptp(x) == 0:
        return (x.mean(), x.mean())
    return sp.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sp.sem(x))


def reference(data, by: list[str], period: str | None, since=None, filters=None) -> pd.DataFrame:
    inter, fb = interaction_frame(data), feedback_frame(data)
    rated = fb[fb["gap"].notna() & fb["interaction_id"].notna()][["interaction_id", "gap"]]
    keys = [b for b in by if b != "touchpoint"]
    rows = []
    for tp, promises in PROMISES.items():
        for key, metric, target in promises:
            op, thr = target.split()
            on_feedback = metric in ("nps", "experience", "emotion")
            src = fb if on_feedback else inter
            units = src[(src["touchpoint"] == tp) & src[metric].notna()].copy()
            if since is not None:
                units = units[units["occurred_at"] >= pd.Timestamp(since, tz="UTC")]
            for name, values in (filters or {}).items():
                units = units[units[name].isin(values)]
            units["kept"] = OPS[op](units[metric].to_numpy(), float(thr))
            if on_feedback:
                gaps = units[units["gap"].notna()]
            else:
                gaps = units.drop(columns=[c for c in ("gap",) if c in units]).merge(
                    rated, on="interaction_id", how="inner"
                )
            gkeys = list(keys)
            if period:
                units["_p"] = bucket(units["occurred_at"], period)
                gaps["_p"] = bucket(gaps["occurred_at"], period)
                gkeys.append("_p")
            groups = units.groupby(gkeys, dropna=False, sort=False) if gkeys else [((), units)]
            for label, part in groups:
                label = label if isinstance(label, tuple) else (label,)
                label = tuple(None if pd.isna(v) else v for v in label)
                rec = {"promise": key, **dict(zip(keys, label, strict=False))}
                sel = gaps
                for k, v in zip(gkeys, label, strict=True):
                    sel = sel[sel[k].isna()] if v is None else sel[sel[k] == v]
                if period:
                    rec["period"] = label[-1].start_time.tz_localize("UTC")
                x = part[metric].to_numpy(dtype=float)
                n, kept = len(x), int(part["kept"].sum())
                rec["n"], rec["n_kept"] = n, kept
                rec["kept_rate"] = kept / n if n else np.nan
                lo, hi = proportion_confint(kept, n, 0.05, "wilson") if n else (np.nan, np.nan)
                rec["kept_rate_low"], rec["kept_rate_high"] = lo, hi
                rec["mean_value"] = x.mean() if n else np.nan
                rec["mean_value_low"], rec["mean_value_high"] = _t(x)
                g1 = sel.loc[sel["kept"], "gap"].to_numpy(dtype=float)
                g0 = sel.loc[~sel["kept"].astype(bool), "gap"].to_numpy(dtype=float)
                for name, g in (("kept", g1), ("broken", g0)):
                    rec[f"n_gap_{name}"] = len(g)
                    rec[f"mean_gap_{name}"] = g.mean() if len(g) else np.nan
                    rec[f"mean_gap_{name}_low"], rec[f"mean_gap_{name}_high"] = _t(g)
                rec["delta_gap"] = (g1.mean() - g0.mean()) if len(g1) and len(g0) else np.nan
                if len(g1) > 1 and len(g0) > 1:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        t = sp.ttest_ind(g1, g0, equal_var=False)
                    rec["delta_gap_low"], rec["delta_gap_high"] = t.confidence_interval(0.95)
                    rec["p_value_gap"] = t.pvalue
                else:
                    rec.update(delta_gap_low=np.nan, delta_gap_high=np.nan, p_value_gap=np.nan)
                rows.append(rec)
    return pd.DataFrame(rows)


def assert_matches(actual: pd.DataFrame, expected: pd.DataFrame, keys: list[str]) -> None:
    order = {k: i for i, k in enumerate(ORDER)}

    def norm(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        for k in keys:
            if k != "period":
                df[k] = df[k].astype(object).where(df[k].notna(), None)
        df["_o"] = df["promise"].map(order)
        df = df.sort_values(["_o", *keys], na_position="last", kind="mergesort")
        return df.drop(columns="_o").reset_index(drop=True)

    a, e = norm(actual), norm(expected)
    assert a["promise"].tolist() == e["promise"].tolist()
    for k in keys:
        assert a[k].tolist() == e[k].tolist(), k
    for col in e.columns:
        if col in ("promise", *keys):
            continue
        np.testing.assert_allclose(
            a[col].to_numpy(dtype=float, na_value=np.nan),
            e[col].to_numpy(dtype=float, na_value=np.nan),
            rtol=1e-9,
            atol=1e-12,
            equal_nan=True,
            err_msg=col,
        )


CASES = [
    ([], None),
    (["channel"], None),
    (["touchpoint", "region"], None),
    (["stage", "segment"], "month"),
    (["partner", "agent"], None),
    ([], "quarter"),
]


@pytest.mark.parametrize(("by", "period"), CASES)
def test_promise_table_equals_pandas_reference(loaded, by, period):
    store, data = loaded
    r = promise_table(store, by=by, period=period)
    keys = [*(b for b in by if b != "touchpoint"), *(["period"] if period else [])]
    expected = reference(data, by, period)
    assert_matches(r.frame, expected, keys)
    assert r.n == int(expected["n"].sum())
    # the promises appear in the corridor map's order
    seen = list(dict.fromkeys(r.frame["promise"]))
    assert seen == [k for k in ORDER if k in seen]


def test_columns_metadata_and_every_promise_listed(loaded):
    store, _ = loaded
    r = promise_table(store)
    assert isinstance(r, PromiseResult)
    f = r.frame
    assert f["promise"].tolist() == ORDER  # one row each, the unmeasured one too
    assert list(f.columns) == [
        "promise",
        "touchpoint",
        "metric",
        "target",
        "promise_source",
        "measured_on",
        "n",
        "n_kept",
        "kept_rate",
        "kept_rate_low",
        "kept_rate_high",
        "mean_value",
        "mean_value_low",
        "mean_value_high",
        "n_gap_kept",
        "mean_gap_kept",
        "mean_gap_kept_low",
        "mean_gap_kept_high",
        "n_gap_broken",
        "mean_gap_broken",
        "mean_gap_broken_low",
        "mean_gap_broken_high",
        "delta_gap",
        "delta_gap_low",
        "delta_gap_high",
        "p_value_gap",
    ]
    rows = f.set_index("promise")
    assert rows.loc["checkout-3min", "target"] == "<= 3"
    assert rows.loc["checkout-3min", "measured_on"] == "interaction"
    assert rows.loc["delivery-wait", "measured_on"] == "interaction attribute"
    assert rows.loc["call-calm", "measured_on"] == "feedback"
    assert rows.loc["ad-ghost", "n"] == 0 and np.isnan(rows.loc["ad-ghost", "kept_rate"])
    # the attribute kinds are all read: JSON numbers, numeric strings, flags
    for key in ("delivery-wait", "delivery-text", "delivery-on-time"):
        assert rows.loc[key, "n"] > 10 and 0 < rows.loc[key, "kept_rate"] < 1, key
    rec = r.to_records()
    assert rec[0]["promise"] == ORDER[0] and isinstance(rec[0]["n"], int)
    assert r.to_arrow().num_rows == len(ORDER)
    assert r.query["promises"] == ORDER and "Wilson" in r.method and "Welch" in r.method


def test_filters_time_range_and_chosen_promises(loaded):
    store, data = loaded
    filters = {"channel": ["web", "voice"]}
    r = promise_table(store, filters=filters, since="2025-02-01")
    expected = reference(data, [], None, since="2025-02-01", filters=filters)
    assert_matches(r.frame, expected, [])
    one = promise_table(store, promises="call-helpful")
    assert one.frame["promise"].tolist() == ["call-helpful"]
    tp = promise_table(store, filters={"touchpoint": ["checkout"]})
    assert tp.frame["promise"].tolist() == ["checkout-3min", "checkout-big"]
    units, gaps = promise_stats(store, by=["region"], period="month")
    assert list(units.columns) == ["promise", "region", "period", *PROMISE_SUMS]
    assert list(gaps.columns) == ["promise", "region", "period", "kept", *PROMISE_GAP_SUMS]
    assert set(gaps["kept"]) == {0, 1}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"by": ["source"]}, "cannot be grouped or filtered by 'source'"),
        ({"filters": {"source": ["survey"]}}, "cannot be grouped or filtered by 'source'"),
        ({"promises": ["nope"]}, "unknown promise 'nope'; the corridor map has: ad-ghost"),
        ({"by": ["colour"]}, "unknown grouping 'colour'"),
        ({"period": "year"}, "unknown period"),
    ],
)
def test_bad_requests_say_what_is_allowed(loaded, kwargs, match):
    store, _ = loaded
    with pytest.raises(AnalyticsQueryError, match=match):
        promise_table(store, **kwargs)


def test_attribute_values_are_read_alike_on_every_engine(store):
    """JSON numbers, numeric strings (as CSV imports keep them) and flags become numbers;
    anything else, or an absent key, is missing. (Read from the JSON text, without Python UDFs
    on PySpark: see ``test_analytics_portable.py``.)"""
    docs = [
        '{"w": 3}',
        '{"w": -2.5}',
        '{"w": 2.5e1}',
        '{"w": " 4.5 "}',
        '{"w": "1e2"}',
        '{"w": "n/a"}',
        '{"w": ""}',
        '{"w": true}',
        '{"w": false}',
        '{"w": null}',
        '{"w": [1]}',
        '{"v": 1}',
        '{"w": "true"}',
        '{"w": {"a": 1}}',
        '{"w": 1E2}',
        '{"w": "\\t5\\r\\n"}',
        '{"w": "4\\\\5"}',
    ]
    with store.transaction() as tx:
        for i, doc in enumerate(docs):
            cast = "CAST(? AS JSON)" if store.dialect == "duckdb" else "CAST(? AS JSONB)"
            tx.execute(
                "INSERT INTO interactions (interaction_id, person_id, occurred_at, touchpoint, "
                f"channel, attributes) VALUES (?, 'p', ?, 'checkout', 'web', {cast})",
                (f"i{i:02d}", pd.Timestamp("2025-01-01", tz="UTC").to_pydatetime(), doc),
            )
    t = store.table("interactions").order_by("interaction_id")
    got = t.select(v=attribute_value(t.attributes, "w")).to_pyarrow().column("v").to_pylist()
    expected = [3.0, -2.5, 25.0, 4.5, 100.0, None, None, 1.0, 0.0, None, None, None]
    expected += [None, None, 100.0, 5.0, None]  # a string "true" is no flag; "\\t" is blank
    assert got == expected


def test_same_numbers_on_both_engines(tmp_path, request):
    data = promise_data()
    frames = {}
    for engine in ("duckdb", "postgres"):
        store = open_store(make_store_url(engine, tmp_path, request))
        request.addfinalizer(store.close)
        ingestor = Ingestor(store)
        _load(ingestor, data)
        ingestor.close()
        cases = CASES[2:5]  # groupings, periods and missing labels; the rest run per engine
        frames[engine] = [promise_table(store, by=b, period=p).frame for b, p in cases]
    for duck, pg in zip(frames["duckdb"], frames["postgres"], strict=True):
        pd.testing.assert_frame_equal(duck, pg, check_exact=False, rtol=1e-12, atol=1e-12)


def test_a_touch_point_without_promises_gives_an_empty_table(loaded):
    """Regression: filtering to a touch point with no promises used to fail on merging an
    empty (float) key column with the engine's string keys."""
    store, _ = loaded
    result = promise_table(store, filters={"touchpoint": ["no_such_touchpoint"]})
    assert result.frame.empty and result.n == 0
    assert "kept_rate" in result.frame.columns
