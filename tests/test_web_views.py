"""The pages' numbers are the analytics' numbers: the overview sums monthly sufficient
statistics to the window, which must equal the window queried directly (both engines)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from corridor.analytics.feedback.gaps import gap_table
from corridor.analytics.feedback.metrics import metric_table
from corridor.auth.scope import Principal, Role, Scope
from corridor.web import views


@pytest.fixture
def loaded(ingestor, store):
    n = 90
    tps = ["ad_click", "checkout", "home_delivery"]
    ingestor.ingest(
        "feedback",
        pa.table(
            {
                "feedback_id": [f"f{i}" for i in range(n)],
                "occurred_at": [f"2025-0{1 + i % 4}-{10 + i % 17}T08:00:00Z" for i in range(n)],
                "touchpoint": [tps[i % 3] for i in range(n)],
                "source": ["survey"] * n,
                "expectation": [5 + (i % 5) for i in range(n)],
                "experience": [(i * 7) % 11 for i in range(n)],
                "nps": [(i * 3) % 11 for i in range(n)],
                "csat": [1 + i % 5 for i in range(n)],
                "ces": [1 + i % 7 for i in range(n)],
            }
        ),
    )
    return store


@pytest.mark.parametrize("key", ["30d", "90d", "all"])
def test_overview_matches_gap_and_metric_tables(loaded, ingestor, key):
    win = views.window(loaded, key)
    scope = Scope.of(Principal("a", Role.ANALYST), ingestor.corridor_map)
    page = views.overview(loaded, scope, ingestor.corridor_map, win, None)
    direct = gap_table(loaded, by=["touchpoint"], since=win.since, until=win.until).frame
    cards = {c["key"]: c for s in page["stages"] for c in s["cards"]}
    assert page["n"] == int(direct["n"].sum()) > 0
    for row in direct.to_dict("records"):
        card = cards[row["touchpoint"]]
        assert card["n"] == row["n"]
        assert card["gap"] == pytest.approx(row["mean_gap"])
        assert card["low"] == pytest.approx(row["mean_gap_low"])
        assert card["high"] == pytest.approx(row["mean_gap_high"])
    metrics = metric_table(loaded, since=win.since, until=win.until).frame.iloc[0]
    nps = next(t for t in page["tiles"] if t["key"] == "nps")
    assert nps["n"] == metrics["nps_n"]
    assert nps["value"] == f"{metrics['nps']:+.0f}"


def test_windows_end_at_the_latest_feedback_day(loaded):
    win = views.window(loaded, "30d")
    assert win.until is not None and win.until.isoformat() == "2025-04-27T00:00:00+00:00"
    assert (win.until - win.since).days == 30
    assert views.window(loaded, "nonsense").key == views.DEFAULT_WINDOW


def test_customer_models_are_fitted_in_the_background(loaded, ingestor):
    """Pages never fit the churn and lifetime models: before the background refresher has run
    they say "pending"; the refresher fits into the app's models (reading through a backend of
    its own) and the page then reads them there."""
    import time
    from types import SimpleNamespace

    from corridor.analytics.customers.models import FittedModels
    from corridor.web import insights, models

    ingestor.ingest(
        "interactions",
        pa.table(
            {
                "interaction_id": [f"i{i}" for i in range(30)],
                "person_id": [f"p{i % 6}" for i in range(30)],
                "occurred_at": [f"2025-0{1 + i % 4}-1{i % 9}T12:00:00Z" for i in range(30)],
                "touchpoint": ["checkout"] * 30,
                "channel": ["web"] * 30,
                "outcome": ["purchase"] * 30,
                "value": [20.0 + i for i in range(30)],
            }
        ),
    )
    state = SimpleNamespace(models=FittedModels())
    before = insights.customer_outlook(loaded, "p1", models=state.models)
    assert before["risk"]["status"] == before["value"]["status"] == "pending"
    refresher = models.refresher(state, loaded)
    try:
        deadline = time.monotonic() + 120
        while (
            insights.customer_outlook(loaded, "p1", models=state.models)["value"]["status"]
            == "pending"
        ):
            assert time.monotonic() < deadline, refresher.last_error
            time.sleep(0.2)
        after = insights.customer_outlook(loaded, "p1", models=state.models)
        # a real answer from a fitted model (or the model's own reason it cannot fit yet)
        assert after["value"]["status"] in ("buyer", "unavailable")
        assert after["risk"]["status"] in ("active", "unavailable", "unknown")
        assert refresher.last_error is None
    finally:
        refresher.stop()


def test_partner_page_names_feedback_without_a_touch_point_and_customer_page_first_activity(
    loaded, ingestor
):
    """Issue 13.4: feedback with no touch point of its own nor an interaction's was listed on
    the partner page as a touch point called "None" (and compared with nothing, its filter
    read as the string 'None'); the customer page said "known to Corridor since" the import
    date instead of the customer's first interaction."""
    from corridor.analytics.feedback.gaps import gap_table
    from corridor.domain.corridor_map import CorridorMap
    from corridor.store.maps import load_map
    from corridor.web import customer_views, org_views

    ingestor.ingest(
        "interactions",
        pa.table(
            {
                "interaction_id": ["i1", "i2"],
                "person_id": ["p1", "p1"],
                "occurred_at": ["2024-11-03T09:00:00Z", "2025-02-01T09:00:00Z"],
                "touchpoint": ["checkout", "checkout"],
                "channel": ["web", "web"],
            }
        ),
    )
    ingestor.ingest(
        "feedback",
        pa.table(
            {
                "feedback_id": [f"x{i}" for i in range(6)],
                "occurred_at": [f"2025-03-0{1 + i}T08:00:00Z" for i in range(6)],
                "partner_id": ["agency-1"] * 3 + [None] * 3,
                "source": ["review"] * 6,
                "expectation": [7, 8, 6, 7, 7, 8],
                "experience": [5, 6, 4, 8, 7, 9],
            }
        ),
    )
    win = views.window(loaded, "all")
    cmap = load_map(loaded)
    assert isinstance(cmap, CorridorMap)
    admin = Scope.of(Principal("admin", Role.ADMIN), cmap)
    page = org_views.partner(loaded, admin, cmap, "agency-1", win)
    (row,) = [r for r in page["touchpoints"] if r["touchpoint"] is None]
    assert row["name"] == org_views.NO_TOUCHPOINT and row["n"] == 3
    brand = gap_table(loaded, by=[], filters={"partner": [None], "touchpoint": [None]})
    assert row["brand_n"] == brand.frame["n"].iloc[0] == 3  # compared with the brand's own

    view = customer_views.customer(loaded, admin, "p1")
    assert view is not None and view["since"].date().isoformat() == "2024-11-03"
