"""The fitted churn-risk and lifetime models are kept by an object their owner holds (the app's
``app.state.models``), never by a module: kept per fingerprint of their inputs, refitted when any
input changes (a profile update of known people included), and fitted per call without one."""

from __future__ import annotations

import re
import threading
import time

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from corridor.analytics.customers import churn_risk, lifetime
from corridor.analytics.customers.churn_risk import person_risk
from corridor.analytics.customers.lifetime import person_value
from corridor.analytics.customers.models import (
    CHURN_RISK,
    LIFETIME,
    FittedModels,
    ModelState,
    store_state,
)
from corridor.api.app import create_app
from corridor.settings import Settings
from corridor.web.models import refresher
from test_churn import _load


@pytest.fixture
def company(ingestor, store):
    _load(ingestor)
    return store


@pytest.fixture
def fits(monkeypatch) -> dict[str, int]:
    """How many times each model was fitted (the real fits, counted)."""
    counts = {"risk": 0, "value": 0}

    def counted(name: str, fit):  # type: ignore[no-untyped-def]
        def run(*args, **kwargs):  # type: ignore[no-untyped-def]
            counts[name] += 1
            return fit(*args, **kwargs)

        return run

    monkeypatch.setattr(churn_risk, "_score", counted("risk", churn_risk._score))
    monkeypatch.setattr(lifetime, "fit_lifetime", counted("value", lifetime.fit_lifetime))
    return counts


def test_models_are_kept_until_an_input_changes_and_a_profile_update_is_one(
    company, ingestor, fits
):
    models = FittedModels()
    first = person_risk(company, "c003", models=models)
    assert person_risk(company, "c003", models=models) == first
    assert person_risk(company, "c005", models=models)["person_id"] == "c005"
    assert fits["risk"] == 1  # one fit served all three
    value = person_value(company, "c001", models=models)
    assert value["status"] == "buyer" and value["segment"] == "business"
    assert person_value(company, "c001", models=models) == value
    assert fits["value"] == 1
    kept = models.latest(CHURN_RISK)
    assert kept is not None and kept[0][:-1] == store_state(company)

    # A profile update of a known person, re-sent with the same id: no record is added, no
    # count or latest time of the records moves; the store's change markers do.
    before = store_state(company)
    report = ingestor.ingest(
        "people", pa.table({"person_id": ["c001"], "kind": ["customer"], "segment": ["consumer"]})
    )
    assert report.rejected == 0
    after = store_state(company)
    assert after != before
    assert after[:5] == before[:5]  # the record counts and times alone would have missed it

    # pages that never fit still see the kept models, however old
    assert person_value(company, "c001", models=models, refit=False)["segment"] == "business"
    assert person_risk(company, "c003", models=models, refit=False) == first
    assert fits == {"risk": 1, "value": 1}
    # the next call that may fit does, once
    assert person_value(company, "c001", models=models)["segment"] == "consumer"
    assert person_risk(company, "c003", models=models)["status"] == first["status"]
    assert person_risk(company, "c003", models=models)["status"] == first["status"]
    assert fits == {"risk": 2, "value": 2}
    assert models.latest(LIFETIME) is not None


def test_another_horizon_never_evicts_the_default_model(company, fits):
    """Any signed-in role may ask one customer's risk for another horizon; that fit is kept in
    a slot of its own, so it neither throws away the model pages read (they would show pending
    until the next background fit) nor reaches the listeners, and however many horizons are
    asked at most one extra model is held."""
    models = FittedModels()
    heard: list[float] = []
    models.on_fitted(CHURN_RISK, lambda key, _model: heard.append(key[-1]))
    default = person_risk(company, "c003", models=models)
    for months in (1.0, 2.0, 1.0):
        assert person_risk(company, "c003", months, models=models)["horizon_months"] == months
    assert fits["risk"] == 4  # the default, then each change of the other horizon
    assert person_risk(company, "c003", models=models, refit=False) == default
    assert person_risk(company, "c003", models=models) == default and fits["risk"] == 4
    assert heard == [3.0]  # the churn-jump listener heard the default fit only
    assert models.latest(CHURN_RISK)[0][-1] == 3.0  # type: ignore[index]
    assert models.latest(f"{CHURN_RISK}:other")[0][-1] == 1.0  # type: ignore[index]
    value = person_value(company, "c001", models=models)
    assert person_value(company, "c001", 6.0, models=models)["horizon_months"] == 6.0
    assert person_value(company, "c001", models=models, refit=False) == value
    assert fits["value"] == 2


