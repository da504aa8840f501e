"""``corridor surveys load|list|show|link|links|revoke`` on both engines (issue 15)."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from corridor.cli import app
from corridor.store import open_store
from corridor.surveys import links
from corridor.surveys.errors import SurveyDefinitionError
from survey_fixtures import delivery


def run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def mapped(store_url, ingestor):
    """A store with the small corridor map, closed (the CLI opens it itself)."""
    ingestor.store.close()
    return store_url


def test_surveys_are_loaded_listed_shown_and_linked(mapped, tmp_path):
    path = tmp_path / "delivery.yaml"
    path.write_text(yaml.safe_dump(delivery(), allow_unicode=True))
    r = run("surveys", "load", str(path), "--store", mapped)
    assert r.exit_code == 0 and "loaded survey delivery-pulse, version 1" in r.output, r.output
    assert "unchanged (version 1)" in run("surveys", "load", str(path), "--store", mapped).output
    path.write_text(yaml.safe_dump(delivery(link_days=7)))
    assert "version 2" in run("surveys", "load", str(path), "--store", mapped).output
    listed = json.loads(run("surveys", "list", "--format", "json", "--store", mapped).output)
    assert [(s["survey_id"], s["version"]) for s in listed] == [("delivery-pulse", 2)]
    assert "delivery-pulse" in run("surveys", "list", "--store", mapped).output
    shown = run("surveys", "show", "delivery-pulse", "--version", "1", "--store", mapped).output
    assert "version 1 of 2" in shown and "Wie war Ihre Lieferung?" in shown
    made = run("surveys", "link", "delivery-pulse", "--person", "p1", "--person", "p2",
               "--channel", "email", "--base-url", "https://cx.example.com/",
               "--format", "json", "--store", mapped)  # fmt: skip
    assert made.exit_code == 0, made.output
    made = json.loads(made.output)
    assert [m["person_id"] for m in made] == ["p1", "p2"]
    assert made[0]["url"] == f"https://cx.example.com/s/{made[0]['token']}"
    anon = run("surveys", "link", "delivery-pulse", "--anonymous", "--channel", "qr",
               "--store", mapped)  # fmt: skip
    assert anon.exit_code == 0 and "shown once" in anon.output and "/s/" in anon.output
    r = run("surveys", "revoke", "delivery-pulse", made[0]["link_id"], "--store", mapped)
    assert r.exit_code == 0 and f"revoked {made[0]['link_id']}" in r.output
    found = json.loads(run("surveys", "links", "delivery-pulse", "--format", "json",
                           "--store", mapped).output)  # fmt: skip
    assert sorted(k["state"] for k in found) == ["active", "active", "revoked"]
    assert all("token" not in k for k in found)
    with open_store(mapped) as s:
        assert links.find(s, made[1]["token"]).person_id == "p2"
        assert links.find(s, made[0]["token"]).state_at() == "revoked"


@pytest.mark.parametrize("engine", ["duckdb"])
def test_a_bad_definition_or_request_is_explained(mapped, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(delivery(languages=["en", "de"], fallback_language="fr")))
    with pytest.raises(SurveyDefinitionError, match="fallback_language: 'fr' must be one of"):
        run("surveys", "load", str(path), "--store", mapped)
    from corridor.errors import CorridorError

    with pytest.raises(CorridorError, match="--person PERSON_ID"):
        run("surveys", "link", "delivery-pulse", "--store", mapped)
    with pytest.raises(CorridorError, match="no survey 'nope'"):
        run("surveys", "show", "nope", "--store", mapped)
