"""A small deterministic data set for the analytics tests, and its plain-pandas reading.

The gap and metric tests ingest :func:`dataset` through the real :class:`Ingestor` on both
engines and compare what the analytics compute against :func:`facts`, which joins the same rows
with pandas following the rules documented in :mod:`corridor.analytics.core.dimensions`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa

from corridor.ingest.pipeline import Ingestor

TOUCHPOINTS = {  # key: (stage, department, channels) as in conftest.SMALL_MAP
    "ad_click": ("awareness", "marketing", ("web", "social")),
    "checkout": ("purchase", "ecommerce", ("web", "app")),
    "home_delivery": ("delivery", "logistics", ("partner", "web")),
    "support_call": ("support", "service", ("voice",)),
}
#: a touch point's typical experience relative to expectation: gaps differ by touch point
SHIFT = {"ad_click": 0.5, "checkout": -0.5, "home_delivery": -2.0, "support_call": -1.0}
START = datetime(2025, 1, 1, tzinfo=UTC)
DAYS = 181  # 2025-01-01 .. 2025-06-30


def _ts(values: list[datetime]) -> pa.Array:
    return pa.array(values, pa.timestamp("us", tz="UTC"))


def dataset(seed: int = 20250301) -> dict[str, pa.Table]:
    """People, interactions and feedback: ~40 people, 160 interactions, 320 feedback records
    over the first half of 2025, with missing values in every optional column."""
    rng = np.random.default_rng(seed)
    people_ids = [f"p{i:02d}" for i in range(40)]
    segments = ["consumer", "business", None]
    regions = ["north", "south", "east", None]
    people = pa.table(
        {
            "person_id": people_ids,
            "kind": ["customer"] * 40,
            "segment": [segments[int(i)] for i in rng.integers(0, 3, 40)],
            "region": [regions[int(i)] for i in rng.integers(0, 4, 40)],
        }
    )

    tp_keys = list(TOUCHPOINTS)
    inter: dict[str, list] = {
        k: []
        for k in (
            "interaction_id",
            "person_id",
            "occurred_at",
            "touchpoint",
            "channel",
            "partner_id",
            "agent_id",
        )
    }
    for i in range(160):
        tp = tp_keys[int(rng.integers(0, 4))]
        channels = TOUCHPOINTS[tp][2]
        inter["interaction_id"].append(f"i{i:03d}")
        inter["person_id"].append(people_ids[int(rng.integers(0, 40))])
        inter["occurred_at"].append(
            START + timedelta(days=int(rng.integers(0, DAYS)), minutes=int(rng.integers(0, 1440)))
        )
        inter["touchpoint"].append(tp)
        inter["channel"].append(channels[int(rng.integers(0, len(channels)))])
        inter["partner_id"].append(
            ["dhl", "ups", None][int(rng.integers(0, 3))] if tp == "home_delivery" else None
        )
        inter["agent_id"].append(
            ["a1", "a2", "a3"][int(rng.integers(0, 3))] if tp == "support_call" else None
        )
    interactions = pa.table({**inter, "occurred_at": _ts(inter["occurred_at"])})

    fb: dict[str, list] = {
        k: []
        for k in (
            "feedback_id",
            "person_id",
            "occurred_at",
            "touchpoint",
            "interaction_id",
            "partner_id",
            "source",
            "expectation",
            "experience",
            "nps",
            "csat",
            "ces",
        )
    }

    def maybe(value: object, p_missing: float) -> object:
        return None if rng.random() < p_missing else value

    for k in range(320):
        kind = rng.random()
        if kind < 0.65:  # about an interaction; touch point given or left to be inferred
            j = int(rng.integers(0, 160))
            tp = inter["touchpoint"][j]
            person = inter["person_id"][j]
            at = inter["occurred_at"][j] + timedelta(hours=int(rng.integers(0, 72)))
            iid: str | None = inter["interaction_id"][j]
            own_tp = tp if rng.random() < 0.5 else None
            partner = "fedex" if (tp == "home_delivery" and rng.random() < 0.2) else None
        elif kind < 0.9:  # a survey about a touch point, no interaction
            tp = tp_keys[int(rng.integers(0, 4))]
            person = people_ids[int(rng.integers(0, 40))]
            at = START + timedelta(
                days=int(rng.integers(0, DAYS)), seconds=int(rng.integers(0, 86400))
            )
            iid = "i999" if rng.random() < 0.1 else None  # an interaction never received
            own_tp = tp
            partner = ["dhl", "ups"][int(rng.integers(0, 2))] if tp == "home_delivery" else None
        else:  # an anonymous review, sometimes without a touch point
            tp = tp_keys[int(rng.integers(0, 4))]
            person = None
            at = START + timedelta(days=int(rng.integers(0, DAYS)), hours=int(rng.integers(0, 24)))
            iid = None
            own_tp = tp if rng.random() < 0.6 else None
            partner = None
        expectation = float(rng.integers(3, 11))
        if rng.random() < 0.15:
            expectation -= 0.5
        experience = float(np.clip(round(expectation + SHIFT[tp] + rng.normal(0, 2)), 0, 10))
        fb["feedback_id"].append(f"f{k:03d}")
        fb["person_id"].append(person)
        fb["occurred_at"].append(at)
        fb["touchpoint"].append(own_tp)
        fb["interaction_id"].append(iid)
        fb["partner_id"].append(partner)
        fb["source"].append(["survey", "survey", "review", "social"][int(rng.integers(0, 4))])
        fb["expectation"].append(maybe(expectation, 0.1))
        fb["experience"].append(maybe(experience, 0.1))
        fb["nps"].append(maybe(int(rng.integers(0, 11)), 0.2))
        fb["csat"].append(maybe(int(rng.integers(1, 6)), 0.3))
        fb["ces"].append(maybe(int(rng.integers(1, 8)), 0.3))
    feedback = pa.table(
        {
            **fb,
            "occurred_at": _ts(fb["occurred_at"]),
            "expectation": pa.array(fb["expectation"], pa.float64()),
            "experience": pa.array(fb["experience"], pa.float64()),
            "nps": pa.array(fb["nps"], pa.int64()),
            "csat": pa.array(fb["csat"], pa.int64()),
            "ces": pa.array(fb["ces"], pa.int64()),
        }
    )
    return {"people": people, "interactions": interactions, "feedback": feedback}


def load(ingestor: Ingestor, data: dict[str, pa.Table]) -> None:
    """Ingest people, then interactions, then feedback; every record must be accepted."""
    for kind in ("people", "interactions", "feedback"):
        report = ingestor.ingest(kind, data[kind])
        assert report.rejected == 0, report.as_dict(max_errors=5)
        assert report.inserted == data[kind].num_rows


def facts(data: dict[str, pa.Table]) -> pd.DataFrame:
    """One row per feedback record with every dimension, joined in plain pandas."""
    fb = data["feedback"].to_pandas()
    it = data["interactions"].to_pandas()[
        ["interaction_id", "touchpoint", "channel", "partner_id", "agent_id"]
    ]
    it = it.rename(columns={c: f"i_{c}" for c in it.columns})
    df = fb.merge(it, left_on="interaction_id", right_on="i_interaction_id", how="left")
    df["touchpoint"] = df["touchpoint"].where(df["touchpoint"].notna(), df["i_touchpoint"])
    df["partner"] = df["partner_id"].where(df["partner_id"].notna(), df["i_partner_id"])
    df["channel"] = df["i_channel"]
    df["agent"] = df["i_agent_id"]
    df["stage"] = df["touchpoint"].map(lambda k: TOUCHPOINTS[k][0] if isinstance(k, str) else None)
    df["department"] = df["touchpoint"].map(
        lambda k: TOUCHPOINTS[k][1] if isinstance(k, str) else None
    )
    pe = data["people"].to_pandas()[["person_id", "segment", "region"]]
    df = df.merge(pe, on="person_id", how="left")
    assert len(df) == data["feedback"].num_rows
    df["occurred_at"] = pd.to_datetime(df["occurred_at"], utc=True)
    for c in ("expectation", "experience", "nps", "csat", "ces"):
        df[c] = df[c].astype(float)
    for c in ("touchpoint", "stage", "department", "channel", "partner", "agent", "segment"):
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    df["region"] = df["region"].astype(object).where(df["region"].notna(), None)
    return df


def test_dataset_is_deterministic_and_loads_cleanly(ingestor):
    data = dataset()
    assert dataset()["feedback"].equals(data["feedback"])
    load(ingestor, data)
    f = facts(data)
    # the data exercises what the analytics must handle
    assert f["touchpoint"].isna().any()  # a review about no touch point
    assert (f["interaction_id"].notna() & f["channel"].isna()).any()  # dangling interaction
    assert f["person_id"].isna().any() and f["segment"].isna().any()
    assert f["expectation"].isna().any() and f["experience"].isna().any()
    assert (f["expectation"] % 1 != 0).any()  # half points
    assert f["partner"].nunique() == 3 and f["agent"].nunique() == 3
    assert ingestor.store.count("feedback") == 320


# -- plain-pandas helpers shared by the gap and metric tests -------------------------------------

FREQ = {"day": "D", "week": "W-SUN", "month": "M", "quarter": "Q"}


def bucket(occurred_at: pd.Series, period: str) -> pd.Series:
    """Calendar periods in UTC as pandas Periods (``W-SUN``: weeks Monday to Sunday)."""
    return occurred_at.dt.tz_convert("UTC").dt.tz_localize(None).dt.to_period(FREQ[period])


def groups(df: pd.DataFrame, keys: list[str]):
    """``(key tuple, rows)`` per group, missing labels as None, like SQL GROUP BY."""
    if not keys:
        yield (), df
        return
    for key, rows in df.groupby(keys, dropna=False, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        yield tuple(None if pd.isna(k) else k for k in key), rows


def normalise(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Missing labels as None, sorted by the keys (missing last), for comparing frames."""
    out = frame.copy()
    for k in keys:
        if k != "period":
            out[k] = out[k].astype(object).where(out[k].notna(), None)
    if keys:
        out = out.sort_values(keys, na_position="last", kind="mergesort")
    return out.reset_index(drop=True)


