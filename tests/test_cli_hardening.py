"""Issue 11.12 d, e, f through the real ``corridor`` command (a subprocess):

- ``corridor import`` exit codes, the same for CSV, NDJSON and Parquet: 0 every row stored, 1
  some stored and some quarantined, 2 nothing stored (unreadable, no rows, or every row bad);
- a pretty-printed JSON file imported as NDJSON is one line with the hint, exit 2;
- ``corridor serve`` says it is serving only once its port is bound; a port in use is one line
  naming ``--port``, exit 2.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from conftest import SMALL_MAP
from corridor.cli import app
from corridor.store import open_store

RECORD = {
    "interaction_id": "i1",
    "person_id": "p1",
    "occurred_at": "2025-03-01T10:00:00Z",
    "touchpoint": "checkout",
    "channel": "web",
}


def corridor(*args: str | Path, store: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80", "NO_COLOR": "1", "CORRIDOR_STORE": store}
    return subprocess.run(
        [sys.executable, "-m", "corridor.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def run(*args: str | Path, store: str) -> Result:
    """The command in this process (faster than a subprocess; exit codes are the same)."""
    return CliRunner().invoke(app, [*map(str, args), "--store", store], catch_exceptions=False)


def write(path: Path, records: list[dict[str, object]]) -> Path:
    """``records`` as the file's format says (by its name)."""
    if path.suffix == ".csv":
        cols = list(records[0])
        lines = [",".join(cols)] + [",".join(str(r[c]) for c in cols) for r in records]
        path.write_text("\n".join(lines) + "\n")
    elif path.suffix == ".ndjson":
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    else:
        pq.write_table(pa.Table.from_pylist(records), path)
    return path


@pytest.fixture
def mapped_store(store_url: str, tmp_path: Path) -> str:
    (tmp_path / "corridor.yaml").write_text(yaml.safe_dump(SMALL_MAP))
    r = run("map", "load", tmp_path / "corridor.yaml", store=store_url)
    assert r.exit_code == 0, r.output
    return store_url


@pytest.mark.parametrize("suffix", [".csv", ".ndjson", ".parquet"])
def test_import_exit_codes_are_the_same_for_every_format(
    mapped_store: str, tmp_path: Path, suffix: str
) -> None:
    good = [RECORD, {**RECORD, "interaction_id": "i2"}]
    bad = [{**RECORD, "interaction_id": f"b{i}", "touchpoint": "nowhere"} for i in (1, 2)]
    cases = [
        ("good", good, 0),
        ("mixed", [{**RECORD, "interaction_id": "i3"}, bad[0]], 1),
        ("bad", bad, 2),  # nothing stored: was 1 (Parquet, CSV and NDJSON alike)
    ]
    for name, records, code in cases:
        f = write(tmp_path / f"{name}{suffix}", records)
        r = run("import", f, "--kind", "interactions", store=mapped_store)
        assert r.exit_code == code, (name, r.output)
        if code == 2:
            said = " ".join(r.stderr.split())
            assert f"nothing from {f.name} was stored: every row was quarantined" in said
    with open_store(mapped_store) as s:
        assert s.count("interactions") == 3


def test_import_of_a_file_without_rows_exits_2(mapped_store: str, tmp_path: Path) -> None:
    header = tmp_path / "empty.csv"
    header.write_text(",".join(RECORD) + "\n")
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.Table.from_pylist([RECORD]).slice(0, 0), empty)
    for f in (header, empty):
        r = run("import", f, "--kind", "interactions", store=mapped_store)
        assert r.exit_code == 2, (f, r.output)
        assert f"nothing from {f.name} was stored: it holds no rows" in r.stderr


def test_pretty_printed_ndjson_import_is_one_line_with_the_hint(
    mapped_store: str, tmp_path: Path
) -> None:
    f = tmp_path / "interactions.ndjson"
    f.write_bytes(orjson.dumps(RECORD, option=orjson.OPT_INDENT_2) + b"\n")
    r = corridor("import", f, "--kind", "interactions", store=mapped_store, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert "looks like a pretty-printed JSON document; NDJSON needs one record per line" in lines[0]
    assert "invalid JSON" not in r.stdout + r.stderr


# -- serve ------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_on_a_port_in_use_is_one_line_and_never_says_serving(tmp_path: Path) -> None:
    store = f"duckdb://{tmp_path / 'c.duckdb'}"
    open_store(store).close()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        r = corridor("serve", "--port", str(port), "--auth", "off", store=store, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Corridor is serving" not in r.stdout
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"port {port} on 127.0.0.1 is in use" in lines[0] and "--port" in lines[0]


def test_serve_says_serving_once_bound_and_answers(tmp_path: Path) -> None:
    store = f"duckdb://{tmp_path / 'c.duckdb'}"
    open_store(store).close()
    port = free_port()
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "CORRIDOR_STORE": store}
    proc = subprocess.Popen(
        [sys.executable, "-m", "corridor.cli", "serve", "--port", str(port), "--auth", "off"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.startswith("warning: authentication is off"):
            line = proc.stdout.readline()
        assert f"Corridor is serving on http://127.0.0.1:{port}/" in line, line
        # bound before it said so: a second bind fails at once
        with socket.socket() as probe, pytest.raises(OSError):
            probe.bind(("127.0.0.1", port))
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health") as reply:
                    assert reply.status == 200
                break
            except OSError:
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
