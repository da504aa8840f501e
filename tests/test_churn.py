"""Churn and lifetime from the store, on DuckDB and PostgreSQL: definitions checked by hand,
estimates against a plain pandas/statsmodels reading of the same records, a planted effect
recovered, and the API and CLI surfaces."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import ENGINES, SMALL_MAP, make_store_url
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.customers.churn import cox_table, person_risk, risk_table, survival_table
from corridor.analytics.customers.churn_people import MONTH_DAYS, customer_table
from corridor.analytics.customers.lifetime import (
    buyers,
    lifetime_params,
    lifetime_table,
    person_value,
)
from corridor.analytics.customers.models import FittedModels
from corridor.analytics.estimators.survival import kaplan_meier, survival_at
from corridor.api.app import create_app
from corridor.domain.corridor_map import CorridorMap
from corridor.ingest.pipeline import Ingestor
from corridor.store import open_store

START = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2025, 12, 31, tzinfo=UTC)
N = 800


def _ts(values: list[datetime]) -> pa.Array:
    return pa.array(values, pa.timestamp("us", tz="UTC"))


def company(seed: int = 5) -> dict[str, pa.Table]:
    """N customers over 2025 (half of them customers since 2023–2024, the rest joining during
    2025), two prospects, and one customer record merged into another through a shared e-mail.
    Every customer has a support call a month (rated 60 % of the time; experience = expectation
    + a lasting personal offset ~ N(0, 1.5) + N(0, 1)) and churns in a month with logit
    hazard −3.5 − 0.8 × the gap of their latest support call; buyers purchase at
    checkout about every two months, for a value that depends on the segment."""
    rng = np.random.default_rng(seed)
    people: dict[str, list] = {
        k: [] for k in ("person_id", "kind", "created_at", "segment", "region", "email")
    }
    inter: dict[str, list] = {
        k: []
        for k in (
            "interaction_id",
            "person_id",
            "occurred_at",
            "touchpoint",
            "channel",
            "outcome",
            "value",
        )
    }
    fb: dict[str, list] = {
        k: []
        for k in (
            "feedback_id",
            "person_id",
            "occurred_at",
            "interaction_id",
            "source",
            "expectation",
            "experience",
        )
    }
    for i in range(N):
        pid = f"c{i:03d}"
        seg = ["consumer", "business"][i % 2]
        early = i % 2 == 0
        created = (
            START - timedelta(days=int(rng.integers(30, 700)))
            if early
            else (START + timedelta(days=int(rng.integers(0, 200))))
        )
        people["person_id"].append(pid)
        people["kind"].append("customer")
        people["created_at"].append(created)
        people["segment"].append(seg)
        people["region"].append(["north", "south"][(i // 2) % 2])
        people["email"].append(f"{pid}@example.com")
        t = max(created, START) + timedelta(days=1)
        gap = 0.0
        k = 0
        mood = rng.normal(0, 1.5)  # some customers are served worse than others, lastingly
        while t < END:
            iid = f"{pid}-s{k}"
            inter["interaction_id"].append(iid)
            inter["person_id"].append(pid)
            inter["occurred_at"].append(t)
            inter["touchpoint"].append("support_call")
            inter["channel"].append("voice")
            inter["outcome"].append("resolved")
            inter["value"].append(None)
            if rng.random() < 0.6:
                expectation = float(rng.integers(5, 10))
                experience = float(np.clip(expectation + mood + rng.normal(0, 1), 0, 10).round())
                gap = experience - expectation
                fb["feedback_id"].append(f"{iid}-f")
                fb["person_id"].append(pid)
                fb["occurred_at"].append(t + timedelta(hours=2))
                fb["interaction_id"].append(iid)
                fb["source"].append("survey")
                fb["expectation"].append(expectation)
                fb["experience"].append(experience)
            if k % 2 == 0:
                inter["interaction_id"].append(f"{pid}-b{k}")
                inter["person_id"].append(pid)
                inter["occurred_at"].append(t + timedelta(days=3))
                inter["touchpoint"].append("checkout")
                inter["channel"].append("web")
                inter["outcome"].append("purchase" if rng.random() < 0.7 else "abandon")
                inter["value"].append(
                    float(round(rng.gamma(4, 25 if seg == "consumer" else 60), 2))
                )
            k += 1
            hazard = 1 / (1 + np.exp(3.5 + 0.8 * gap))
            if rng.random() < hazard:
                inter["interaction_id"].append(f"{pid}-x")
                inter["person_id"].append(pid)
                inter["occurred_at"].append(t + timedelta(days=10))
                inter["touchpoint"].append("support_call")
                inter["channel"].append("voice")
                inter["outcome"].append("cancel")
                inter["value"].append(None)
                break
            t += timedelta(days=30)
    for j, pid in enumerate(["q1", "q2"]):
        people["person_id"].append(pid)
        people["kind"].append("prospect")
        people["created_at"].append(START)
        people["segment"].append("consumer")
        people["region"].append("north")
        people["email"].append(f"{pid}@example.com")
        inter["interaction_id"].append(f"{pid}-ad")
        inter["person_id"].append(pid)
        inter["occurred_at"].append(START + timedelta(days=5 + j))
        inter["touchpoint"].append("ad_click")
        inter["channel"].append("web")
        inter["outcome"].append(None)
        inter["value"].append(None)
    return {
        "people": pa.table({**people, "created_at": _ts(people["created_at"])}),
        "interactions": pa.table(
            {
                **inter,
                "occurred_at": _ts(inter["occurred_at"]),
                "value": pa.array(inter["value"], pa.float64()),
            }
        ),
        "feedback": pa.table(
            {
                **fb,
                "occurred_at": _ts(fb["occurred_at"]),
                "expectation": pa.array(fb["expectation"], pa.float64()),
                "experience": pa.array(fb["experience"], pa.float64()),
            }
        ),
    }


def _merge_records() -> dict[str, pa.Table]:
    """A second record for customer c000 (same e-mail) with one purchase of its own."""
    return {
        "people": pa.table(
            {
                "person_id": ["c000-web"],
                "kind": ["customer"],
                "segment": ["consumer"],
                "email": ["c000@example.com"],
            }
        ),
        "interactions": pa.table(
            {
                "interaction_id": ["m1"],
                "person_id": ["c000-web"],
                "occurred_at": _ts([START + timedelta(days=40, hours=1)]),
                "touchpoint": ["checkout"],
                "channel": ["web"],
                "outcome": ["purchase"],
                "value": pa.array([99.0], pa.float64()),
            }
        ),
    }


def _load(ingestor: Ingestor) -> dict[str, pa.Table]:
    data = company()
    for kind in ("people", "interactions", "feedback"):
        report = ingestor.ingest(kind, data[kind])
        assert report.rejected == 0, report.as_dict(max_errors=5)
    extra = _merge_records()
    for kind in ("people", "interactions"):
        assert ingestor.ingest(kind, extra[kind]).rejected == 0
    return data


@pytest.fixture(scope="module", params=ENGINES)
def loaded(request, tmp_path_factory):
    """One company per engine, loaded once for the module's read-only tests."""
    url = make_store_url(request.param, tmp_path_factory.mktemp("churn"), request)
    store = open_store(url)
    ingestor = Ingestor(store)
    ingestor.load_map(CorridorMap.from_dict(SMALL_MAP))
    data = _load(ingestor)
    yield store, data
    ingestor.close()
    store.close()


