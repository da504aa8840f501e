"""Attribution over HTTP and in the terminal: the routes answer what the library computes, refuse
bad queries with 422, and show each role only its rows; the CLI commands run end to end."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from corridor.analytics.attribution.ripple import ripple_table
from corridor.analytics.attribution.scorecards import partner_scorecard
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.api.app import create_app
from corridor.auth import accounts
from corridor.cli import app as cli_app
from corridor.settings import Settings
from test_ripple import attribution_data, load_attribution

ROUTES = (
    "/api/v1/ripple",
    "/api/v1/departments/impact",
    "/api/v1/partners",
    "/api/v1/agents",
    "/api/v1/alignment",
    "/api/v1/alignment/channels",
)


@pytest.fixture
def loaded(ingestor, store):
    load_attribution(ingestor, attribution_data(n=3000))
    return store


def test_routes_answer_like_the_library(loaded):
    with TestClient(create_app(Settings(auth="off"), store=loaded)) as c:
        for path in ROUTES:
            r = c.get(
                path, params={"churn": "false"} if "ripple" in path or "impact" in path else {}
            )
            assert r.status_code == 200, (path, r.text)
            body = r.json()
            assert body["rows"] and body["confidence"] == 0.95 and "method" in body
        r = c.get("/api/v1/ripple", params={"churn": "false", "department": "logistics"})
        lib = ripple_table(loaded, department="logistics", churn=False).to_records()
        assert [row["event_id"] for row in r.json()["rows"]] == ["ops-1"]
        assert r.json()["rows"][0]["effect_gap"] == pytest.approx(lib[0]["effect_gap"])
        r = c.get("/api/v1/partners", params={"region": "north", "min_n": "5"})
        lib = partner_scorecard(loaded, filters={"region": "north"}, min_n=5).to_records()
        assert [x["partner"] for x in r.json()["rows"]] == [x["partner"] for x in lib]
        r = c.get("/api/v1/partners", params={"partner": "fast,slow"})
        assert {x["partner"] for x in r.json()["rows"]} == {None, "fast", "slow"}
        for path, params, word in (
            ("/api/v1/ripple", {"colour": "red"}, "unknown query parameter"),
            ("/api/v1/ripple", {"alpha": "lots"}, "not a number"),
            ("/api/v1/ripple", {"churn": "maybe"}, "true or false"),
            ("/api/v1/agents", {"min_n": "few"}, "not a whole number"),
            ("/api/v1/alignment", {"by": "region"}, "allowed: department, touchpoint"),
            ("/api/v1/alignment/channels", {"measure": "nps"}, "allowed: experience, gap"),
        ):
            r = c.get(path, params=params)
            assert r.status_code == 422, (path, r.text)
            assert r.json()["error"]["code"] == "invalid_query"
            assert word in r.json()["error"]["message"]


def test_roles_see_their_rows_only(loaded):
    accounts.add_user(loaded, "head", "pw-123456789", "department_head", department="logistics")
    accounts.add_user(loaded, "mgr", "pw-123456789", "partner_manager", partner="fast")
    accounts.add_user(loaded, "desk", "pw-123456789", "agent")
    keys = {
        u: {"Authorization": f"Bearer {accounts.create_key(loaded, u, 't')[1]}"}
        for u in ("head", "mgr", "desk")
    }
    with TestClient(create_app(Settings(), store=loaded)) as c:
        assert c.get("/api/v1/ripple").status_code == 401
        assert c.get("/api/v1/partners", headers=keys["desk"]).status_code == 403
        rows = c.get("/api/v1/ripple", params={"churn": "false"}, headers=keys["head"]).json()
        assert {r["department"] for r in rows["rows"]} == {"logistics"}
        r = c.get("/api/v1/ripple", params={"department": "marketing"}, headers=keys["head"])
        assert r.status_code == 403
        impact = c.get(
            "/api/v1/departments/impact", params={"churn": "false"}, headers=keys["head"]
        ).json()["rows"]
        assert [r["department"] for r in impact] == ["logistics"]
        card = c.get("/api/v1/partners", headers=keys["mgr"]).json()["rows"]
        assert [(r["partner"], r["baseline"]) for r in card] == [(None, True), ("fast", False)]
        assert c.get("/api/v1/ripple", headers=keys["mgr"]).json()["rows"] == []
        channels = c.get("/api/v1/alignment/channels", headers=keys["head"]).json()["rows"]
        assert {r["touchpoint"] for r in channels} == {"home_delivery"}


def test_cli_commands(loaded, store_url, engine):
    if engine == "duckdb":
        loaded.close()  # a DuckDB file is open in one process at a time
    runner = CliRunner()
    for args in (
        ["ripple", "--no-churn", "--format", "json"],
        ["impact", "--no-churn", "--format", "json"],
        ["agents", "--format", "json"],
        ["partners", "--format", "csv"],
        ["channels", "--where", "touchpoint=checkout"],
        ["alignment", "--by", "touchpoint", "--format", "json"],
    ):
        r = runner.invoke(cli_app, [*args, "--store", store_url])
        assert r.exit_code == 0, (args, r.output)
        if "json" in args:
            assert json.loads(r.output)["rows"]
    r = runner.invoke(cli_app, ["channels", "--measure", "colour", "--store", store_url])
    # corridor.cli.main turns a CorridorError into its message and exit code 2
    assert isinstance(r.exception, AnalyticsQueryError)
    assert "allowed: experience, gap" in str(r.exception)
