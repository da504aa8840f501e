"""``churn_jump`` rules on both engines: a customer whose predicted churn risk rose by ``jump``
since the last scoring and is now at least ``min_risk`` gets one alert and one case (routed to
the rule's team: a case about a customer has no touch point), within the cooldown only once; a
first scoring only stores the baseline. On a small simulated company, the app's listener of the
churn model's fits alerts the customer whose feedback turned strongly negative at the touch
points whose gaps drive churn in truth.json, and few others."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import make_store_url
from corridor.analytics.customers.models import CHURN_RISK, FittedModels
from corridor.api.app import create_app
from corridor.cli.main import app as cli_app
from corridor.ingest.files import import_dataset
from corridor.ingest.pipeline import Ingestor
from corridor.loop import churn_jump, webhooks
from corridor.loop.rules import Rule, RuleError, add_rule
from corridor.settings import Settings
from corridor.simulate import simulate
from corridor.store import Store, open_store
from corridor.web.models import refresher

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def people(ingestor: Ingestor) -> None:
    rows = [
        {"person_id": "p1", "kind": "customer", "segment": "consumer", "region": "north"},
        {"person_id": "p2", "kind": "customer", "segment": "consumer", "region": "south"},
        {"person_id": "p3", "kind": "customer", "segment": "business", "region": "north"},
        {"person_id": "p4", "kind": "customer", "segment": "consumer", "region": "north"},
    ]
    assert ingestor.ingest("people", pa.Table.from_pylist(rows)).rejected == 0


def alerts(store: Store) -> list[tuple[Any, ...]]:
    return [
        tuple(r)
        for r in store.query(
            "SELECT rule_id, subject, person_id, segment, region, case_id FROM alerts "
            "ORDER BY rule_id, subject"
        )
    ]


# -- declaring ----------------------------------------------------------------------------------
def test_a_churn_jump_rule_is_checked(store):
    made = add_rule(store, Rule("jumps", "churn_jump", scope={"segment": "consumer"}), actor="ana")
    assert made.family == "record" and made.cooldown_s == 7 * 86400
    assert made.get("jump") == 0.15 and made.get("min_risk") == 0.4
    assert made.name == ("a churn-risk jump of at least 0.15 to at least 0.4 [segment consumer]")
    for bad, words in (
        (Rule("x", "churn_jump", scope={"touchpoint": ["checkout"]}), "segment and region only"),
        (Rule("x", "churn_jump", scope={"department": ["it"]}), "not by department"),
        (Rule("x", "churn_jump", {"per": "record"}), "per customer only"),
        (Rule("x", "churn_jump", {"jump": 1.5}), "jump must lie"),
        (Rule("x", "churn_jump", {"min_risk": -0.1}), "min_risk must lie"),
        (Rule("x", "churn_jump", {"max_nps": 6}), "takes no max_nps"),
    ):
        with pytest.raises(RuleError, match=words):
            add_rule(store, bad, actor="ana")


def test_the_cli_and_the_api_take_a_churn_jump_rule(store, store_url):
    run = CliRunner()
    help_text = run.invoke(cli_app, ["rules", "add", "--help"], terminal_width=200).output
    assert "churn_jump" in help_text and "--jump" in help_text and "--min-risk" in help_text
    r = run.invoke(
        cli_app,
        ["rules", "add", "cli-jump", "--kind", "churn_jump", "--jump", "0.2", "--min-risk",
         "0.5", "--region", "north", "--team", "retention", "--store", store_url],
        catch_exceptions=False,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "a churn-risk jump of at least 0.2 to at least 0.5 [region north]" in r.output
    app = create_app(Settings(auth="off"), store=store)
    with TestClient(app) as c:
        ok = c.post(
            "/api/v1/rules",
            json={
                "rule_id": "api-jump",
                "kind": "churn_jump",
                "team": "retention",
                "definition": {"jump": 0.1, "min_risk": 0.3},
                "scope": {"segment": ["consumer"]},
            },
        )
        assert ok.status_code in (200, 201), ok.text
        assert ok.json()["definition"]["jump"] == 0.1
        bad = c.post(
            "/api/v1/rules",
            json={
                "rule_id": "api-bad",
                "kind": "churn_jump",
                "scope": {"touchpoint": ["checkout"]},
            },
        )
        assert bad.status_code == 422 and "segment and region only" in bad.text


# -- evaluating ---------------------------------------------------------------------------------
def test_a_jump_fires_once_per_customer_within_the_cooldown(store, ingestor):
    people(ingestor)
    webhooks.add_endpoint(store, "https://hooks.example.com/corridor")
    add_rule(store, Rule("jumps", "churn_jump", team="retention"), actor="ana")
    # the first scoring is a baseline: nothing fires, however high
    first = {"p1": 0.30, "p2": 0.30, "p3": 0.10, "p4": 0.05}
    assert churn_jump.evaluate(store, first, now=T0) == []
    assert alerts(store) == [] and churn_jump.scores(store) == pytest.approx(first)
    # p1 jumps to 0.55 (fires); p2 rises by less than the jump; p3 jumps but stays under
    # min_risk; p4 falls; p5 is scored for the first time (a baseline, however high)
    second = {"p1": 0.55, "p2": 0.42, "p3": 0.30, "p4": 0.01, "p5": 0.9}
    fired = churn_jump.evaluate(store, second, now=T0 + timedelta(days=1), as_of="2026-03-01")
    assert [h.person_id for h in fired] == ["p1"]
    (alert,) = alerts(store)
    assert alert[:5] == ("jumps", "person=p1", "p1", "consumer", "north")
    case = store.query(
        "SELECT person_id, team, touchpoint, department, state, rule_id, title FROM cases"
    )
    assert len(case) == 1
    person, team, tp, dept, state, rule_id, title = case[0]
    assert (person, team, tp, dept, state, rule_id) == ("p1", "retention", None, None, "new",
                                                        "jumps")  # fmt: skip
    assert "30% to 55%" in title
    evidence = json.loads(store.query("SELECT CAST(evidence AS VARCHAR) FROM alerts")[0][0])
    assert evidence["previous_risk"] == 0.30 and evidence["risk"] == 0.55
    assert evidence["as_of"] == "2026-03-01"
    # its notification was written in the same transaction
    events = [r[0] for r in store.query("SELECT event_type FROM outbox ORDER BY 1")]
    assert "case.opened" in events and "alert.fired" in events
    # every score is the new baseline (p5's first one included)
    assert churn_jump.scores(store) == pytest.approx(second)
    # p1 jumps again within the cooldown: no second alert; p5 (baseline 0.9) does not jump
    third = {"p1": 0.80, "p5": 0.95}
    assert churn_jump.evaluate(store, third, now=T0 + timedelta(days=2)) == []
    assert len(alerts(store)) == 1
    # after the cooldown, a new jump (from the latest score, 0.80) fires again and joins the
    # open case
    assert churn_jump.evaluate(store, {"p1": 0.90}, now=T0 + timedelta(days=10)) == []
    churn_jump.evaluate(store, {"p1": 0.60}, now=T0 + timedelta(days=11))
    fired = churn_jump.evaluate(store, {"p1": 0.90}, now=T0 + timedelta(days=12))
    assert [h.person_id for h in fired] == ["p1"]
    assert store.query("SELECT COUNT(*), MAX(alerts) FROM cases")[0] == (1, 2)


def test_scope_by_segment_and_region(store, ingestor):
    people(ingestor)
    add_rule(store, Rule("consumers", "churn_jump", scope={"segment": "consumer"},
                         team="retention"), actor="ana")  # fmt: skip
    add_rule(store, Rule("north", "churn_jump", {"jump": 0.3, "min_risk": 0.2},
                         scope={"region": "north"}, team="north-desk"), actor="ana")  # fmt: skip
    base = {"p1": 0.1, "p2": 0.1, "p3": 0.1, "p4": 0.1}
    churn_jump.evaluate(store, base, now=T0)
    churn_jump.evaluate(store, {"p1": 0.5, "p2": 0.5, "p3": 0.5, "p4": 0.3}, now=T0)
    got = [(r[0], r[1]) for r in alerts(store)]
    # consumers: p1, p2 (p3 is business; p4 under min_risk); north (jump 0.3): p1, p3 (p4's
    # jump 0.2 is under it; p2 is south)
    assert got == [("consumers", "person=p1"), ("consumers", "person=p2"),
                   ("north", "person=p1"), ("north", "person=p3")]  # fmt: skip
    teams = dict(store.query("SELECT cause, team FROM cases"))
    assert teams == {"consumers|person=p1": "retention", "consumers|person=p2": "retention",
                     "north|person=p1": "north-desk", "north|person=p3": "north-desk"}  # fmt: skip


def test_scores_are_kept_without_a_rule_and_a_later_rule_has_a_baseline(store, ingestor):
    people(ingestor)
    assert churn_jump.evaluate(store, {"p1": 0.1, "p2": float("nan")}, now=T0) == []
    assert churn_jump.scores(store) == {"p1": 0.1}
    churn_jump.evaluate(store, {"p1": 0.2}, now=T0 + timedelta(hours=1))
    assert churn_jump.scores(store) == {"p1": 0.2}
    add_rule(store, Rule("jumps", "churn_jump"), actor="ana")
    fired = churn_jump.evaluate(store, {"p1": 0.5}, now=T0 + timedelta(hours=2))
    assert [h.subject for h in fired] == ["person=p1"]
    # unrouted without a team: no department, no partner
    assert store.query("SELECT team, department, partner_id FROM cases") == [(None, None, None)]


def test_a_failing_listener_never_breaks_a_fit(caplog):
    models = FittedModels()
    heard: list[Any] = []

    def broken(key: tuple[Any, ...], value: Any) -> None:
        raise RuntimeError("boom")

    models.on_fitted(CHURN_RISK, broken)
    models.on_fitted(CHURN_RISK, lambda key, value: heard.append((key, value)))
    with caplog.at_level(logging.ERROR, logger="corridor.analytics"):
        assert models.fitted(CHURN_RISK, ("k", 6.0), lambda: "model") == "model"
    assert heard == [(("k", 6.0), "model")]
    assert models.state(CHURN_RISK).status == "ready"
    assert "listener" in caplog.text and "boom" in caplog.text
    # a kept model (no fit) calls nobody
    assert models.fitted(CHURN_RISK, ("k", 6.0), lambda: "other") == "model"
    assert len(heard) == 1


# -- on a simulated company -----------------------------------------------------------------------
CUSTOMERS, MONTHS, SEED = 1500, 12, 7


def test_the_app_alerts_the_customer_whose_experience_collapsed(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    result = simulate(CUSTOMERS, MONTHS, SEED, tmp_path / "data", fmt="parquet")
    drivers = [d["touchpoint"] for d in result.truth["churn"]["drivers"]]
    url = make_store_url(engine, tmp_path, request)
    with open_store(url) as store:
        ingestor = Ingestor(store)
        try:
            import_dataset(ingestor, tmp_path / "data")
            app = create_app(Settings(auth="off", model_refresh="on_request"), store=store)
            fitter = refresher(app.state, store, start=False)
            fitter.fit_now()  # the first fit: every customer's baseline, no alert
            base = churn_jump.scores(store)
            assert len(base) > CUSTOMERS / 2
            add_rule(store, Rule("jumps", "churn_jump", team="retention"), actor="ana")
            # a customer whose risk is already among the higher tenth (risks are low in this
            # company: a few per cent for most) and whose experience then collapses where gaps
            # drive churn
            ranked = sorted(base, key=lambda p: (base[p], p))
            target = ranked[int(len(ranked) * 0.9)]
            last = store.query("SELECT MAX(occurred_at) FROM interactions")[0][0]
            rows = [
                {"feedback_id": f"collapse-{tp}-{k}", "person_id": target,
                 "occurred_at": last - timedelta(hours=k + 1), "touchpoint": tp,
                 "source": "survey", "expectation": 10.0, "experience": 0.0, "nps": 0}
                for tp in drivers for k in range(2)
            ]  # fmt: skip
            table = pa.Table.from_pylist(rows)
            table = table.set_column(
                table.schema.get_field_index("occurred_at"),
                "occurred_at",
                pa.array([r["occurred_at"] for r in rows], pa.timestamp("us", tz="UTC")),
            )
            assert ingestor.ingest("feedback", table).rejected == 0
            fitter.fit_now()  # the refit scores everyone again: the listener fires
        finally:
            ingestor.close()
        alerted = {r[2] for r in alerts(store)}
        after = churn_jump.scores(store)
        assert after[target] - base[target] >= 0.15, (base[target], after[target])
        assert target in alerted, (base[target], after[target], sorted(base.values())[-5:])
        assert len(alerted) < 0.05 * len(base)
        (team,) = store.query("SELECT DISTINCT team FROM cases")[0]
        assert team == "retention"


def test_a_fit_on_request_scores_every_customer(ingestor, store):
    """The app's listener also runs when a request fits the model (inside the store's reading
    block): the scores are stored, and a later fit compares with them."""
    from test_churn import _load

    _load(ingestor)
    app = create_app(Settings(auth="off", model_refresh="on_request"), store=store)
    with TestClient(app) as client:
        r = client.get("/api/v1/churn/risk/c003")
        assert r.status_code == 200, r.text
        kept = app.state.models.latest(CHURN_RISK)
        assert kept is not None
        risk = kept[1].result.frame.set_index("person_id")["risk"]
        assert len(risk) > 0
        assert churn_jump.scores(store) == pytest.approx(risk.to_dict())
        first = str(risk.index[0])
        r = client.get(f"/api/v1/churn/risk/{first}")  # the kept model: no refit
        assert r.json()["risk"] == pytest.approx(churn_jump.scores(store)[first])