def _reference_people(data: dict[str, pa.Table]) -> pd.DataFrame:
    """Durations and events from the raw records in plain pandas (the module docstring's
    definitions), without the merged record."""
    p = data["people"].to_pandas()
    i = data["interactions"].to_pandas()
    obs = i["occurred_at"].min()
    as_of = i["occurred_at"].max()
    p = p[p["kind"] == "customer"].set_index("person_id")
    g = i.groupby("person_id")["occurred_at"]
    first = g.min().reindex(p.index)
    churn = i[i["outcome"] == "cancel"].groupby("person_id")["occurred_at"].min()
    churn = churn.reindex(p.index)
    start = np.minimum(p["created_at"], first)
    end = churn.fillna(as_of)
    month = pd.Timedelta(days=MONTH_DAYS)
    return pd.DataFrame(
        {
            "tenure": (end - start) / month,
            "entry": np.maximum((obs - start) / month, 0.0),
            "event": churn.notna().astype(int),
            "segment": p["segment"],
        }
    )


def test_customer_table_follows_its_definitions(loaded):
    store, data = loaded
    ct = customer_table(store)
    people = ct.people.set_index("person_id")
    ref = _reference_people(data)
    assert set(people.index) == set(ref.index)  # no prospects; the merged record folded in
    assert "c000-web" not in people.index and "q1" not in people.index
    both = people.join(ref, rsuffix="_ref")
    assert both["tenure"].to_numpy() == pytest.approx(both["tenure_ref"].to_numpy(), abs=1e-6)
    assert both["entry"].to_numpy() == pytest.approx(both["entry_ref"].to_numpy(), abs=1e-6)
    assert (both["event"] == both["event_ref"]).all()
    assert people.loc["c000", "n_interactions"] == int(
        (data["interactions"].to_pandas()["person_id"] == "c000").sum() + 1
    )
    # feedback after a churn never counts; ratings are support calls only
    assert list(ct.rated.columns) == ["support_call"]
    assert int(ct.rated.to_numpy().sum()) == data["feedback"].num_rows