def assert_frames_match(actual: pd.DataFrame, expected: pd.DataFrame, keys: list[str]) -> None:
    """Same groups; every expected numeric column equal to 1e-9 (NaN where NaN)."""
    a, e = normalise(actual, keys), normalise(expected, keys)
    assert len(a) == len(e), (len(a), len(e))
    for k in keys:
        assert a[k].tolist() == e[k].tolist(), k
    for col in e.columns:
        if col in keys:
            continue
        np.testing.assert_allclose(
            a[col].to_numpy(dtype=float, na_value=np.nan),
            e[col].to_numpy(dtype=float, na_value=np.nan),
            rtol=1e-9,
            atol=1e-12,
            equal_nan=True,
            err_msg=col,
        )


def stores_on_both_engines(tmp_path, request, small_map) -> dict[str, object]:
    """The data set loaded into a DuckDB file and a PostgreSQL database, for tests that compare
    the two engines' answers directly (needs CORRIDOR_TEST_POSTGRES, like every PostgreSQL
    test; the stores are closed when the test ends)."""
    from conftest import make_store_url
    from corridor.store import open_store

    data = dataset()
    out = {}
    for engine in ("duckdb", "postgres"):
        store = open_store(make_store_url(engine, tmp_path, request))
        request.addfinalizer(store.close)
        ingestor = Ingestor(store)
        ingestor.load_map(small_map)
        load(ingestor, data)
        ingestor.close()
        out[engine] = store
    return out
