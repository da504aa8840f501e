"""``corridor gaps|nps|...`` on both engines: same numbers as the library, clear errors."""

from __future__ import annotations

import csv
import io
import json

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from corridor.analytics import gap_table
from corridor.cli import app


@pytest.fixture
def loaded(ingestor, store_url):
    n = 45
    ingestor.ingest(
        "feedback",
        pa.table(
            {
                "feedback_id": [f"f{i}" for i in range(n)],
                "occurred_at": [f"2025-0{1 + i % 3}-0{1 + i % 9}" for i in range(n)],
                "touchpoint": ["checkout", "home_delivery", "support_call"] * (n // 3),
                "source": ["survey", "review", "survey"] * (n // 3),
                "expectation": [6 + i % 5 for i in range(n)],
                "experience": [(i * 5) % 11 for i in range(n)],
                "nps": [(i * 7) % 11 for i in range(n)],
            }
        ),
    )
    # the CLI opens the store itself: release this process's handle on a DuckDB file
    ingestor.store.close()
    return store_url


def run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_gaps_json_matches_library(loaded):
    r = run("gaps", "--by", "touchpoint", "--format", "json", "--store", loaded)
    assert r.exit_code == 0, r.output
    body = json.loads(r.output)
    from corridor.store import open_store

    with open_store(loaded) as s:
        expected = gap_table(s, by=["touchpoint"]).to_records()
    assert body["n"] == 45
    assert [row["mean_gap"] for row in body["rows"]] == pytest.approx(
        [e["mean_gap"] for e in expected]
    )


def test_csv_and_table_formats(loaded):
    r = run("nps", "--by", "source", "--period", "month", "--format", "csv", "--store", loaded)
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.output)))
    assert {row["source"] for row in rows} == {"survey", "review"}
    assert "nps_low" in rows[0] and "ces_mean" not in rows[0]
    r = run("gaps", "--where", "touchpoint=checkout,support_call", "--store", loaded)
    assert r.exit_code == 0, r.output
    assert "checkout" in r.output and "home_delivery" not in r.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["gaps", "--by", "colour"], "allowed: touchpoint"),
        (["gaps", "--period", "fortnight"], "allowed: day, week"),
        (["gaps", "--where", "region"], "DIMENSION=VALUE"),
        (["gaps", "--format", "xml"], "table, json, csv"),
    ],
)
def test_bad_options_are_explained(loaded, args, needle):
    import subprocess
    import sys

    p = subprocess.run(
        [sys.executable, "-m", "corridor.cli", *args, "--store", loaded],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2, p.stdout + p.stderr
    assert needle in " ".join(p.stderr.split())
    assert "Traceback" not in p.stderr
