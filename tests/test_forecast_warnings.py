"""Early warnings (issue 16.3) on both engines: forecast-crossing rules of the closed loop fire
on the touch point whose gap is planted to cross −1 and on the feedback volume planted to grow,
never on the flat ones; their evidence is the forecast with its intervals, model, backtest and
n; cooldown and de-duplication hold; the dry run replays them; the touch point page continues
its trend chart with the forecast band and says what it means, the overview marks the card
forecast to worsen and no other, and a department head sees neither another department's page
nor its forecast."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import ENGINES, SMALL_MAP, make_store_url
from corridor.analytics.anticipation import warnings
from corridor.analytics.anticipation.forecasts import forecast_table
from corridor.api.app import create_app
from corridor.auth import accounts
from corridor.cli.main import app as cli_app
from corridor.domain.corridor_map import CorridorMap
from corridor.ingest.pipeline import Ingestor
from corridor.loop import aggregate_rules, cases
from corridor.loop.rules import Rule, RuleError, add_rule, check
from corridor.settings import Settings
from corridor.store import Store, open_store

MONTHS = 24
START = 2023
#: inside the month after the data: every month complete
NOW = datetime(START + 2, 1, 15, tzinfo=UTC)
PASSWORD = "forecast-pages-password"
OWN = {"origin": "http://testserver"}
USERS = {
    "ana": ("analyst", {}),
    "lena": ("department_head", {"department": "logistics"}),
    "eric": ("department_head", {"department": "ecommerce"}),
}


def _feedback(seed: int = 5) -> pa.Table:
    """Two years of monthly feedback: checkout's gap falls 0.13 a month from +2.2 (120 answers
    a month: about −0.6 in the last month, forecast below −1 within three); support_call's
    gap stays at −0.5 while its volume grows 15 % a month (from 20); home_delivery's stays at
    −0.3 (40 a month). Each answer ± 1.2 around its mean, rounded to the 0–10 scale."""
    rng = np.random.default_rng(seed)
    rows = []
    for m in range(MONTHS):
        year, month = START + m // 12, m % 12 + 1
        for tp, mean, count in (
            ("checkout", 2.2 - 0.13 * m, 120),
            ("support_call", -0.5, int(20 * 1.15**m)),
            ("home_delivery", -0.3, 40),
        ):
            for j in range(count):
                expectation = float(rng.integers(3, 8))
                rows.append({
                    "feedback_id": f"f-{tp}-{m}-{j}", "person_id": f"p{j % 30}",
                    "occurred_at": datetime(year, month, int(rng.integers(1, 29)), 12, tzinfo=UTC),
                    "touchpoint": tp, "source": "survey", "expectation": expectation,
                    "experience": float(np.clip(round(expectation + mean + rng.normal(0, 1.2)),
                                                0, 10)),
                })  # fmt: skip
    return pa.Table.from_pylist(rows)


@pytest.fixture(scope="module", params=ENGINES)
def company(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = make_store_url(str(request.param), tmp_path_factory.mktemp("warnings"), request)
    with open_store(url) as store:
        ingestor = Ingestor(store)
        try:
            ingestor.load_map(CorridorMap.from_dict(SMALL_MAP))
            assert ingestor.ingest("feedback", _feedback()).rejected == 0
            ingestor.refresh_rollup()
        finally:
            ingestor.close()
        for name, (role, extra) in USERS.items():
            accounts.add_user(store, name, PASSWORD, role, **extra)
    return url


def _clear(s: Store) -> None:
    with s.transaction() as tx:  # each test starts without rules, alerts or cases
        for table in ("alert_rules", "alerts", "cases", "case_events", "outbox"):
            tx.execute(f"DELETE FROM {table}")


@pytest.fixture
def store(company: str) -> Iterator[Store]:
    with open_store(company) as s:
        yield s
        _clear(s)


def gap_rule(rule_id: str = "gap-forecast", **definition: Any) -> Rule:
    return Rule(rule_id, "forecast", {"below": -1, "horizon": 3, **definition})


def test_forecast_rules_are_checked_and_described():
    made = check(gap_rule())
    assert made.family == "aggregate" and made.get("measure") == "gap"
    assert made.get("bound") == "point" and made.get("period") == "month"
    assert made.describe() == "mean gap forecast to fall below -1 within 3 months"
    doubling = check(Rule("x", "forecast", {"measure": "feedback", "ratio": 2, "horizon": "4",
                                            "bound": "interval"}))  # fmt: skip
    assert doubling.definition["horizon"] == 4
    assert doubling.describe() == (
        "feedback volume forecast to reach 2× its last month within 4 months (the whole 80 % band)"
    )
    for definition, words in (
        ({}, "exactly one of below, above and ratio"),
        ({"below": -1, "ratio": 2}, "exactly one"),
        ({"below": -1, "measure": "mood"}, "measure must be one of"),
        ({"ratio": 1}, "no change"),
        ({"below": -1, "horizon": 0}, "horizon"),
        ({"below": -1, "horizon": 2.5}, "whole number"),
        ({"below": -1, "bound": "edge"}, "bound must be one of"),
        ({"below": -1, "by": ["colour"]}, "cannot group by colour"),
        ({"below": -1, "alpha": 0.05}, "takes no alpha"),
    ):
        with pytest.raises(RuleError, match=words):
            check(Rule("x", "forecast", definition))


def test_a_forecast_rule_fires_on_the_crossing_series_only_with_the_forecast_as_evidence(store):
    rule = add_rule(store, gap_rule(), actor="ana")
    hits = aggregate_rules.find_hits(store, rule, now=NOW)
    assert [h.subject for h in hits] == ["touchpoint=checkout"]  # not the flat touch points
    hit = hits[0]
    assert hit.occurred_at == datetime(START + 2, 1, 1, tzinfo=UTC)
    assert hit.touchpoint == "checkout" and hit.department == "ecommerce"
    ev = hit.evidence
    assert ev["analysis"] == "forecast" and ev["measure"] == "gap" and ev["bound"] == "point"
    assert ev["last_period"] == f"{START + 1}-12" and ev["last_value"] > -1
    assert ev["n"] == 120 * MONTHS and ev["n_periods"] == MONTHS and ev["model"].startswith("ETS")
    assert ev["backtest"]["backtest_n"] > 0 and ev["backtest"]["mase"] > 0
    assert 0 <= ev["backtest"]["coverage_80"] <= ev["backtest"]["coverage_95"] <= 1
    steps = ev["forecast"]
    assert [s["step"] for s in steps] == [1, 2, 3]
    assert [s["period_label"] for s in steps] == [f"{START + 2}-0{m}" for m in (1, 2, 3)]
    for s in steps:
        assert s["low_95"] < s["low_80"] < s["forecast"] < s["high_80"] < s["high_95"]
    crossed = steps[ev["crossing"]["step"] - 1]
    assert crossed["forecast"] == ev["crossing"]["value"] < -1
    assert all(s["forecast"] >= -1 for s in steps[: ev["crossing"]["step"] - 1])
    assert ev["line"] == {"below": -1.0, "target": -1.0, "direction": "down"}
    assert "forecast to fall below -1" in hit.summary and "n = 2,880" in hit.summary
    # what the evidence says is what the forecast analysis says
    frame = forecast_table(store, horizon=3, until=hit.occurred_at).frame
    mine = frame[frame["touchpoint"] == "checkout"].sort_values("step")
    assert [s["forecast"] for s in steps] == pytest.approx(mine["forecast"].tolist())
    # read on the whole 80 % band, the warning comes later or not at all
    strict = add_rule(store, gap_rule("gap-band", bound="interval", horizon=6), actor="ana")
    (band,) = aggregate_rules.find_hits(store, strict, now=NOW)
    c = band.evidence["crossing"]
    assert c["value"] == band.evidence["forecast"][c["step"] - 1]["high_80"] < -1
    assert c["step"] > ev["crossing"]["step"]
    # the flat touch points: quiet
    quiet = add_rule(store, Rule("quiet", "forecast", {"below": -1.5, "horizon": 6},
                                 scope={"touchpoint": ["support_call", "home_delivery"]}),
                     actor="ana")  # fmt: skip
    assert aggregate_rules.find_hits(store, quiet, now=NOW) == []


def test_a_volume_forecast_to_grow_fires_by_ratio(store):
    rule = add_rule(store, Rule("calls", "forecast", {"measure": "feedback", "ratio": 1.3}),
                    actor="ana")  # fmt: skip
    hits = aggregate_rules.find_hits(store, rule, now=NOW)
    assert [h.subject for h in hits] == ["touchpoint=support_call"]  # checkout's is flat
    ev = hits[0].evidence
    last = ev["last_value"]
    assert last == int(20 * 1.15 ** (MONTHS - 1))
    assert ev["line"]["target"] == pytest.approx(1.3 * last)
    assert ev["crossing"]["value"] >= 1.3 * last > ev["forecast"][0]["forecast"]
    assert ev["model"].endswith("of log")
    assert hits[0].department == "service"


def test_cooldown_and_de_duplication_hold_when_the_rule_runs_live(store):
    """Four months ahead, checkout's forecast crosses −1 from December's run on; a 7-day
    cooldown alerts it again a month later (joining the open case), a 40-day one does not."""
    december = datetime(START + 1, 12, 15, tzinfo=UTC)
    add_rule(store, gap_rule("weekly", horizon=4), actor="ana")  # 7 days' cooldown
    slow = Rule("slow", "forecast", {"below": -1, "horizon": 4}, cooldown_s=40 * 86400)
    add_rule(store, slow, actor="ana")
    assert aggregate_rules.evaluate(store, december) == 2  # the forecast from November's data
    assert aggregate_rules.evaluate(store, december + timedelta(hours=1)) == 0  # the same run
    assert aggregate_rules.evaluate(store, NOW) == 1  # a month on: only the 7-day rule again
    rows = store.query("SELECT rule_id, occurred_at FROM alerts ORDER BY rule_id, occurred_at")
    assert [r[0] for r in rows] == ["slow", "weekly", "weekly"]
    found, _ = cases.list_cases(store, None)
    assert sorted((c["rule_id"], c["alerts"]) for c in found) == [("slow", 1), ("weekly", 2)]
    assert {c["department"] for c in found} == {"ecommerce"}
    # a dry run replays each month start and de-duplicates by the same cooldown
    since = datetime(START + 1, 6, 1, tzinfo=UTC)
    hits = aggregate_rules.dry_run(store, gap_rule("x", horizon=4), since=since, until=NOW)
    assert [(h.subject, h.occurred_at.month) for h in hits] == [
        ("touchpoint=checkout", 12), ("touchpoint=checkout", 1)]  # fmt: skip
    slow = Rule("y", "forecast", {"below": -1, "horizon": 4}, cooldown_s=40 * 86400)
    assert len(aggregate_rules.dry_run(store, slow, since=since, until=NOW)) == 1


# -- the pages, the case, the CLI and the API ----------------------------------------------------
@pytest.fixture
def client(store: Store) -> Iterator[Any]:
    app = create_app(Settings(scheduler="off"), store=store)

    def signed_in(user: str) -> TestClient:
        c = TestClient(app, headers=OWN)
        r = c.post("/login", data={"username": user, "password": PASSWORD},
                   follow_redirects=False)  # fmt: skip
        assert r.status_code == 303, r.text
        return c

    yield signed_in


def _figure(page: str) -> dict[str, Any]:
    found = re.search(r'data-figure="([^"]+)"', page)
    assert found, "no chart"
    return json.loads(html.unescape(found.group(1)))


def _cards(page: str) -> dict[str, str]:
    return dict(re.findall(r'<li class="tp [^"]*" data-touchpoint="(\w+)">(.*?)</li>', page, re.S))


def test_the_touch_point_page_continues_the_trend_with_the_forecast_band(client):
    """The pages forecast from the months complete before the day after the latest feedback
    (late December): December is unfinished, so 23 months of 120 answers."""
    with client("ana") as c:
        page = c.get("/touchpoints/checkout?range=all")
        assert page.status_code == 200
        text = html.unescape(page.text)
        names = [t.get("name") for t in _figure(page.text)["data"]]
        assert {"forecast", "80 % forecast interval", "95 % forecast interval"} <= set(names)
        band = next(
            t for t in _figure(page.text)["data"] if t.get("name") == "80 % forecast interval"
        )
        assert band["fill"] == "tonexty" and len(band["x"]) == 3
        assert 'class="forecast-legend"' in text and "four times in five" in text
        assert "Backtest on the last months" in text and "n = 2,760 answers" in text
        assert 'class="forecast-table"' in text and 'data-forecast="worsen"' in text
        flat = html.unescape(c.get("/touchpoints/support_call?range=all").text)
        assert 'class="forecast-legend"' in flat and 'data-forecast="worsen"' not in flat
        overview = c.get("/?range=all").text
        cards = _cards(overview)
        assert set(cards) == {"ad_click", "checkout", "home_delivery", "support_call"}
        marked = {k for k, v in cards.items() if 'data-forecast="worsen"' in v}
        assert marked == {"checkout"}
        assert "Forecast to worsen" in cards["checkout"] and "n = 2,760" in cards["checkout"]


def test_a_department_head_sees_no_other_departments_forecast(client):
    with client("lena") as c:
        own = c.get("/touchpoints/home_delivery?range=all")
        assert own.status_code == 200 and 'class="forecast-legend"' in own.text
        other = c.get("/touchpoints/checkout?range=all")
        assert other.status_code == 403 and "forecast" not in other.text.lower()
        assert c.get("/", follow_redirects=False).status_code == 303
        rows = c.get("/api/v1/forecast").json()["rows"]
        assert {r["touchpoint"] for r in rows} == {"home_delivery"}


def test_rules_test_the_api_and_the_case_page_carry_the_forecast(store, company, client):
    definition = {"measure": "gap", "below": -1, "horizon": 4, "period": "month"}
    body = {"rule_id": "gap-forecast", "kind": "forecast", "definition": definition}
    with client("ana") as ana, client("lena") as lena, client("eric") as eric:
        bad = ana.post("/api/v1/rules", json={**body, "definition": {"below": -1, "ratio": 2}})
        assert bad.status_code == 422 and "exactly one" in bad.text
        assert ana.post("/api/v1/rules", json=body).status_code in (200, 201)
        since = f"{START + 1}-06-01"
        until = NOW.date().isoformat()
        q = f"/api/v1/rules/gap-forecast/test?since={since}&until={until}"
        assert ana.get(q).json()["n"] == 2
        assert lena.get(q).json()["n"] == 0  # checkout is not hers
        seen = eric.get(q).json()
        assert seen["n"] == 2 and seen["alerts"][0]["evidence"]["forecast"][0]["low_95"] < 0
        assert aggregate_rules.evaluate(store, NOW) == 1
        (case,) = cases.list_cases(store, None)[0]
        page = html.unescape(eric.get(f"/cases/{case['case_id']}").text)
        assert "(crosses -1)" in page and "backtest MASE" in page and "ETS(" in page
        assert lena.get(f"/cases/{case['case_id']}").status_code == 404


def test_the_rules_commands_add_and_test_a_forecast_rule(company):
    run = CliRunner()  # the commands open the store themselves

    def cli(*args: str) -> str:
        r = run.invoke(cli_app, [*args, "--store", company], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        return r.output

    try:
        out = cli("rules", "add", "calls-up", "--kind", "forecast", "--measure", "feedback",
                  "--ratio", "1.3", "--horizon", "2", "--bound", "point", "--min-periods", "6",
                  "--min-n", "100", "--touchpoint", "support_call")  # fmt: skip
        assert "feedback volume forecast to reach 1.3× its last month within 2 months" in out
        body = json.loads(cli("rules", "test", "calls-up", "--since", f"{START + 1}-10-01",
                              "--until", NOW.date().isoformat(), "--format", "json"))  # fmt: skip
        assert body["n"] >= 1
        assert {a["subject"] for a in body["alerts"]} == {"touchpoint=support_call"}
        ev = body["alerts"][-1]["evidence"]
        assert {"forecast", "backtest", "model", "n", "crossing"} <= set(ev)
        bad = run.invoke(cli_app, ["rules", "add", "x", "--kind", "forecast", "--store", company])
        assert bad.exit_code != 0 and "exactly one" in f"{bad.output}{bad.exception}"
    finally:
        with open_store(company) as s:
            _clear(s)


def test_worsening_needs_a_fall_beyond_the_noise():
    import pandas as pd

    def rows(points: list[float], last: float, half: float) -> pd.DataFrame:
        return pd.DataFrame({
            "step": range(1, len(points) + 1), "forecast": points,
            "low_80": [p - half for p in points], "high_80": [p + half for p in points],
            "last_value": last,
        })  # fmt: skip

    assert warnings.worsening(rows([-0.5, -0.7, -0.9], -0.4, 0.2)) is not None
    assert warnings.worsening(rows([-0.5, -0.5, -0.5], -0.0, 0.2)) is None  # no trend: noise
    assert warnings.worsening(rows([-0.5, -0.55, -0.6], -0.5, 0.2)) is None  # within the noise
    assert warnings.worsening(rows([-0.5], -0.0, 0.2)) is None


def test_the_overview_keeps_its_forecasts_until_the_series_change(store, monkeypatch):
    """The app's cache answers the same overview again without refitting, and refits once an
    ingest changes the series fitted (here a rating at the ad click, left for the later tests:
    one record in January of the first year, too few to forecast); an ingest that changes no
    series (a person) refits nothing."""
    from corridor.auth.scope import Principal, Role, Scope
    from corridor.web import forecast_views, views

    fits: list[int] = []
    real = forecast_views.forecasts.fit
    monkeypatch.setattr(forecast_views.forecasts, "fit",
                        lambda *a, **k: fits.append(1) or real(*a, **k))  # fmt: skip
    cmap = CorridorMap.from_dict(SMALL_MAP)
    scope = Scope.of(Principal("ana", Role.ANALYST), cmap)
    cache = forecast_views.ForecastCache()
    win = views.window(store, "all")

    def marked() -> set[str]:
        page = views.overview(store, scope, cmap, win, None, cache)
        return {c["key"] for s in page["stages"] for c in s["cards"] if c["forecast"]}

    assert marked() == marked() == {"checkout"}
    assert len(fits) == 1 and len(cache) == 1
    ingestor = Ingestor(store)
    try:
        at = datetime(START, 1, 3, 12, tzinfo=UTC)
        table = pa.Table.from_pylist([{"feedback_id": "f-late", "occurred_at": at,
                                       "touchpoint": "ad_click", "source": "survey",
                                       "expectation": 5.0, "experience": 6.0}])  # fmt: skip
        assert ingestor.ingest("feedback", table).rejected == 0
        ingestor.refresh_rollup()
    finally:
        ingestor.close()
    assert marked() == {"checkout"} and len(fits) == 2 and len(cache) == 2
    ingestor = Ingestor(store)
    try:
        person = pa.Table.from_pylist([{"person_id": "p-forecast-cache", "kind": "customer"}])
        assert ingestor.ingest("people", person).rejected == 0
    finally:
        ingestor.close()
    assert marked() == {"checkout"} and len(fits) == 2 and len(cache) == 2
