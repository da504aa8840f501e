"""Survey invitations through the API and the CLI: triggers, lists of people, invitations with
the contact rule that held them, the contact rules themselves, and the response analyses as
routes and commands; bad input gets a 4xx or one clear line, never a 500 or a traceback."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from corridor.api.app import create_app
from corridor.cli.main import app as cli
from corridor.errors import CorridorError
from corridor.settings import Settings
from corridor.surveys import catalog, definition
from survey_fixtures import delivery


@pytest.fixture
def app(store, ingestor):
    catalog.save(store, definition.parse(delivery()), by="ana")
    now = datetime.now(UTC)
    ingestor.ingest(
        "people",
        pa.table({"person_id": ["a", "b"], "kind": ["customer"] * 2, "created_at": [now] * 2,
                  "segment": ["consumer", "vip"], "email": ["a@example.com", "b@example.com"]}),
    )  # fmt: skip
    return create_app(Settings(auth="off", scheduler="off"), store=store)


@pytest.mark.parametrize("engine", ["duckdb"])
def test_invitations_api(store, app):
    with TestClient(app, raise_server_exceptions=False) as c:
        vip = {"kind": "exclude", "rule_id": "no-vip", "field": "segment", "values": ["vip"]}
        r = c.post("/api/v1/contact-rules", json=vip)
        assert r.status_code == 201 and r.json()["description"] == "nobody whose segment is vip"
        assert c.post("/api/v1/contact-rules", json=vip).status_code == 422
        assert c.post("/api/v1/contact-rules", json={"kind": "min_gap"}).status_code == 422
        bad = c.post("/api/v1/contact-rules", json={"kind": "min_gap", "period": "soon"})
        assert bad.status_code == 422
        assert [x["rule_id"] for x in c.get("/api/v1/contact-rules").json()] == ["no-vip"]

        t = c.post("/api/v1/surveys/delivery-pulse/triggers",
                   json={"kind": "interaction", "delay": "2h", "remind": "3d"})  # fmt: skip
        assert t.status_code == 201 and t.json()["touchpoint"] == "home_delivery"
        assert t.json()["delay_s"] == 7200 and t.json()["remind_s"] == 3 * 86400
        assert (
            c.post("/api/v1/surveys/nope/triggers", json={"kind": "interaction"}).status_code == 404
        )
        tid = t.json()["trigger_id"]
        off = c.post(f"/api/v1/surveys/delivery-pulse/triggers/{tid}/disable")
        assert off.status_code == 200 and off.json()[0]["enabled"] is False
        assert c.post("/api/v1/surveys/delivery-pulse/triggers/trg-x/disable").status_code == 404

        r = c.post("/api/v1/surveys/delivery-pulse/invitations", json={"people": ["a", "b"]})
        assert r.status_code == 201 and r.json() == {"invited": 2}
        unknown = c.post("/api/v1/surveys/delivery-pulse/invitations", json={"people": ["zz"]})
        assert unknown.status_code == 422 and "not in the store" in unknown.text
        assert c.post("/api/v1/surveys/delivery-pulse/invitations",
                      json={"people": []}).status_code == 422  # fmt: skip
        from corridor.surveys import invitations

        invitations.run(store, "https://x.example")
        held = c.get("/api/v1/surveys/delivery-pulse/invitations?state=held").json()
        assert [(i["person_id"], i["held_rule"]) for i in held] == [("b", "no-vip")]
        assert c.get("/api/v1/surveys/delivery-pulse/invitations?state=lost").status_code == 422
        assert c.get("/api/v1/surveys/delivery-pulse/invitations?colour=x").status_code == 422

        rates = c.get("/api/v1/survey-response-rates?by=segment").json()
        assert {r["segment"]: (r["sent"], r["held"]) for r in rates["rows"]} == {
            "consumer": (1, 0),
            "vip": (0, 1),
        }
        assert c.get("/api/v1/survey-response-rates?by=colour").status_code == 422
        assert c.get("/api/v1/survey-nonresponse").status_code == 200
        assert c.delete("/api/v1/contact-rules/no-vip").status_code == 204
        assert c.delete("/api/v1/contact-rules/no-vip").status_code == 404


@pytest.mark.parametrize("engine", ["duckdb"])
def test_invitations_cli(store_url, store, ingestor, app, tmp_path):
    store.close()

    def run(*args: str):
        return CliRunner().invoke(cli, [*args, "--store", store_url])

    r = run("surveys", "contact", "add", "max_per_period", "--id", "two", "--count", "2",
            "--period", "30d")  # fmt: skip
    assert r.exit_code == 0 and "at most 2 invitation(s) per 30 days" in r.output
    r = run("surveys", "contact", "add", "max_per_period", "--period", "30d")
    # a CorridorError: `corridor` (cli.main.main) prints it as one line, exit code 2
    assert isinstance(r.exception, CorridorError) and "needs a count" in str(r.exception)
    assert "two" in run("surveys", "contact", "list").output
    r = run("surveys", "trigger", "delivery-pulse", "--after", "case_resolved", "--delay", "1d")
    assert r.exit_code == 0 and "each resolved case" in r.output
    assert run("surveys", "triggers", "delivery-pulse").exit_code == 0
    listed = json.loads(run("surveys", "triggers", "delivery-pulse", "--format", "json").output)
    assert [t["kind"] for t in listed] == ["case_resolved"]
    people = tmp_path / "people.txt"
    people.write_bytes(b"\xef\xbb\xbfa\r\nb\r\n\r\n")  # a spreadsheet's export: a BOM, CR LF
    r = run("surveys", "invite", "delivery-pulse", "--file", str(people), "--remind", "3d")
    assert r.exit_code == 0 and "2 invitation(s)" in r.output
    r = run("surveys", "send", "--base-url", "https://cx.example.com")
    assert r.exit_code == 0 and "2 invitations sent" in r.output
    listed = json.loads(run("surveys", "invitations", "delivery-pulse", "--format", "json").output)
    assert {i["state"] for i in listed} == {"sent"}
    rates = json.loads(run("surveys", "rates", "--by", "segment", "--format", "json").output)
    assert sum(r["sent"] for r in rates["rows"]) == 2
    assert run("surveys", "contact", "remove", "two").exit_code == 0
    r = run("surveys", "contact", "remove", "two")
    assert isinstance(r.exception, CorridorError) and "no contact rule 'two'" in str(r.exception)


def test_the_demo_survey_is_the_one_in_the_docs():
    """`corridor demo` loads the example of docs/surveys.md: the two must not drift apart."""
    from pathlib import Path

    from corridor.surveys.example import DELIVERY_PULSE_YAML, delivery_pulse

    doc = (Path(__file__).resolve().parent.parent / "docs" / "surveys.md").read_text()
    assert doc.split("```yaml\n", 1)[1].split("```", 1)[0] == DELIVERY_PULSE_YAML
    assert delivery_pulse().touchpoints == ("home_delivery",)


@pytest.mark.parametrize("engine", ["duckdb"])
def test_an_error_quoting_a_lone_surrogate_is_a_clear_422(store, app):
    """Schemathesis sent a definition whose keys held lone surrogates (valid JSON escapes):
    the error quoting them could not be encoded and became a 500."""
    with TestClient(app, raise_server_exceptions=False) as c:
        body = b'{"\\udc80o": 1, "id": "x"}'
        r = c.put("/api/v1/surveys/x", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        assert "unknown key" in r.json()["error"]["message"]