def test_survival_table_matches_kaplan_meier_on_the_raw_records(loaded):
    store, data = loaded
    result = survival_table(store, by="segment")
    ref = _reference_people(data)
    for seg, rows in result.frame.groupby("segment"):
        sel = ref[ref["segment"] == seg]
        curve = kaplan_meier(sel["tenure"], sel["event"], sel["entry"])
        at = survival_at(curve, rows["month"].tolist())
        assert rows["survival"].to_numpy() == pytest.approx(at["survival"].to_numpy(), abs=1e-9)
        assert (rows["survival_low"] <= rows["survival"]).all()
        assert (rows["survival"] <= rows["survival_high"]).all()
        assert (rows["customers"] == len(sel)).all()
    assert result.n == N
    assert result.test["test"] == "log-rank" and result.test["df"] == 1
    assert 0 <= result.test["p_value"] <= 1
    meta = result.metadata()
    assert meta["test"]["groups"] == 2 and meta["query"]["by"] == ["segment"]
    whole = survival_table(store, by=None)
    assert whole.frame.columns[0] == "month" and whole.test["p_value"] is None


def test_cox_recovers_the_planted_support_call_effect(loaded):
    """Churn hazard planted as logit −3.5 − 0.8 × latest support-call gap: the Cox model on the
    time-varying latest gap finds a hazard ratio well below 1."""
    store, _ = loaded
    result = cox_table(store, min_rated=10)
    row = result.frame.set_index("touchpoint").loc["support_call"]
    assert row["hazard_ratio_high"] < 0.8 and row["p_value"] < 1e-4
    assert row["coef"] < 0 and row["hazard_ratio_low"] < row["hazard_ratio"]
    assert result.model["events"] > 30 and 0.5 < result.model["concordance"] <= 1
    assert result.n == N and result.model["episodes"] > N
    assert 0 <= result.model["ph_global_p_value"] <= 1


def test_risk_table_ranks_the_customers_it_should(loaded):
    store, _ = loaded
    result = risk_table(store, horizon_months=3, min_rated=10)
    f = result.frame
    assert (np.diff(f["risk"].to_numpy()) <= 0).all()
    assert ((f["risk_low"] <= f["risk"]) & (f["risk"] <= f["risk_high"])).all()
    assert result.model["coefficients"]["gap:support_call"] < 0
    assert result.model["cv_auc"] > 0.6
    ct = customer_table(store)
    active = ct.people[ct.people["event"] == 0]
    assert set(f["person_id"]) == set(active["person_id"])
    top = risk_table(store, horizon_months=3, min_rated=10, limit=5)
    # a limit explains only the rows it keeps: the same rows, reasons and contributions
    pd.testing.assert_frame_equal(top.frame, f.head(5))
    assert result.contributions is not None and top.contributions is not None
    pd.testing.assert_frame_equal(top.contributions, result.contributions.head(5))
    # the riskiest customers' first reason is their bad latest support call
    assert top.frame["reasons"].str.contains("support_call").all()


