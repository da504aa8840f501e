"""Hand-written fuzz of the analysis routes' query strings (issue 11.5): wrong types, huge and
negative numbers, NaN, Unicode digits, long values and long lists never give a 500; numbers are
ASCII digits only, and the server keeps answering on the same connection afterwards."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from corridor.analytics.errors import AnalyticsQueryError
from corridor.api.app import create_app
from corridor.api.numbers import number, whole_number
from corridor.settings import Settings

NUMERIC = (
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
)
BAD = [
    "99999999999999999999999",
    "-1",
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


@pytest.mark.slow
def test_no_query_string_gives_a_server_error(store):
    app = create_app(Settings(auth="off"), store=store)
    with TestClient(app, raise_server_exceptions=False) as c:
        spec = c.get("/openapi.json").json()
        routes = [
            p
            for p, ops in spec["paths"].items()
            if "get" in ops
            and "{" not in p
            and p.startswith("/api/v1/")
            and not p.endswith(("/health", "/map", "/export"))
        ]
        assert len(routes) >= 20
        failures = []
        for path in routes:
            for key in NUMERIC:
                for raw in BAD:
                    r = c.get(path, params={key: raw})
                    if r.status_code >= 500:
                        failures.append((path, key, raw[:30], r.status_code))
            for key in ("region", "by", "since", "period"):
                for raw in [*BAD[-4:], "\x00", "'; drop table people; --"]:
                    r = c.get(path, params={key: raw})
                    if r.status_code >= 500:
                        failures.append((path, key, raw[:30], r.status_code))
        assert not failures, failures[:20]
        r = c.get("/api/v1/drivers", params={"seed": "-1"})
        assert r.status_code == 422 and "seed" in r.json()["error"]["message"]
        r = c.get("/api/v1/churn/risk", params={"min_rated": "99999999999999999999999"})
        assert r.status_code == 422, r.text
