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


def test_an_import_that_would_destroy_a_file_or_cannot_finish_is_refused_before_any_store(
    tmp_path: Path,
) -> None:
    """The quarantine file may replace only an earlier quarantine file: never the file being
    imported (it replaced it), nor any other; a folder it cannot be written in, a chunk size
    past all memory (an OverflowError) or a file with no usable header is said before a store
    is made, and leaves no store behind."""
    from corridor.errors import CorridorError

    good = write(tmp_path / "people.csv", [{"person_id": "c-1", "segment": "retail"}])
    before = good.read_bytes()
    other = tmp_path / "notes.csv"
    other.write_text("mine\n")
    (tmp_path / "blocker").write_text("a file where a folder should be")
    store = tmp_path / "fresh" / "corridor.duckdb"
    cases = [
        (["--quarantine", str(good)], "is the file being imported"),
        (["--quarantine", str(other)], "exists and is not a quarantine file"),
        (["--quarantine", str(tmp_path)], "is a folder"),
        (["--quarantine", str(tmp_path / "blocker" / "q.csv")], "cannot write the quarantine"),
        (["--chunk-rows", "99999999999999999999"], "chunk-rows"),
    ]
    for args, says in cases:
        r = CliRunner().invoke(
            app, ["import", str(good), "--kind", "people", *args, "--store", f"duckdb://{store}"]
        )
        said = f"{r.exception} {r.output}"
        assert r.exit_code != 0 and says in said, (args, said)
        assert r.exception is None or isinstance(r.exception, (CorridorError, SystemExit)), said
        assert not store.exists() and good.read_bytes() == before
    assert other.read_text() == "mine\n"
    no_header = tmp_path / "interactions.csv"
    no_header.write_text("i1,c-1,2025-01-01,checkout,web\n")
    r = CliRunner().invoke(
        app, ["import", str(no_header), "--kind", "interactions", "--store", f"duckdb://{store}"]
    )
    assert isinstance(r.exception, CorridorError) and "missing required columns" in str(r.exception)
    assert not store.exists()


def test_a_path_or_setting_the_system_refuses_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """A folder named where a file is read (an IsADirectoryError), a file where a folder is
    wanted, an environment setting with a value it cannot take: one line with the reason and
    the path or setting, exit 2 (the real command: its entry point says these)."""
    store = f"duckdb://{tmp_path / 'corridor.duckdb'}"
    open_store(store).close()
    (tmp_path / "p.csv").write_text("person_id,kind\nc-1,customer\n")
    (tmp_path / "broken.yaml").write_text("calendar: [\n  : :\n")
    fresh = tmp_path / "new.duckdb"
    for args, env, says in (
        (["map", "load", str(tmp_path)], {}, f"is a directory: {tmp_path}"),
        (["cases", "sla", "default", str(tmp_path)], {}, f"is a directory: {tmp_path}"),
        (["cases", "sla", "default", "broken.yaml"], {}, "broken.yaml is not YAML or JSON (line"),
        (["import", "p.csv", "--kind", "people"],
         {"CORRIDOR_TEXT_ANALYSIS": "bogus", "CORRIDOR_STORE": f"duckdb://{fresh}"},
         "CORRIDOR_TEXT_ANALYSIS='bogus': Input should be 'background', 'inline' or 'off'"),
    ):  # fmt: skip
        env_all = {**os.environ, "COLUMNS": "80", "NO_COLOR": "1", "CORRIDOR_STORE": store, **env}
        r = subprocess.run([sys.executable, "-m", "corridor.cli", *args], capture_output=True,
                           text=True, env=env_all, cwd=tmp_path, timeout=120)  # fmt: skip
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.returncode == 2 and "Traceback" not in r.stderr, (args, r.stderr)
        assert lines and says in " ".join(lines[-1:]), (args, r.stderr)
    assert not fresh.exists()  # the setting is read before a store is made


def test_the_hint_for_a_json_array_never_names_the_file_itself(tmp_path: Path) -> None:
    """``jq ... x.ndjson > x.ndjson`` empties the file before jq reads it."""
    from corridor.domain.contract import get_kind
    from corridor.errors import PayloadError
    from corridor.ingest.readers import open_reader

    for name, target in (("array.ndjson", "array.lines.ndjson"), ("array.json", "array.ndjson")):
        f = tmp_path / name
        f.write_text('[{"person_id": "c-1"}]\n')
        with pytest.raises(PayloadError, match=f"> {target}\\)"):
            open_reader(f, "ndjson", None, 1000, get_kind("people"))


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