def test_a_large_training_set_is_sampled_and_says_so(loaded, monkeypatch):
    """Above TRAIN_MAX training customers the model is fitted on a seeded sample stratified by
    churn (same draw every time, whatever order the engine returns rows in); every active
    customer is still scored, and the result says it was a sample."""
    from corridor.analytics.customers import churn_risk

    store, _ = loaded
    full = risk_table(store, horizon_months=3, min_rated=10)
    eligible = full.model["training_customers"]
    assert full.model["training_sample"] is None and "sample" not in full.method
    monkeypatch.setattr(churn_risk, "TRAIN_MAX", eligible // 2)
    one = risk_table(store, horizon_months=3, min_rated=10)
    assert one.model["training_customers"] == pytest.approx(eligible // 2, abs=1)
    share = full.model["training_churners"] / eligible
    assert one.model["training_churners"] / one.model["training_customers"] == pytest.approx(
        share, abs=0.01
    )
    assert f"of the {eligible:,} customers" in one.model["training_sample"]
    assert "seeded sample" in one.method
    assert set(one.frame["person_id"]) == set(full.frame["person_id"])  # all scored
    again = risk_table(store, horizon_months=3, min_rated=10)
    pd.testing.assert_frame_equal(again.frame, one.frame)
    # drawn from person-id order: the engine's row order does not change the draw
    train = pd.DataFrame({"person_id": [f"p{i:03d}" for i in range(200)]})
    label = np.array([i % 5 == 0 for i in range(200)], int)
    a, la = churn_risk._sample(train, label, 60)
    shuffled = train.sample(frac=1, random_state=3)
    b, lb = churn_risk._sample(shuffled.reset_index(drop=True), label[shuffled.index], 60)
    assert list(a["person_id"]) == list(b["person_id"]) and (la == lb).all()
    assert len(a) == 60 and la.sum() == 12


def test_person_risk_for_active_churned_merged_and_unknown(loaded):
    store, _ = loaded
    table = risk_table(store, horizon_months=3)
    first = table.frame.iloc[0]
    models = FittedModels()  # as the app asks: the model fitted once for the four people
    one = person_risk(store, first["person_id"], models=models)
    assert one["status"] == "active"
    assert one["risk"] == pytest.approx(first["risk"])
    assert one["risk_low"] <= one["risk"] <= one["risk_high"]
    assert one["reasons"] and all(r["log_odds"] > 0 for r in one["reasons"])
    ct = customer_table(store).people
    churned = ct[ct["event"] == 1]["person_id"].iloc[0]
    assert person_risk(store, churned, models=models)["status"] == "churned"
    assert person_risk(store, "nobody", models=models)["status"] == "unknown"
    merged = person_risk(store, "c000-web", models=models)
    assert merged["canonical_id"] == "c000"


def test_buyers_summary_counts_purchase_days(loaded):
    store, data = loaded
    b = buyers(store).frame.set_index("person_id")
    i = data["interactions"].to_pandas()
    buys = i[(i["outcome"] == "purchase") & (i["person_id"] == "c001")]
    days = buys["occurred_at"].dt.floor("D")
    row = b.loc["c001"]
    assert row["frequency"] == days.nunique() - 1
    assert row["recency"] == pytest.approx((days.max() - days.min()).days / 7)
    as_of = i["occurred_at"].max().floor("D")
    assert row["T"] == pytest.approx((as_of - days.min()).days / 7)
    repeat = buys.sort_values("occurred_at").iloc[1:]
    assert row["monetary"] == pytest.approx(repeat["value"].mean())
    # c000's merged record's purchase counts for c000
    own = i[(i["outcome"] == "purchase") & (i["person_id"] == "c000")]
    assert b.loc["c000", "frequency"] == own["occurred_at"].dt.floor("D").nunique()
    assert "q1" not in b.index


def test_lifetime_params_and_people(loaded):
    store, _ = loaded
    params = lifetime_params(store)
    f = params.frame
    assert list(f["parameter"]) == ["r", "alpha", "a", "b", "p", "q", "gamma"]
    assert (f["estimate"] > 0).all()
    assert params.model["buyers"] == params.n > 300
    people = lifetime_table(store, horizon_months=6, limit=10)
    p = people.frame
    assert len(p) == 10 and (np.diff(p["clv"].to_numpy()) <= 0).all()
    assert ((p["p_alive"] >= 0) & (p["p_alive"] <= 1)).all()
    # regular buyers without drop-outs push BG/NBD to its Poisson limit: the figures stay
    # finite, and the missing intervals are flagged
    assert np.isfinite(p[["expected_purchases", "clv"]].to_numpy()).all()
    assert isinstance(people.model["intervals_available"], bool)
    one = person_value(store, p["person_id"].iloc[0], horizon_months=6)
    assert one["status"] == "buyer"
    assert one["clv"] == pytest.approx(p["clv"].iloc[0], rel=1e-9)
    assert person_value(store, "q1")["status"] == "no_purchases"
    business = lifetime_table(store, filters={"segment": "business"})
    assert set(business.frame["segment"]) == {"business"}


def test_bad_requests_say_what_is_allowed(loaded):
    store, _ = loaded
    with pytest.raises(AnalyticsQueryError, match="allowed: segment, region"):
        survival_table(store, filters={"source": "survey"})
    with pytest.raises(AnalyticsQueryError, match="group by one of segment, region"):
        survival_table(store, by="channel")
    with pytest.raises(AnalyticsQueryError, match="horizon_months"):
        risk_table(store, horizon_months=0)
    with pytest.raises(AnalyticsQueryError, match="discount_monthly"):
        lifetime_table(store, discount_monthly=1.5)
    with pytest.raises(AnalyticsQueryError, match="no touch point"):
        cox_table(store, min_rated=10_000)


def test_interaction_filters_select_customers_who_had_one(loaded):
    store, data = loaded
    web = customer_table(store, filters={"channel": "web"}).people
    i = data["interactions"].to_pandas()
    had = set(i[(i["channel"] == "web")]["person_id"]) - {"q1", "q2"}
    assert set(web["person_id"]) == had | {"c000"}
    dept = customer_table(store, filters={"department": "logistics"}).people
    assert dept.empty


def test_api_routes(loaded):
    from corridor.api.app import create_app
    from corridor.settings import Settings

    store, _ = loaded
    with TestClient(create_app(Settings(auth="off"), store=store)) as c:
        r = c.get("/api/v1/churn/survival", params={"by": "region", "segment": "consumer"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["analysis"] == "churn_survival" and body["test"]["test"] == "log-rank"
        assert {row["region"] for row in body["rows"]} == {"north", "south"}
        assert body["query"]["filters"] == {"segment": ["consumer"]}
        r = c.get("/api/v1/churn/cox", params={"min_rated": 10})
        assert r.status_code == 200, r.text
        assert r.json()["rows"][0]["touchpoint"] == "support_call"
        r = c.get("/api/v1/churn/risk", params={"limit": 3})
        assert r.status_code == 200 and len(r.json()["rows"]) == 3
        pid = r.json()["rows"][0]["person_id"]
        one = c.get(f"/api/v1/churn/risk/{pid}").json()
        assert one["status"] == "active" and one["person_id"] == pid
        assert c.get("/api/v1/lifetime").json()["rows"][0]["parameter"] == "r"
        r = c.get("/api/v1/lifetime/people", params={"limit": 2, "horizon_months": 6})
        assert r.status_code == 200 and len(r.json()["rows"]) == 2
        pid = r.json()["rows"][0]["person_id"]
        assert c.get(f"/api/v1/lifetime/people/{pid}").json()["status"] == "buyer"
        bad = c.get("/api/v1/churn/survival", params={"colour": "red"})
        assert bad.status_code == 422
        assert bad.json()["error"]["code"] == "invalid_query"
        assert "allowed" in bad.json()["error"]["message"]
        bad = c.get("/api/v1/churn/risk", params={"horizon_months": "soon"})
        assert bad.status_code == 422 and "not a number" in bad.json()["error"]["message"]


@pytest.mark.slow  # ~10 s: loads its own company (the CLI opens the store itself)
def test_cli_commands(ingestor, store_url):
    from corridor.cli import app

    _load(ingestor)
    ingestor.store.close()  # the CLI opens the store itself
    run = CliRunner().invoke
    r = run(
        app, ["churn", "survival", "--store", store_url, "--format", "json"], catch_exceptions=False
    )
    assert r.exit_code == 0, r.output
    body = json.loads(r.output)
    assert body["n"] == N and body["rows"][0]["segment"] == "business"
    r = run(app, ["churn", "survival", "--store", store_url])
    assert r.exit_code == 0 and "log-rank: chi2 = " in " ".join(r.output.split())
    r = run(app, ["churn", "cox", "--min-rated", "10", "--store", store_url])
    assert r.exit_code == 0, r.output
    shown = " ".join(r.output.split())
    assert "concordance" in shown and "hazard ratio per point of gap" in shown
    r = run(app, ["churn", "cox", "--min-rated", "10", "--format", "json", "--store", store_url])
    assert json.loads(r.output)["rows"][0]["touchpoint"] == "support_call"
    r = run(app, ["churn", "risk", "--limit", "2", "--format", "csv", "--store", store_url])
    assert r.exit_code == 0 and len(r.output.strip().splitlines()) == 3
    r = run(app, ["churn", "risk", "--store", store_url, "--format", "json"])
    assert r.exit_code == 0 and len(json.loads(r.output)["rows"]) == 100  # the one default
    r = run(
        app,
        ["lifetime", "people", "--limit", "3", "--format", "json", "--store", store_url],
    )
    assert r.exit_code == 0 and len(json.loads(r.output)["rows"]) == 3
    r = run(app, ["lifetime", "person", "c001", "--format", "json", "--store", store_url])
    assert r.exit_code == 0 and json.loads(r.output)["status"] == "buyer"
    r = run(app, ["churn", "person", "c001", "--format", "json", "--store", store_url])
    assert r.exit_code == 0 and json.loads(r.output)["person_id"] == "c001"
    r = run(app, ["churn", "pie", "--store", store_url])
    assert r.exit_code != 0 and "pie" in r.output


def test_person_accessors_never_fail_a_page_for_lack_of_data(ingestor):
    """A store with two customers cannot support the models: the per-person accessors say so
    (status unavailable, with the reason) instead of raising."""
    ingestor.ingest(
        "interactions",
        pa.table(
            {
                "interaction_id": ["a1", "a2", "b1"],
                "person_id": ["a", "a", "b"],
                "occurred_at": _ts([START, START + timedelta(days=40), START]),
                "touchpoint": ["checkout", "checkout", "support_call"],
                "channel": ["web", "web", "voice"],
                "outcome": ["purchase", "purchase", "cancel"],
                "value": pa.array([10.0, 20.0, None], pa.float64()),
            }
        ),
    )
    store = ingestor.store
    risk = person_risk(store, "a")
    assert risk["status"] == "unavailable" and "horizon" in risk["reason"]
    assert person_risk(store, "b")["status"] == "churned"
    value = person_value(store, "a")
    assert value["status"] == "unavailable" and "buyers" in value["reason"]
    with pytest.raises(AnalyticsQueryError, match="horizon_months"):
        person_risk(store, "a", horizon_months=-1)


def test_an_empty_store_is_answered_not_crashed(store):
    assert customer_table(store).people.empty
    assert person_risk(store, "x")["status"] == "unavailable"
    assert person_value(store, "x")["status"] == "unavailable"
    with pytest.raises(AnalyticsQueryError, match="no customers"):
        risk_table(store)
    assert survival_table(store).n == 0


def test_scoped_roles_get_a_customers_risk_without_the_reasons(loaded):
    """Issue 11.9: the risk model is fitted company-wide, so its reasons count records of every
    department; a department head gets the score and interval of a customer in their scope,
    not the reasons, and nothing about a customer outside it (404, as for an unknown id)."""
    import uuid

    from corridor.auth import accounts
    from corridor.settings import Settings

    store, _ = loaded
    with TestClient(create_app(Settings(auth="off"), store=store)) as c:
        pid = c.get("/api/v1/churn/risk", params={"limit": 1}).json()["rows"][0]["person_id"]
        full = c.get(f"/api/v1/churn/risk/{pid}").json()
    assert full["status"] == "active" and full["reasons"]
    depts = {
        r[0]
        for r in store.query(
            "SELECT DISTINCT t.department FROM interactions i JOIN touchpoints t "
            "ON t.key = i.touchpoint WHERE i.person_id IN "
            "(SELECT person_id FROM people WHERE canonical_id = ?)",
            (full["canonical_id"],),
        )
    }
    other = sorted({"marketing", "ecommerce", "logistics", "service"} - depts)
    tag = uuid.uuid4().hex[:6]
    inside, outside = f"in-{tag}", f"out-{tag}"
    accounts.add_user(store, inside, "a long password", "department_head", department=min(depts))
    _, key_in = accounts.create_key(store, inside)
    with TestClient(create_app(Settings(), store=store)) as c:
        mine = c.get(f"/api/v1/churn/risk/{pid}", headers={"x-api-key": key_in}).json()
        assert mine["risk"] == full["risk"] and mine["risk_low"] == full["risk_low"]
        assert "reasons" not in mine and "summary" not in mine and mine["reasons_withheld"]
        if other:
            accounts.add_user(
                store, outside, "a long password", "department_head", department=other[0]
            )
            _, key_out = accounts.create_key(store, outside)
            r = c.get(f"/api/v1/churn/risk/{pid}", headers={"x-api-key": key_out})
            assert r.status_code == 404 and str(full["risk"]) not in r.text


def test_the_risk_table_shows_scoped_roles_no_reasons(loaded):
    """Issue 11.9, the same rule on the table: a department head's rows carry no reasons."""
    import uuid

    from corridor.auth import accounts
    from corridor.settings import Settings

    store, _ = loaded
    name = f"head-{uuid.uuid4().hex[:6]}"
    accounts.add_user(store, name, "a long password", "department_head", department="service")
    _, key = accounts.create_key(store, name)
    with TestClient(create_app(Settings(), store=store)) as c:
        r = c.get("/api/v1/churn/risk", params={"limit": 5}, headers={"x-api-key": key})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["rows"] and all("reasons" not in row for row in body["rows"])
    assert "score and its interval only" in body["reasons_withheld"]


def test_scoped_models_read_the_departments_own_touch_points(loaded):
    """Issue 12: the declared scope rules. A department head's Cox model and risk model read
    their own touch points' gaps only; a driver selection naming another department's touch
    point is refused (403), as a filter naming it would be."""
    import uuid

    from corridor.auth import accounts
    from corridor.settings import Settings

    store, _ = loaded
    name = f"svc-{uuid.uuid4().hex[:6]}"
    accounts.add_user(store, name, "a long password", "department_head", department="service")
    _, key = accounts.create_key(store, name)
    head = {"x-api-key": key}
    with TestClient(create_app(Settings(), store=store)) as c:
        r = c.get("/api/v1/churn/cox", params={"min_rated": 10}, headers=head)
        assert r.status_code == 200, r.text
        assert {row["touchpoint"] for row in r.json()["rows"]} == {"support_call"}
        r = c.get("/api/v1/churn/risk", params={"limit": 2, "min_rated": 10}, headers=head)
        assert r.status_code == 200, r.text
        assert r.json()["model"]["touchpoints"] == ["support_call"]
        r = c.get("/api/v1/drivers", params={"select": "checkout"}, headers=head)
        assert r.status_code == 403, r.text
        r = c.get("/api/v1/drivers", params={"drivers": "facet", "select": "csat"}, headers=head)
        assert r.status_code != 403, r.text


def test_person_routes_document_and_check_their_parameters(loaded):
    """The per-person routes: typed, bounded query parameters and their answer's schema in
    /openapi.json; values out of bounds and unknown parameters are refused (422)."""
    from corridor.settings import Settings

    store, _ = loaded
    with TestClient(create_app(Settings(auth="off"), store=store)) as c:
        spec = c.get("/openapi.json").json()
        for path, params, model in (
            ("/api/v1/churn/risk/{person_id}", {"horizon_months"}, "PersonChurnRisk"),
            (
                "/api/v1/lifetime/people/{person_id}",
                {"horizon_months", "discount_monthly"},
                "PersonLifetimeValue",
            ),
        ):
            op = spec["paths"][path]["get"]
            query = {p["name"]: p for p in op["parameters"] if p["in"] == "query"}
            assert set(query) == params
            assert all(p["description"] and "default" in p["schema"] for p in query.values())
            ok = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
            assert ok.endswith(f"/{model}")
            assert "status" in spec["components"]["schemas"][model]["properties"]
        risk = spec["paths"]["/api/v1/churn/risk/{person_id}"]["get"]["parameters"]
        horizon = next(p for p in risk if p["name"] == "horizon_months")["schema"]
        assert (horizon["exclusiveMinimum"], horizon["maximum"]) == (0, 24)
        assert c.get("/api/v1/churn/risk/c001", params={"horizon_months": 30}).status_code == 422
        r = c.get("/api/v1/lifetime/people/c001", params={"discount_monthly": 1})
        assert r.status_code == 422
        r = c.get("/api/v1/churn/risk/c001", params={"colour": "red"})
        assert r.status_code == 422 and "allowed: horizon_months" in r.json()["error"]["message"]
