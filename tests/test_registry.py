"""Issue 12: every registered analysis has its route (parameters and response documented in
/openapi.json), its command, its SDK methods and its reference entry, all from one declaration;
and the declaration's checks read strings and Python values alike."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from fastapi.testclient import TestClient

import corridor
from corridor.analytics.core import reference, registry, result_columns
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.api.app import create_app
from corridor.cli import app as cli_app
from corridor.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
ANALYSES = [a for a in registry.analyses().values() if not a.person]


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict:
    url = f"duckdb:///{tmp_path_factory.mktemp('spec') / 'corridor.duckdb'}"
    with TestClient(create_app(Settings(store_url=url))) as c:
        return c.get("/openapi.json").json()


def test_there_are_analyses_of_every_family():
    names = {a.name for a in ANALYSES}
    assert {"gaps", "nps", "promises", "drift", "text_sentiment"} <= names
    assert len(ANALYSES) >= 12


@pytest.mark.parametrize("a", ANALYSES, ids=lambda a: a.name)
def test_every_analysis_documents_its_route(spec, a):
    op = spec["paths"][f"/api/v1{a.path}"]["get"]
    documented = {p["name"] for p in op["parameters"] if p["in"] == "query"}
    assert documented == {p.name for p in a.parameters()} | set(a.filters)
    for p in op["parameters"]:
        assert p["description"] and p["schema"], p
    ok = op["responses"]["200"]["content"]["application/json"]["schema"]
    body = spec["components"]["schemas"][ok["$ref"].rsplit("/", 1)[1]]
    assert {"n", "confidence", "method", "rows"} <= set(body["properties"])
    row = spec["components"]["schemas"][body["properties"]["rows"]["items"]["$ref"].split("/")[-1]]
    assert {c.name for c in a.columns} <= set(row["properties"]), a.name
    assert {"401", "403", "422"} <= set(op["responses"])


def _command(words: tuple[str, ...]):
    cmd = typer.main.get_command(cli_app)
    for w in words:
        cmd = cmd.commands[w]  # type: ignore[attr-defined]
    return cmd


@pytest.mark.parametrize("a", ANALYSES, ids=lambda a: a.name)
def test_every_analysis_has_its_command_sdk_methods_and_reference(a):
    cmd = _command(a.command or (a.name,))
    options = {o for p in cmd.params for o in p.opts}
    assert {f"--{p.name.replace('_', '-')}" for p in a.parameters() if p.kind != "bool"} <= options
    assert {"--format", "--store"} <= options
    assert ("--where" in options) == bool(a.filters)
    assert callable(getattr(corridor.Connection, a.name))
    assert callable(getattr(corridor.Client, a.name))
    assert f"## {a.name}: " in (ROOT / "docs" / "reference.md").read_text()


def test_the_reference_is_up_to_date():
    """docs/reference.md is written from the registry: run scripts/reference-docs."""
    assert (ROOT / "docs" / "reference.md").read_text() == reference.markdown()


def test_lists_read_comma_separated_and_repeated_alike():
    gaps = registry.get("gaps")
    one = gaps.parse({"by": ["touchpoint,region"], "region": ["north,"]})
    two = gaps.parse({"by": ["touchpoint", "region"], "region": ["north", ""]})
    assert one == two == {"by": ["touchpoint", "region"], "filters": {"region": ["north", None]}}
    # given empty: no grouping; left out: the default
    assert gaps.bind(gaps.parse({"by": [""]}))["by"] == []
    assert gaps.bind({})["by"] == ["touchpoint"]


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ({"by": ["colour"]}, "allowed: touchpoint"),
        ({"period": ["fortnight"]}, "quarter"),
        ({"confidence": ["1.5"]}, "below 1"),
        ({"confidence": ["nan"]}, "finite"),
        ({"flavour": ["x"]}, "unknown query parameter(s) flavour"),
    ],
)
def test_strings_are_checked_by_the_declaration(query, needle):
    with pytest.raises(AnalyticsQueryError, match=None) as e:
        registry.get("gaps").bind(registry.get("gaps").parse(query))
    assert needle in str(e.value)


def test_python_values_are_checked_by_the_declaration_too():
    gaps = registry.get("gaps")
    with pytest.raises(AnalyticsQueryError, match="confidence must be"):
        gaps.bind({"confidence": 2})
    with pytest.raises(AnalyticsQueryError, match="gaps takes no parameter 'limit'"):
        gaps.bind({"limit": 5})
    with pytest.raises(AnalyticsQueryError, match="unknown filter 'colour'"):
        gaps.bind({"filters": {"colour": ["red"]}})


def test_a_plus_minus_stands_for_a_number_and_its_interval():
    """``name±`` in a columns spec or a brief is the column and the two ends of its interval,
    written out as if listed one by one."""
    assert result_columns.columns("n:int mean± p_value") == result_columns.columns(
        "n:int mean mean_low mean_high p_value"
    )
    brief = registry.get("facets").brief
    assert brief[:4] == ("n", "mean_experience", "mean_experience_low", "mean_experience_high")
    assert not any("±" in name for a in registry.analyses().values() for name in a.brief)


ALL = list(registry.analyses().values())


@pytest.mark.parametrize("a", ALL, ids=lambda a: a.name)
def test_every_number_is_bounded_below(a):
    """A count, size, horizon or level below its meaning (``/agents?min_n=-999`` was taken) is
    refused by the declaration, with the bound in the message and in the OpenAPI schema."""
    for p in a.parameters():
        if p.kind not in ("int", "float"):
            continue
        assert p.ge is not None or p.gt is not None, f"{a.name}.{p.name} has no lower bound"
        low = (p.ge if p.ge is not None else p.gt) - 1
        with pytest.raises(AnalyticsQueryError, match=f"{p.name} must be"):
            p.parse([str(low)])
        schema = p.schema()
        assert "minimum" in schema or "exclusiveMinimum" in schema


def test_an_exclusive_lower_bound_refuses_the_bound_itself():
    horizon = next(p for p in registry.get("churn_risk").parameters() if p.name == "horizon_months")
    with pytest.raises(AnalyticsQueryError, match="horizon_months must be above 0 and at most 24"):
        horizon.parse(["0"])
    assert horizon.parse(["0.5"]) == 0.5
    assert horizon.schema()["exclusiveMinimum"] == 0


RANGED = [a for a in ANALYSES if {"since", "until"} <= {p.name for p in a.parameters()}]


def test_a_backwards_time_range_is_refused_by_every_analysis(store):
    """``since`` after ``until`` selects nothing; every analysis that takes both refuses it (422,
    saying which comes first) instead of answering "no data", before it looks at any data (an
    empty store here: an analysis that returns early on no data must check first)."""
    assert len(RANGED) >= 20
    with TestClient(create_app(Settings(auth="off"), store=store)) as c:
        for a in RANGED:
            r = c.get(f"/api/v1{a.path}", params={"since": "2026-01-01", "until": "2025-01-01"})
            assert r.status_code == 422, (a.name, r.text[:300])
            assert "must be before until" in r.json()["error"]["message"], a.name
            same = c.get(f"/api/v1{a.path}", params={"since": "2026-01-01", "until": "2026-01-01"})
            assert same.status_code == 422, (a.name, same.text[:300])
