"""Analyses over HTTP: the same numbers as the library, and clear 422s for bad queries."""

from __future__ import annotations

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from corridor.analytics import gap_table, metric_table
from corridor.api.app import create_app
from corridor.settings import Settings


@pytest.fixture
def client(ingestor, store):
    n = 60
    ingestor.ingest(
        "people",
        pa.table(
            {
                "person_id": [f"p{i}" for i in range(6)],
                "kind": ["customer"] * 6,
                "region": ["north", "south"] * 3,
            }
        ),
    )
    ingestor.ingest(
        "feedback",
        pa.table(
            {
                "feedback_id": [f"f{i}" for i in range(n)],
                "person_id": [f"p{i % 6}" for i in range(n)],
                "occurred_at": [f"2025-0{1 + i % 3}-1{i % 9}T12:00:00Z" for i in range(n)],
                "touchpoint": ["checkout", "home_delivery", "support_call"] * (n // 3),
                "source": ["survey"] * n,
                "expectation": [7 + (i % 4) for i in range(n)],
                "experience": [(i * 7) % 11 for i in range(n)],
                "nps": [(i * 3) % 11 for i in range(n)],
                "csat": [1 + i % 5 for i in range(n)],
                "ces": [1 + i % 7 for i in range(n)],
            }
        ),
    )
    with TestClient(create_app(Settings(auth="off"), store=store)) as c:
        yield c


def test_gaps_match_the_library(client, store):
    r = client.get("/api/v1/gaps", params={"by": "touchpoint,region", "period": "month"})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = gap_table(store, by=["touchpoint", "region"], period="month")
    assert body["n"] == expected.n == 60
    assert body["confidence"] == 0.95
    assert len(body["rows"]) == len(expected.frame)
    first = expected.to_records()[0]
    assert body["rows"][0]["mean_gap"] == pytest.approx(first["mean_gap"])
    assert body["rows"][0]["mean_gap_low"] == pytest.approx(first["mean_gap_low"])


def test_filters_and_time_range(client, store):
    r = client.get(
        "/api/v1/gaps",
        params={"region": "north", "since": "2025-02-01", "until": "2025-03-01"},
    )
    assert r.status_code == 200, r.text
    expected = gap_table(
        store,
        by=["touchpoint"],
        filters={"region": ["north"]},
        since="2025-02-01",
        until="2025-03-01",
    )
    assert r.json()["n"] == expected.n > 0
    assert {row["touchpoint"] for row in r.json()["rows"]} <= {
        "checkout",
        "home_delivery",
        "support_call",
    }


@pytest.mark.parametrize("metric", ["nps", "csat", "ces"])
def test_metrics_match_the_library(client, store, metric):
    r = client.get(f"/api/v1/metrics/{metric}", params={"by": "touchpoint"})
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    expected = metric_table(store, by=["touchpoint"]).to_records()
    col = {"nps": "nps", "csat": "csat_top2_share", "ces": "ces_mean"}[metric]
    assert [row[col] for row in rows] == pytest.approx([e[col] for e in expected])
    other = {"nps": "ces_mean", "csat": "nps", "ces": "csat_top2_share"}[metric]
    assert other not in rows[0]


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"by": "colour"}, "allowed"),
        ({"period": "fortnight"}, "quarter"),
        ({"flavour": "x"}, "unknown query parameter"),
        ({"confidence": "high"}, "not a number"),
        ({"since": "last tuesday"}, "since"),
    ],
)
def test_bad_queries_get_422_with_allowed_values(client, params, needle):
    r = client.get("/api/v1/gaps", params=params)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_query"
    assert needle in err["message"]
