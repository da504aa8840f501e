"""The real ``corridor`` command for ``map load`` and ``import``: exit code 0 when every row is
stored, 1 when some were quarantined, 2 when the file cannot be imported (a readable message, no
traceback). Runs the CLI as a subprocess, on DuckDB and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import SMALL_MAP
from corridor.store import open_store

HEADER = "interaction_id,person_id,occurred_at,touchpoint,channel,value"


def corridor(*args: str | Path, store: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "CORRIDOR_STORE": store}
    return subprocess.run(
        [sys.executable, "-m", "corridor.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def count(store_url: str, table: str) -> int:
    with open_store(store_url) as s:
        return s.count(table)


def test_map_load_and_import(store_url: str, tmp_path: Path) -> None:
    cmap = tmp_path / "corridor.yaml"
    cmap.write_text(yaml.safe_dump(SMALL_MAP))
    r = corridor("map", "load", cmap, store=store_url)
    assert r.returncode == 0, r.stderr
    assert "4 touch points" in r.stdout

    good = tmp_path / "interactions.csv"
    good.write_text(
        f"{HEADER}\ni1,p1,2025-03-01T10:00:00Z,checkout,web,1\n"
        "i2,p2,2025-03-01T11:00:00Z,support_call,voice,2\n"
    )
    r = corridor("import", good, "--kind", "interactions", store=store_url)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "interactions.csv" in r.stdout and "Traceback" not in r.stderr
    assert count(store_url, "interactions") == 2

    # again: nothing stored twice, still all good
    r = corridor("import", good, "-k", "interactions", store=store_url)
    assert r.returncode == 0, r.stdout + r.stderr
    assert count(store_url, "interactions") == 2

    bad = tmp_path / "more.csv"
    bad.write_text(
        f"{HEADER}\ni3,p1,2025-03-02T10:00:00Z,checkout,web,1\n"
        "i4,p1,2025-03-02T10:00:00Z,nowhere,web,1\n"
        "i5,p1,2025-03-02T10:00:00Z\n"
    )
    r = corridor("import", bad, "--kind", "interactions", store=store_url)
    assert r.returncode == 1, r.stdout + r.stderr
    quarantine = tmp_path / "more.csv.quarantine.csv"
    assert quarantine.exists()
    assert "2 bad rows" in r.stdout and "more.csv.quarantine.csv" in " ".join(r.stdout.split())
    lines = quarantine.read_text().splitlines()
    assert lines[0] == "row,id,field,reason,record"
    assert lines[1].startswith("3,i4,touchpoint,") and lines[2].startswith("4,i5,(record),")
    assert count(store_url, "interactions") == 3


def test_import_errors_exit_2_without_traceback(store_url: str, tmp_path: Path) -> None:
    missing_col = tmp_path / "i.csv"
    missing_col.write_text("interaction_id,person_id,occured_at,touchpoint,channel\n")
    cases = [
        (missing_col, ["--kind", "interactions"], "did you mean 'occured_at'?"),
        (tmp_path / "absent.csv", ["--kind", "interactions"], "does not exist"),
        (missing_col, ["--kind", "clicks"], "unknown record kind"),
        (tmp_path / "data.xlsx", ["--kind", "interactions"], "allowed endings"),
    ]
    (tmp_path / "data.xlsx").write_text("x")
    for path, args, expected in cases:
        r = corridor("import", path, *args, store=store_url)
        assert r.returncode == 2, (path, r.stdout, r.stderr)
        err = " ".join(r.stderr.split())
        assert "error:" in err and expected in err, err
        assert "Traceback" not in r.stderr
    assert count(store_url, "interactions") == 0


def test_map_load_error_exits_2(store_url: str, tmp_path: Path) -> None:
    broken = tmp_path / "corridor.yaml"
    broken.write_text("stages: [a]\ntouchpoints: []\n")
    r = corridor("map", "load", broken, store=store_url)
    assert r.returncode == 2
    assert "error:" in r.stderr and "Traceback" not in r.stderr