def test_without_models_every_call_fits_and_nothing_is_kept(company, fits):
    a = person_risk(company, "c003")
    assert person_risk(company, "c003") == a
    assert fits["risk"] == 2
    assert person_value(company, "c001")["status"] == "buyer"
    assert fits["value"] == 1
    # refit=False has no model to read without models: pending, as before a first fit
    assert person_risk(company, "c003", refit=False)["status"] == "pending"
    assert person_value(company, "c001", refit=False)["status"] == "pending"
    # and no module keeps a model on the side
    for module in (churn_risk, lifetime):
        assert not {"_cache", "_cache_lock", "_lock"} & set(vars(module)), module.__name__


def test_each_app_owns_its_models(company, fits):
    one = create_app(Settings(auth="off", model_refresh="on_request"), store=company)
    two = create_app(Settings(auth="off", model_refresh="on_request"), store=company)
    assert isinstance(one.state.models, FittedModels)
    assert one.state.models is not two.state.models
    with TestClient(one) as client:
        r = client.get("/customers/c003")
        assert r.status_code == 200, r.text
        assert fits == {"risk": 1, "value": 1}
        assert client.get("/customers/c001").status_code == 200
        assert fits == {"risk": 1, "value": 1}  # kept in the app's models
    assert one.state.models.latest(CHURN_RISK) is not None
    assert two.state.models.latest(CHURN_RISK) is None


def test_concurrent_callers_share_one_fit():
    models = FittedModels()
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def fit() -> str:
        calls.append(1)
        started.set()
        release.wait(10)
        return "model"

    got: list[str] = []
    threads = [
        threading.Thread(target=lambda: got.append(models.fitted("m", ("k",), fit)))
        for _ in range(3)
    ]
    threads[0].start()
    assert started.wait(10)
    for t in threads[1:]:
        t.start()
    assert models.latest("m") is None  # the fit is not done: nothing kept yet
    release.set()
    for t in threads:
        t.join(10)
    assert got == ["model"] * 3 and len(calls) == 1
    assert models.fitted("m", ("k2",), lambda: "newer") == "newer"  # another key: a new fit
    assert models.latest("m") == (("k2",), "newer")


def test_the_state_says_when_a_fit_should_be_done():
    """Each model's state: when its fit started, how long the previous one took, and when the
    one in progress should be done — after the models before it in the fitter's round; before
    any fit has been timed, from the fitter's estimate."""
    now = [1000.0]
    models = FittedModels(clock=lambda: now[0])
    assert models.state("a").status == "not_fitted" and models.state("a").ready_in_s is None
    seen: dict[str, ModelState] = {}

    def fit_a() -> str:
        now[0] += 6  # a takes 6 s where 10 were expected
        seen["a"], seen["b"] = models.state("a"), models.state("b")
        return "A"

    def fit_b() -> str:
        seen["b waiting"] = models.state("b")
        now[0] += 10  # b overruns its 4 s
        seen["b late"] = models.state("b")
        return "B"

    with models.fitting_round([("a", 10.0), ("b", 4.0)]):
        a, b = models.state("a"), models.state("b")
        assert a.status == b.status == "fitting" and a.first_fit and b.first_fit
        assert (a.ready_in_s, b.ready_in_s) == (10.0, 14.0)  # b after a
        assert a.started_at is not None and a.started_at.timestamp() == 1000.0
        assert b.pending() == {"fitting_started_at": b.started_at.isoformat(), "ready_in_s": 14.0}
        models.fitted("a", ("k",), fit_a)
        models.fitted("b", ("k",), fit_b)
    assert seen["a"].ready_in_s == 4.0 and seen["b"].ready_in_s == 8.0
    assert seen["b waiting"].ready_in_s == 4.0
    assert seen["b late"].ready_in_s == 0.0  # overran: any moment now
    a, b = models.state("a"), models.state("b")
    assert (a.status, a.took_s, a.ready_in_s) == ("ready", 6.0, None)
    assert (b.status, b.took_s) == ("ready", 10.0)
    assert b.fitted_at is not None and b.fitted_at.timestamp() == 1016.0
    assert not b.first_fit and b.pending() == {}

    # the next round expects the times the last fits took, not the estimates
    with models.fitting_round([("a", 99.0), ("b", 99.0)]):
        assert (models.state("a").ready_in_s, models.state("b").ready_in_s) == (6.0, 16.0)
        assert not models.state("a").first_fit  # a model is kept meanwhile
        with pytest.raises(RuntimeError):
            models.fitted("a", ("k2",), _failing_fit)
    assert models.state("a").status == "failed" and models.latest("a") == (("k",), "A")
    assert "tried again" in models.state("a").pending()["reason"]
    assert models.state("b").status == "ready"  # its turn never came: nothing changed


