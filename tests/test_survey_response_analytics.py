"""Response analytics of the hosted surveys (issue 15): response rates per touch point, channel
and segment with Wilson intervals, and the non-response bias of the responders against the
people invited, checked against what the test planted and against statsmodels and scipy."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from scipy import stats as sps
from statsmodels.stats.proportion import proportion_confint

from corridor.analytics.core import registry
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.scoping import run_scoped
from corridor.auth.scope import Principal, Role, Scope
from corridor.domain.corridor_map import CorridorMap
from corridor.ingest.pipeline import Ingestor
from corridor.store import Store
from corridor.surveys import catalog, definition, invitations, links, responses
from survey_fixtures import delivery

DAY = timedelta(days=1)
N = 60


@pytest.fixture
def invited(store: Store, ingestor: Ingestor) -> dict[str, bool]:
    """60 people, half 'consumer' and half 'business'; busy people (many recent interactions)
    answer far more often than quiet ones; every invitation sent; who answered."""
    rng = random.Random(15)
    now = datetime.now(UTC).replace(microsecond=0)
    ids = [f"q{i:02d}" for i in range(N)]
    ingestor.ingest(
        "people",
        pa.table(
            {
                "person_id": ids,
                "kind": ["customer"] * N,
                "created_at": [now - 400 * DAY] * N,
                "segment": ["consumer" if i % 2 else "business" for i in range(N)],
                "email": [f"{p}@example.com" for p in ids],
            }
        ),
    )
    busy = {p: i < N // 2 for i, p in enumerate(ids)}
    rows: dict[str, list[object]] = {k: [] for k in
        ("interaction_id", "person_id", "occurred_at", "touchpoint", "channel")}  # fmt: skip
    for p in ids:
        for k in range(rng.randint(6, 10) if busy[p] else rng.randint(0, 2)):
            rows["interaction_id"].append(f"x-{p}-{k}")
            rows["person_id"].append(p)
            rows["occurred_at"].append(now - timedelta(days=rng.uniform(2, 80)))
            rows["touchpoint"].append("home_delivery")
            rows["channel"].append("web")
    assert ingestor.ingest("interactions", pa.table(rows)).rejected == 0
    survey = definition.parse(delivery())
    catalog.save(store, survey, by="ana")
    invitations.invite(store, "delivery-pulse", ids, at=now)
    assert invitations.run(store, "https://x.example", now=now).sent == N
    answered: dict[str, bool] = {}
    for inv in invitations.list_invitations(store, limit=1000):
        p = inv.person_id
        link = links.get(store, inv.link_id or "")
        answers = rng.random() < (0.8 if busy[p] else 0.2)
        opens = answers or rng.random() < 0.3
        answered[p] = answers
        if not opens:
            continue
        # a response of a personal link, reached without its token (the test has only the hash)
        token = f"t{p}" * 4
        r = responses.open_response(store, link, token, language="en")
        if answers:
            r = responses.save(store, r, {"experience": 7, "expectation": 6}, page=1)
            responses.submit(store, ingestor, r, survey)
    invitations.mark_answered(store)
    return answered


def test_response_rates_count_and_intervals(store: Store, invited: dict[str, bool]) -> None:
    """Counts equal what was planted; the Wilson interval equals statsmodels'
    ``proportion_confint(method="wilson")``."""
    a = registry.get("response_rates")
    result = a.run(store, **a.bind({"by": ["segment"]}))
    frame = result.frame.set_index("segment")
    assert set(frame.index) == {"consumer", "business"}
    for seg, parity in (("business", 0), ("consumer", 1)):
        people = [p for p in invited if int(p[1:]) % 2 == parity]
        done = sum(invited[p] for p in people)
        row = frame.loc[seg]
        assert (row.invited, row.sent, row.held) == (len(people), len(people), 0)
        assert row.completed == done and row.started == done
        assert row.opened >= done
        low, high = proportion_confint(done, len(people), alpha=0.05, method="wilson")
        assert row.response_rate == pytest.approx(done / len(people))
        assert (row.response_rate_low, row.response_rate_high) == (
            pytest.approx(low),
            pytest.approx(high),
        )
        assert row.completion_rate == pytest.approx(1.0)
    assert result.n == N
    whole = a.run(store, **a.bind({"by": []})).frame
    assert int(whole["completed"].iloc[0]) == sum(invited.values())
    # filters: a segment, and a touch point nobody was invited for
    only = a.run(store, **a.bind({"by": [], "filters": {"segment": ["consumer"]}})).frame
    assert int(only["invited"].iloc[0]) == N // 2
    none = a.run(store, **a.bind({"by": ["touchpoint"], "filters": {"touchpoint": ["x"]}}))
    assert none.frame.empty and none.n == 0


def test_nonresponse_bias_finds_the_planted_difference(
    store: Store, invited: dict[str, bool]
) -> None:
    """Busy people answered more: responders had more interactions before the invitation.
    The difference and its interval equal scipy's Welch test
    (``ttest_ind(equal_var=False)`` and its ``confidence_interval``)."""
    a = registry.get("nonresponse")
    frame = a.run(store, **a.bind({})).frame.set_index("measure")
    row = frame.loc["interactions_90d"]
    counts = {
        p: n
        for p, n in store.query("SELECT person_id, count(*) FROM interactions GROUP BY person_id")
    }
    yes = [counts.get(p, 0) for p, done in invited.items() if done]
    no = [counts.get(p, 0) for p, done in invited.items() if not done]
    assert (row.responders_n, row.nonresponders_n) == (len(yes), len(no))
    ref = sps.ttest_ind(yes, no, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert row.difference == pytest.approx(sum(yes) / len(yes) - sum(no) / len(no))
    assert row.p_value == pytest.approx(ref.pvalue)
    assert (row.difference_low, row.difference_high) == (
        pytest.approx(ci.low),
        pytest.approx(ci.high),
    )
    assert row.difference > 0 and row.p_value < 0.01  # planted: busy people answer
    # no earlier feedback: the feedback measures have nobody to compare
    assert frame.loc["prior_experience"].responders_n == 0


def test_bad_queries_are_refused(store: Store) -> None:
    a = registry.get("response_rates")
    with pytest.raises(AnalyticsQueryError):
        a.bind({"by": ["colour"]})
    with pytest.raises(AnalyticsQueryError, match="cannot be filtered"):
        a.run(store, **a.bind({"by": []}) | {"filters": {"source": ["survey"]}})
    empty = a.run(store, **a.bind({}))
    assert empty.frame.empty and empty.n == 0
    # a group named twice groups once (it was a 500 in the non-response analysis)
    for name in ("response_rates", "nonresponse"):
        b = registry.get(name)
        assert (
            list(b.run(store, **b.bind({"by": ["segment", "segment"]})).frame.columns).count(
                "segment"
            )
            <= 1
        )


def test_dropoff_per_question(store: Store, ingestor: Ingestor, small_map: CorridorMap) -> None:
    """Planted: 10 responses opened; 6 answer page 1 and stop; 2 of them answered experience
    below 5 (so are asked what went wrong on page 2); 3 submit; 1 opens and answers nothing.
    The counts follow, and the rates' intervals are Wilson's (statsmodels)."""
    survey = definition.parse(delivery())
    catalog.save(store, survey, by="ana")
    now = datetime.now(UTC)
    for i in range(10):
        link, token = links.create(store, "delivery-pulse", person_id=f"d{i}", now=now)
        r = responses.open_response(store, link, token, language="en")
        if i == 9:
            continue  # opened, nothing answered: stopped at the first question
        low = i < 2
        r = responses.save(store, r, {"experience": 3 if low else 8, "expectation": 7}, page=1)
        if i >= 6:
            r = responses.save(store, r, {"issue": "late"}, page=2)
            responses.submit(store, ingestor, r, survey)
    a = registry.get("survey_dropoff")
    result = a.run(store, **a.bind({"survey": "delivery-pulse"}))
    f = result.frame.set_index("question")
    assert result.n == 10
    assert list(f.index) == ["expectation", "experience", "nps", "what_went_wrong", "issue"]
    assert f.loc["experience", "shown"] == 10 and f.loc["experience", "answered"] == 9
    assert f.loc["expectation", "stopped_here"] == 1  # the one who answered nothing
    # nps (page 1) was never answered: the 6 who left after page 1 stopped there
    assert f.loc["nps", "shown"] == 10 and f.loc["nps", "answered"] == 0
    assert f.loc["nps", "stopped_here"] == 6
    assert f.loc["what_went_wrong", "shown"] == 0  # the two asked never reached page 2
    assert f.loc["issue", "answered"] == 3
    low, high = proportion_confint(9, 10, alpha=0.05, method="wilson")
    assert f.loc["experience", "answer_rate_low"] == pytest.approx(low)
    assert f.loc["experience", "answer_rate_high"] == pytest.approx(high)
    assert a.run(store, **a.bind({})).query["survey"] == "delivery-pulse"  # the latest
    # scoped: logistics owns home delivery and sees every response; marketing none; a partner
    # manager only responses about interactions through the partner (these have none)
    for who, n in ((Principal("lena", Role.DEPARTMENT_HEAD, department="logistics"), 10),
                   (Principal("mark", Role.DEPARTMENT_HEAD, department="marketing"), 0),
                   (Principal("paul", Role.PARTNER_MANAGER, partner="dhl"), 0)):  # fmt: skip
        seen = run_scoped(a, store, Scope.of(who, small_map), a.bind({"survey": "delivery-pulse"}))
        assert seen.n == n and int(seen.frame["shown"].sum()) == (n and int(f["shown"].sum()))
    with store.transaction() as tx:
        tx.execute("DELETE FROM surveys")
    nothing = a.run(store, **a.bind({}))  # no survey loaded: no question to report on
    assert nothing.frame.empty and nothing.n == 0
    with pytest.raises(AnalyticsQueryError):
        a.run(store, **a.bind({"survey": "nope"}))
