"""Fuzz of the API (issue 11.5 and issue 11's "Done when"): no input gives a 500, every refusal
is a 4xx in the one error shape, numbers are ASCII digits only, and the server keeps answering
on the same connection afterwards.

Hand-written query-string fuzz. The routes are every GET analysis route of ``/openapi.json``
(not health, map, users or keys); on the company also the two per-customer analyses (churn
risk, lifetime value) for a real customer. What a route takes is read from its own refusal of
an unknown parameter ("allowed: ..."), so every parameter it takes is fuzzed, by kind:
``BAD`` (not numbers to the strict reader: huge, NaN, infinities, Unicode digits, 20,000
digits, a 5,000-item list...) and ``EDGE`` (numbers at and past their ranges: 0, -1, 1e300,
15 digits...) for numeric ones; ``DATES`` (year 1 and 9999, offsets past the calendar, 1677 and
2262 where pandas' times end, impossible days) for ``since``/``until``; ``TEXTS`` (20,000
characters, a 5,000-item list, Unicode with a bidi override, NUL, SQL, empty, a number) for the
others and the dimension filters; plus the route asked plainly and one parameter repeated 5,000
times.

* Empty store, both engines, auth off (an admin): every parameter with every value of its kind,
  but ``BAD`` shared out between the engines (the strict reader refuses those before a store
  sees them; each still reaches every numeric parameter of every route once); ``region`` with
  half the texts (alternating by route), each other filter with one (rotating). ~2,900
  requests an engine.
* A simulated company (``corridor demo``, 800 customers, 6 months; made once per module, each
  test on a copy), DuckDB only, as an analyst and as a department head (logistics), each with
  an API key. An answered request runs an analysis on real rows here (0.05-1 s; a refused one
  ~2 ms), so the values are split: per route and parameter the values are shuffled by a seed of
  the route's and the analyst sends one half, the head the other, at most 3 of ``EDGE`` and 1
  of ``BAD`` for numbers, 4 ``DATES``, 3 ``TEXTS`` (the empty store's fuzz sends them all; here
  each route's own shuffle picks which reach its analysis on rows, so every value does on some
  routes); one filter per route with 2 texts (rotating); one repeated parameter. Every route
  must answer 200 at least once (the plain ask) for both principals. ~800 requests a
  principal.

Schemathesis (``test_schemathesis_finds_no_server_error``): every operation that documents its
inputs in ``/openapi.json`` (path parameters or a body: ingest, map, people, customer analyses,
users, keys, themes), positive and negative data, derandomized, no shrinking: 6 examples each
for the analyses (and a customer's outlook, the reports), 15 for the ingest routes, 10 for the
rest; as an analyst with an API key, on another copy of the company.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import positive_data_acceptance

from conftest import ENGINES
from corridor.analytics.core import registry
from corridor.analytics.core.dimensions import check_time
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.numbers import number, whole_number
from corridor.api.app import create_app
from corridor.auth import accounts
from corridor.settings import Settings
from corridor.store import Store, open_store

NUMERIC = {
    "confidence",
    "min_n",
    "min_rated",
    "limit",
    "bootstrap",
    "seed",
    "alpha",
    "horizon_months",
    "discount_monthly",
    "max_length",
}
DATED = {"since", "until"}
BAD = [
    "99999999999999999999999",
    "1_000",
    "１２",
    "٣",
    "nan",
    "inf",
    "-inf",
    " 5",
    "0x10",
    "1e999",
    "",
    "abc",
    "ü" * 50,
    "9" * 20_000,
    ",".join(["x"] * 5_000),
]
EDGE = [
    "0",
    "-1",
    "1",
    "0.5",
    "0.999999999",
    "1e-300",
    "1e300",
    "-1e300",
    "999999999999999",
    "-999999999999999",
]
TEXTS = [
    "x" * 20_000,
    ",".join(["x"] * 5_000),
    "ü日本\u202e\U0001f600",
    "\x00",
    "'; drop table people; --",
    "",
    ",",
    "-1",
    "nan",
    "true",
]
DATES = [
    "0001-01-01",
    "9999-12-31",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "1699-12-31",
    "1700-01-01",
    "2199-12-31T23:59:59",
    "2262-04-12",
    "2024-02-30",
    "2025-01-01T25:00",
    "2025-13",
    "2025-03-01T12:00:00+25:00",
    *TEXTS[:3],
]
SKIPPED = ("/health", "/map", "/users", "/keys", "/webhooks", "/deliveries", "/jobs")
#: routes for admins and analysts only (survey definitions, contact rules): a department head
#: is refused, checked as such, and the fuzz runs them as an analyst
ANALYST_ONLY = ("/api/v1/surveys", "/api/v1/contact-rules")
#: routes for admins only (privacy: a person's export and erasure preview, the audit log, the
#: privacy settings): analysts and department heads are refused, checked as such; the empty
#: store's fuzz runs them as an admin
ADMIN_ONLY = ("/export", "/erasure-preview", "/api/v1/audit", "/api/v1/privacy/settings")
PASSWORD = "fuzz-password-1"
COMPANY = ("--customers", "800", "--months", "6")


@pytest.mark.parametrize("raw", ["1_000", "１２", "٣", " 5", "0x10", "99999999999999999999999"])
def test_whole_numbers_are_ascii_digits_only(raw):
    with pytest.raises(AnalyticsQueryError, match="not a whole number"):
        whole_number(raw, "limit")


@pytest.mark.parametrize("raw", ["nan", "inf", "1e999", "１.５", "1_0.5", ""])
def test_numbers_are_finite_plain_decimals(raw):
    with pytest.raises(AnalyticsQueryError, match="not a number"):
        number(raw, "alpha")


def test_plain_numbers_still_read():
    assert whole_number("-12", "seed") == -12 and number("0.95", "c") == 0.95
    assert number("1e-3", "a") == pytest.approx(0.001) and number(".5", "a") == 0.5


@pytest.mark.parametrize(
    "raw",
    # pandas' times end in 2262 (the risk model's as-of time overflowed: a 500); an offset
    # takes the first day before Python's first (an OverflowError)
    ["9999-12-31", "2262-04-12", "1677-09-21", "0001-01-01T00:00+14:00", "9999-12-31T23:00-14:00"],
)
def test_times_beyond_what_the_analyses_compute_with_are_refused(raw):
    with pytest.raises(AnalyticsQueryError, match=r"until=.* is out of range: give a time from"):
        check_time(raw, "until")


def test_times_within_range_still_read():
    assert check_time("1700-01-01", "since").year == 1700  # type: ignore[union-attr]
    assert check_time("2199-12-31T23:59:59+01:00", "until").year == 2199  # type: ignore[union-attr]


# PostgreSQL text cannot hold a NUL: each of these was a 500 there (found by the fuzz)
NUL_URLS = [
    ("GET", "/api/v1/journeys?conversion=%00"),
    ("GET", "/api/v1/people/a%00b"),
    ("GET", "/api/v1/churn/risk/a%00b"),
    ("GET", "/api/v1/lifetime/people/a%00b?horizon_months=3"),
    ("GET", "/api/v1/keys?user=a%00b"),
    ("DELETE", "/api/v1/users/a%00b"),
    ("DELETE", "/api/v1/keys/a%00b"),
    ("PATCH", "/api/v1/text/themes/a%00b"),
]


def test_a_nul_in_the_url_or_a_theme_is_refused_before_the_store_sees_it(store):
    app = create_app(Settings(auth="off"), store=store)
    with TestClient(app, raise_server_exceptions=False) as c:
        for method, url in NUL_URLS:
            r = c.request(method, url, json={"label": "x"} if method == "PATCH" else None)
            assert r.status_code == 422, (method, url, r.text)
            assert "NUL character (%00)" in r.json()["error"]["message"], r.text
        assert c.get("/api/v1/people/a-b").status_code == 404  # without the NUL: not found
        r = c.post("/api/v1/text/themes/merge", json={"themes": ["a\x00"], "into": "b\x00"})
        assert r.status_code == 422 and "no theme 'b\\x00'" in r.json()["error"]["message"]
        r = c.patch("/api/v1/text/themes/th_1", json={"label": "x\x00y"})
        assert r.status_code == 422 and "control characters" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "field, value", [("nps", 1e300), ("csat", 2**40), ("ces", -70_368_744_177_663)]
)
def test_a_score_beyond_a_32_bit_integer_is_rejected_not_a_server_error(
    store, ingestor, field, value
):
    """Found by schemathesis: the validator cast every row's score to INTEGER, the rejected
    ones too, and a score past 2**31 stopped the batch with a 500."""
    record = {
        "feedback_id": "f-1",
        "person_id": "p-1",
        "occurred_at": "2025-03-01T10:00:00Z",
        "touchpoint": "checkout",
        "source": "survey",
        field: value,
    }
    app = create_app(Settings(auth="off"), store=store)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/api/v1/feedback", json=[record, {**record, "feedback_id": "f-2", field: 3}])
    assert r.status_code == 200, r.text  # the good record is stored, the other rejected
    assert r.json()["inserted"] == 1 and r.json()["rejected"] == 1, r.text
    assert [e["field"] for e in r.json()["errors"]] == [field], r.text
    assert "is out of range" in r.json()["errors"][0]["reason"], r.text


# -- the hand-written fuzz ---------------------------------------------------------------------


def _routes(c: TestClient, person: str | None) -> list[str]:
    spec = c.get("/openapi.json").json()
    out = []
    for path, ops in spec["paths"].items():
        if "get" not in ops or not path.startswith("/api/v1/") or path.endswith(SKIPPED):
            continue
        if "{" in path:
            if person is None or path == "/api/v1/people/{person_id}":
                continue  # a person's page takes no query parameters
            path = path.replace("{person_id}", person)
            if "{" in path:
                continue  # one rule or case (an id the fuzz cannot guess)
        out.append(path)
    return out


def _allowed(c: TestClient, path: str, headers: dict[str, str]) -> tuple[list[str], list[str]]:
    """The named parameters and the filters ``path`` takes, from its refusal of another."""
    r = c.get(path, params={"not_a_parameter": "1"}, headers=headers)
    assert r.status_code == 422, (path, r.text)
    message = r.json()["error"]["message"]
    assert "unknown query parameter(s) not_a_parameter; allowed: " in message, message
    named, _, filters = message.split("allowed: ", 1)[1].partition(", or a filter named after ")
    keys = [k for k in named.split(", ") if k not in ("", "none")]
    return keys, [d for d in filters.removeprefix("a dimension: ").split(", ") if d]


def _plan(
    c: TestClient,
    routes: list[str],
    headers: dict[str, str],
    half: int | None,
    bad_half: int | None = None,
) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """(path, query) pairs: every value when ``half`` is None; else, per parameter, half 0 or
    1 of the values shuffled by a seed of the route's, so two runs together send them all.
    ``bad_half`` (with ``half`` None): of ``BAD`` only every other value, starting at 0 or 1 and
    alternating by route, so two runs together send every one to every numeric parameter."""
    for i, path in enumerate(routes):
        keys, filters = _allowed(c, path, headers)
        yield path, []  # as the route is asked most: it answers (with rows, on the company)

        def some(values: list[str], k: int, path: str = path) -> list[str]:
            if half is None:
                return values
            return random.Random(path).sample(values, len(values))[half::2][:k]

        for key in keys:
            if key in NUMERIC and half is None and bad_half is not None:
                values = [*EDGE, *BAD[(bad_half + i) % 2 :: 2]]
            elif key in NUMERIC:
                values = [*some(EDGE, 3), *some(BAD, 1)]
            elif key in DATED:
                values = some(DATES, 4)
            else:
                values = some(TEXTS, 3)
            for v in values:
                yield path, [(key, v)]
        for j, name in enumerate(filters):
            if half is None:
                values = TEXTS[i % 2 :: 2] if name == "region" else [TEXTS[(i + j) % len(TEXTS)]]
            elif j == (2 * i + half) % len(filters):
                values = some(TEXTS, 2)
            else:
                continue
            for v in values:
                yield path, [(name, v)]
        listed = [k for k in keys if k not in NUMERIC | DATED] + filters
        if listed:
            yield path, [(listed[(2 * i + (half or 0)) % len(listed)], "x")] * 5_000


def _fuzz(
    c: TestClient,
    routes: list[str],
    headers: dict[str, str],
    half: int | None,
    bad_half: int | None = None,
) -> tuple[list[Any], set[str]]:
    """Send the plan; the failures (5xx, or a 4xx not in the error shape) and the routes that
    answered 200 at least once."""
    failures: list[Any] = []
    answered: set[str] = set()
    for path, query in _plan(c, routes, headers, half, bad_half):
        r = c.get(path, params=query, headers=headers)
        shown = [(k, v[:30]) for k, v in query[:2]] + ([f"... {len(query)}"] * (len(query) > 2))
        if r.status_code == 200:
            answered.add(path)
        elif r.status_code >= 500 or r.status_code < 400:
            failures.append((path, shown, r.status_code, r.text[:200]))
        else:
            error = r.json().get("error")
            if not isinstance(error, dict) or set(error) != {"code", "message", "details"}:
                failures.append((path, shown, r.status_code, "not the error shape", r.text[:200]))
    return failures, answered


@pytest.mark.slow
def test_no_query_string_gives_a_server_error(store, engine):
    app = create_app(Settings(auth="off"), store=store)
    with TestClient(app, raise_server_exceptions=False) as c:
        routes = _routes(c, None)
        assert len(routes) >= 25
        # the strict reader refuses every BAD value before a store sees it: the two engines
        # share them out (each value still reaches every numeric parameter of every route)
        failures, _ = _fuzz(c, routes, {}, None, bad_half=ENGINES.index(engine))
        assert not failures, failures[:20]
        r = c.get("/api/v1/drivers", params={"seed": "-1"})
        assert r.status_code == 422 and "seed" in r.json()["error"]["message"]
        r = c.get("/api/v1/churn/risk", params={"min_rated": "99999999999999999999999"})
        assert r.status_code == 422, r.text


# -- on a simulated company ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated company in a DuckDB file, made once by ``corridor demo``; tests use copies."""
    path = tmp_path_factory.mktemp("company") / "corridor.duckdb"
    url = f"duckdb:///{path}"
    made = subprocess.run(
        [sys.executable, "-m", "corridor.cli", "demo", "--no-serve", *COMPANY, "--store", url],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        timeout=300,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    return path


@pytest.fixture
def company_store(company: Path, tmp_path: Path) -> Iterator[Store]:
    copy = tmp_path / "corridor.duckdb"
    shutil.copy(company, copy)
    with open_store(f"duckdb:///{copy}") as s:
        yield s


def _principal(store: Store, role: str) -> dict[str, str]:
    """A new user of ``role`` (a department head heads logistics) and its API key header."""
    extra = {"department": "logistics"} if role == "department_head" else {}
    accounts.add_user(store, f"fuzz-{role}", PASSWORD, role, **extra)
    _, secret = accounts.create_key(store, f"fuzz-{role}", "fuzz")
    return {"Authorization": f"Bearer {secret}"}


@pytest.mark.slow
@pytest.mark.parametrize("half, role", [(0, "analyst"), (1, "department_head")])
def test_no_query_string_gives_a_server_error_on_a_company(company_store, half, role):
    headers = _principal(company_store, role)
    # a customer with a logistics record, so the department head may ask about them too
    person = company_store.query(
        "SELECT i.person_id FROM interactions i JOIN touchpoints t ON t.key = i.touchpoint "
        "WHERE t.department = 'logistics' ORDER BY 1 LIMIT 1"
    )[0][0]
    app = create_app(Settings(model_refresh="on_request"), store=company_store)
    with TestClient(app, raise_server_exceptions=False) as c:
        routes = _routes(c, person)
        assert len(routes) >= 27
        admin_only = [r for r in routes if r.endswith(ADMIN_ONLY)]
        assert len(admin_only) == 5, admin_only
        for path in admin_only:
            assert c.get(path, headers=headers).status_code == 403, path
        routes = [r for r in routes if r not in admin_only]
        if role == "department_head":
            for path in ANALYST_ONLY:
                assert c.get(path, headers=headers).status_code == 403, path
            routes = [r for r in routes if r not in ANALYST_ONLY]
        failures, answered = _fuzz(c, routes, headers, half)
        assert not failures, failures[:20]
        # every route computed on real rows at least once: the fuzz reached past the parsing
        assert answered == set(routes), sorted(set(routes) - answered)
        assert c.get("/api/v1/gaps", headers=headers).status_code == 200


# -- schemathesis -------------------------------------------------------------------------------


#: analysis routes compute on every request (model fits, bootstraps): fewer examples each, and
#: resampling counts kept small, so the whole run stays within a few minutes
ANALYSIS_PATHS = {f"/api/v1{a.path}" for a in registry.analyses().values()} | {
    "/api/v1/reports",  # a dozen analyses, charts and (format=pdf) a Chromium launch per call
    # a customer's churn risk and lifetime value: the model is kept per store state and
    # horizon, so each fuzzed horizon is a fit of its own (~2 s each: 25 examples took 64 s)
    "/api/v1/churn/risk/{person_id}",
    "/api/v1/lifetime/people/{person_id}",
}
#: the ingest routes read every record field by field (where schemathesis found a 500: a score
#: past 32 bits); the rest (accounts, keys, webhooks, cases, rules, surveys, privacy...) mostly
#: answer a refusal (an admin's route) or an unknown id, cheap and alike: fewer examples there
ANALYSIS_EXAMPLES, INGEST_EXAMPLES, OTHER_EXAMPLES, MAX_BOOTSTRAP = 6, 15, 10, 40
INGEST = {"people", "interactions", "feedback", "operational_events", "market_events",
          "employee_predictions"}  # fmt: skip


def _bounded(case: Any) -> None:
    """Cap resampling counts (a valid bootstrap of 10,000 on drivers takes minutes: a speed
    question for the benchmarks, not a fuzzing one)."""
    query = case.query or {}
    value = query.get("bootstrap")
    if isinstance(value, int) and not isinstance(value, bool) and value > MAX_BOOTSTRAP:
        query["bootstrap"] = MAX_BOOTSTRAP


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(company_store):
    """Schemathesis over every operation of /openapi.json, as an analyst: no 5xx,
    responses as documented (status code, content type, headers, schema), invalid data
    refused, and every error in the one shape (the ingest routes answer a rejected batch with
    their report).

    Left out: positive data acceptance, a heuristic that takes any 4xx to schema-valid data as
    a fault; the ingest routes rightly refuse records the JSON schema cannot describe (control
    characters in field names, times outside 1970-2100, empty required fields), and the theme
    routes a theme id that does not exist."""
    headers = _principal(company_store, "analyst")
    app = create_app(Settings(model_refresh="on_request"), store=company_store)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 45, [op.label for op in operations]
    failures: list[str] = []
    for op in operations:
        ingest = op.method.upper() == "POST" and op.path.removeprefix("/api/v1/") in INGEST
        examples = OTHER_EXAMPLES
        if op.path in ANALYSIS_PATHS:
            examples = ANALYSIS_EXAMPLES
        elif ingest:
            examples = INGEST_EXAMPLES
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @given(case=op.as_strategy(mode))
            @settings(
                max_examples=examples,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                _bounded(case)
                r = case.call(headers=headers)
                case.validate_response(r, excluded_checks=[positive_data_acceptance])
                if r.status_code >= 400 and not (ingest and r.status_code == 422):  # noqa: B023
                    error = json.loads(r.content).get("error")
                    assert isinstance(error, dict), r.content[:300]
                    assert set(error) == {"code", "message", "details"}, error

            try:
                run()
            except Unsatisfiable:
                pass  # nothing to negate: a path parameter that is any string
            except (Exception, BaseExceptionGroup) as e:  # schemathesis' FailureGroup is the latter
                # a group (Hypothesis' FlakyFailure too) says little itself: its members
                inner = "".join(
                    f"\n  {type(x).__name__}: {x}" for x in getattr(e, "exceptions", ())
                )
                failures.append(f"{op.label} ({mode.value}): {e}{inner}"[:3000])
    assert not failures, "\n\n".join(failures)