def _failing_fit() -> str:
    raise RuntimeError("the fit failed")


@pytest.fixture
def blocked_fit(monkeypatch):
    """The churn model's fit waits until ``release`` is set (``started`` says it is waiting):
    a fit in progress for as long as a test needs, without sleeping."""
    started, release = threading.Event(), threading.Event()
    real = churn_risk._score

    def slow(*args, **kwargs):  # type: ignore[no-untyped-def]
        started.set()
        assert release.wait(120), "the test never released the fit"
        return real(*args, **kwargs)

    monkeypatch.setattr(churn_risk, "_score", slow)
    yield started, release
    release.set()  # whatever the test did, let the fitting thread finish


def _until(done, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 120  # a hang guard, not a timing assertion
    while not done():
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.05)


@pytest.mark.timeout(300)
def test_while_the_first_fit_runs_pages_and_api_say_when_it_will_be_done(company, blocked_fit):
    """Issue 13.4: a customer page said "being fitted … reload shortly" with no idea how long;
    it now says when the fit started and should be done, and reloads itself; the person API
    routes answer pending at once (never wait minutes for the fit) with ready_in_s and
    Retry-After; health lists each model's state."""
    started, release = blocked_fit
    app = create_app(Settings(auth="off"), store=company)  # model_refresh: background
    with TestClient(app) as client:
        refresher(app.state, company)
        assert started.wait(120)  # the churn fit is in progress, and stays so until released

        page = client.get("/customers/c003")
        assert page.status_code == 200, page.text
        text = " ".join(page.text.split())
        assert "The churn model is being fitted (started " in text
        assert "The lifetime models are being fitted (started " in text  # its turn is next
        assert re.search(r"; ready (in about \d+ (s|minutes?)|any moment now)\)", text)
        assert "This page reloads itself when it is." in text
        assert int(page.headers["Refresh"]) >= 1

        for path in ("/api/v1/churn/risk/c003", "/api/v1/lifetime/people/c001"):
            r = client.get(path)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["status"] == "pending", body
            assert body["ready_in_s"] >= 0 and body["fitting_started_at"]
            assert int(r.headers["Retry-After"]) >= 1

        models = client.get("/api/v1/health").json()["models"]
        assert models[CHURN_RISK]["status"] == models[LIFETIME]["status"] == "fitting"
        assert models[CHURN_RISK]["ready_in_s"] is not None
        assert models[CHURN_RISK]["fitted_at"] is None

        release.set()
        _until(lambda: app.state.models.state(LIFETIME).status == "ready", "fitted")

        page = client.get("/customers/c003")
        assert "being fitted" not in page.text and "Refresh" not in page.headers
        r = client.get("/api/v1/churn/risk/c003")
        assert r.json()["status"] != "pending" and "Retry-After" not in r.headers
        models = client.get("/api/v1/health").json()["models"]
        for name in (CHURN_RISK, LIFETIME):
            assert models[name]["status"] == "ready", models
            assert models[name]["took_s"] >= 0 and models[name]["fitted_at"]
            assert models[name]["ready_in_s"] is None


def test_the_pending_reply_and_its_header_are_documented(company):
    doc = create_app(Settings(auth="off"), store=company).openapi()
    schema = doc["components"]["schemas"]
    for reply, path in (
        ("PersonChurnRisk", "/api/v1/churn/risk/{person_id}"),
        ("PersonLifetimeValue", "/api/v1/lifetime/people/{person_id}"),
    ):
        assert {"ready_in_s", "fitting_started_at"} <= set(schema[reply]["properties"])
        assert "Retry-After" in doc["paths"][path]["get"]["responses"]["200"]["headers"]
    assert "models" in schema["Health"]["properties"]
