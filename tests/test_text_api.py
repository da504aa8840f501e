"""``/api/v1/text/…`` and the CLI: sentiment, intents, sources, themes (list, stats, rename,
merge), comments; scoped by role; on both engines."""

from __future__ import annotations

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from corridor.api.app import create_app
from corridor.auth import accounts
from corridor.cli import app as cli_app
from corridor.ingest.pipeline import Ingestor
from corridor.settings import Settings
from corridor.store import Store
from corridor.text.jobs import discover_themes
from test_text_themes import planted

TPS = ["checkout", "home_delivery", "support_call"]
SOURCES = ["survey", "review", "social", "survey"]


@pytest.fixture
def voiced(ingestor: Ingestor, store: Store) -> Store:
    data = planted(40, seed=9)
    n = len(data)
    ingestor.ingest(
        "interactions",
        pa.table(
            {
                "interaction_id": [f"i{i}" for i in range(n)],
                "person_id": [f"p{i % 7}" for i in range(n)],
                "occurred_at": [f"2025-0{1 + i % 3}-1{i % 9}T12:00:00Z" for i in range(n)],
                "touchpoint": [TPS[i % 3] for i in range(n)],
                "channel": [["web", "partner", "voice"][i % 3] for i in range(n)],
                "partner_id": [
                    ("ups" if i % 2 else "dhl") if i % 3 == 1 else None for i in range(n)
                ],
            }
        ),
    )  # fmt: skip
    ingestor.ingest(
        "feedback",
        pa.table(
            {
                "feedback_id": [f"f{i:03d}" for i in range(n)],
                "interaction_id": [f"i{i}" for i in range(n)],
                "occurred_at": [f"2025-0{1 + i % 3}-1{i % 9}T13:00:00Z" for i in range(n)],
                "source": [SOURCES[i % 4] for i in range(n)],
                "text": [t for _, t in data],
            }
        ),
    )
    discover_themes(store, k=3)
    return store


@pytest.fixture
def client(voiced: Store) -> TestClient:
    return TestClient(create_app(Settings(auth="off"), store=voiced))


def test_tables_answer_with_n_and_intervals(client: TestClient, voiced: Store) -> None:
    n = voiced.count("text_analysis")
    r = client.get("/api/v1/text/sentiment")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["n"] == n and body["confidence"] == 0.95
    assert {row["touchpoint"] for row in body["rows"]} == set(TPS)
    row = body["rows"][0]
    assert row["mean_sentiment_low"] <= row["mean_sentiment"] <= row["mean_sentiment_high"]
    r = client.get("/api/v1/text/intents", params={"by": "partner"})
    assert r.status_code == 200 and "share_complaint_low" in r.json()["rows"][0]
    r = client.get("/api/v1/text/sources", params={"by": "touchpoint"})
    assert r.status_code == 200 and "negativity_skew" in r.json()["rows"][0]
    r = client.get("/api/v1/text/themes/stats", params={"by": "department", "period": "month"})
    assert r.status_code == 200 and "delta_share" in r.json()["rows"][0]


def test_bad_parameters_are_422_with_what_is_allowed(client: TestClient) -> None:
    r = client.get("/api/v1/text/sentiment", params={"by": "colour"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_query" and "allowed" in r.text
    r = client.get("/api/v1/text/sources", params={"by": "source"})
    assert r.status_code == 422 and "leave 'source' out" in r.text
    r = client.get("/api/v1/text/comments", params={"limit": "lots"})
    assert r.status_code == 422 and "whole number" in r.text
    r = client.get("/api/v1/text/themes", params={"colour": "red"})
    assert r.status_code == 422


def test_themes_rename_merge_and_comments(client: TestClient, voiced: Store) -> None:
    themes = client.get("/api/v1/text/themes").json()["themes"]
    assert len(themes) == 3
    assert sum(t["n"] for t in themes) == voiced.count("text_analysis")
    first, second, third = (t["theme_id"] for t in themes)
    r = client.patch(f"/api/v1/text/themes/{first}", json={"label": "Parcels"})
    assert r.status_code == 200 and r.json()["label"] == "Parcels" and r.json()["renamed"]
    r = client.post("/api/v1/text/themes/merge", json={"themes": [third], "into": second})
    assert r.status_code == 200
    after = client.get("/api/v1/text/themes").json()["themes"]
    by_id = {t["theme_id"]: t for t in after}
    assert by_id[first]["label"] == "Parcels"
    assert by_id[third]["merged_into"] == second
    assert by_id[second]["n"] == next(t["n"] for t in themes if t["theme_id"] == second) + next(
        t["n"] for t in themes if t["theme_id"] == third
    )
    r = client.patch("/api/v1/text/themes/th_nope", json={"label": "x"})
    assert r.status_code == 422 and "no theme" in r.text
    r = client.get("/api/v1/text/comments", params={"touchpoint": "checkout", "limit": 5})
    comments = r.json()["comments"]
    assert len(comments) == 5 and {c["touchpoint"] for c in comments} == {"checkout"}
    when = [c["occurred_at"] for c in comments]
    assert when == sorted(when, reverse=True)


def test_scope_narrows_and_writes_need_an_analyst(voiced: Store) -> None:
    accounts.add_user(voiced, "head", "pw-12345678", "department_head", department="logistics")
    accounts.add_user(voiced, "pm", "pw-12345678", "partner_manager", partner="ups")
    accounts.add_user(voiced, "aggie", "pw-12345678", "agent")
    client = TestClient(create_app(Settings(), store=voiced))

    def h(user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {accounts.create_key(voiced, user, 't')[1]}"}

    assert client.get("/api/v1/text/sentiment").status_code == 401
    assert client.get("/api/v1/text/sentiment", headers=h("aggie")).status_code == 403
    rows = client.get("/api/v1/text/sentiment", headers=h("head")).json()["rows"]
    assert {r["touchpoint"] for r in rows} == {"home_delivery"}  # logistics only
    r = client.get("/api/v1/text/comments", params={"partner": "dhl"}, headers=h("pm"))
    assert r.status_code == 403
    comments = client.get("/api/v1/text/comments", headers=h("pm")).json()["comments"]
    assert comments and all(c["touchpoint"] == "home_delivery" for c in comments)
    theme = client.get("/api/v1/text/themes", headers=h("head")).json()["themes"][0]
    r = client.patch(
        f"/api/v1/text/themes/{theme['theme_id']}", json={"label": "x"}, headers=h("head")
    )
    assert r.status_code == 403


def test_cli_text_and_themes(voiced: Store, store_url: str) -> None:
    runner = CliRunner()
    for args in (
        ["text", "analyze"],
        ["text", "sentiment", "--by", "touchpoint"],
        ["text", "intents", "--format", "json"],
        ["text", "sources", "--format", "csv"],
        ["text", "comments", "--limit", "3"],
        ["themes", "list"],
        ["themes", "show", "--by", "touchpoint"],
    ):
        r = runner.invoke(cli_app, [*args, "--store", store_url])
        assert r.exit_code == 0, (args, r.output)
    assert "analysed 0 text(s)" in runner.invoke(
        cli_app, ["text", "analyze", "--store", store_url]
    ).output.replace("\n", " ")
    tid = voiced.query("SELECT theme_id FROM text_themes WHERE retired_at IS NULL LIMIT 1")[0][0]
    r = runner.invoke(cli_app, ["themes", "rename", tid, "Billing woes", "--store", store_url])
    assert r.exit_code == 0 and "Billing woes" in r.output
    assert voiced.query("SELECT label FROM text_themes WHERE theme_id = ?", (tid,)) == [
        ("Billing woes",)
    ]
