"""The fitted churn-risk and lifetime models are kept by an object their owner holds (the app's
``app.state.models``), never by a module: kept per fingerprint of their inputs, refitted when any
input changes (a profile update of known people included), and fitted per call without one."""

from __future__ import annotations

import threading

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from corridor.analytics.customers import churn_risk, lifetime
from corridor.analytics.customers.churn_risk import person_risk
from corridor.analytics.customers.lifetime import person_value
from corridor.analytics.customers.models import CHURN_RISK, LIFETIME, FittedModels, store_state
from corridor.api.app import create_app
from corridor.settings import Settings
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

    monkeypatch.setattr(churn_risk, "risk_table", counted("risk", churn_risk.risk_table))
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
