"""``corridor demo`` serves its models from the start; ``corridor serve`` starts serving at once
and fits them in the background right away (issue 13.4: the demo's customer pages said "being
fitted" for minutes after it started)."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from corridor.analytics.customers import churn_risk
from corridor.analytics.customers.models import CHURN_RISK, LIFETIME
from corridor.cli import app
from corridor.cli.serve import _start_up
from corridor.settings import Settings
from corridor.store import open_store


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small simulated company made by ``corridor demo --no-serve``."""
    url = f"duckdb:///{tmp_path_factory.mktemp('demo') / 'corridor.duckdb'}"
    args = ["demo", "--no-serve", "--customers", "300", "--months", "6", "--store", url]
    made = CliRunner().invoke(app, args, catch_exceptions=False)
    assert made.exit_code == 0, made.output
    return url


def _a_customer(url: str) -> str:
    with open_store(url) as s:
        rows = s.query(
            "SELECT person_id FROM interactions WHERE outcome = 'purchase' "
            "GROUP BY person_id ORDER BY count(*) DESC, person_id LIMIT 1"
        )
    return str(rows[0][0])


@pytest.mark.timeout(300)
def test_the_demo_fits_the_models_before_it_serves(demo_store, capsys):
    person = _a_customer(demo_store)
    application = _start_up(Settings(store_url=demo_store, auth="off"), fit_first=True)
    models = application.state.models
    # serving has not begun, and both models are ready: the first page shows the numbers
    for name in (CHURN_RISK, LIFETIME):
        state = models.state(name)
        assert state.status == "ready" and state.took_s is not None, (name, state)
    assert "churn and lifetime models fitted in" in capsys.readouterr().out
    with TestClient(application) as client:
        page = client.get(f"/customers/{person}")
        assert page.status_code == 200, page.text
        assert "being fitted" not in page.text and "Refresh" not in page.headers
        for path in (f"/api/v1/churn/risk/{person}", f"/api/v1/lifetime/people/{person}"):
            assert client.get(path).json()["status"] != "pending"


@pytest.mark.timeout(300)
def test_serve_starts_at_once_and_fits_in_the_background_right_away(demo_store, monkeypatch):
    started, release = threading.Event(), threading.Event()
    real = churn_risk._score

    def slow(*args, **kwargs):  # type: ignore[no-untyped-def]
        started.set()
        assert release.wait(120), "the test never released the fit"
        return real(*args, **kwargs)

    monkeypatch.setattr(churn_risk, "_score", slow)
    try:
        # returns while the fit is held: start-up never waits for it
        application = _start_up(Settings(store_url=demo_store, auth="off"))
        # and the fit began without any page asking for it
        assert started.wait(120)
        assert application.state.models.state(CHURN_RISK).status == "fitting"
    finally:
        release.set()
    deadline = time.monotonic() + 120  # a hang guard, not a timing assertion
    while application.state.models.state(LIFETIME).status != "ready":
        assert time.monotonic() < deadline, application.state.model_refresher.last_error
        time.sleep(0.05)
    with TestClient(application):  # its shutdown stops the fitting thread and the store
        pass
