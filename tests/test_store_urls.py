"""Store URLs read exactly as documented (docs/cli.md), and a store that is not there.

``duckdb:///abs`` is an absolute path (RFC 8089 file-URI style), ``duckdb:rel`` and a plain path
are relative to the current directory. A command that only reads refuses a missing DuckDB file
with one line naming its absolute path (it never creates one); commands that load data create it.
An unreachable PostgreSQL server or a missing database is one line too, never a traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from corridor.errors import StoreError
from corridor.store import locate, open_store, require_store


def corridor(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "CORRIDOR_STORE"}
    environ.update({"COLUMNS": "80", "NO_COLOR": "1", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "corridor.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=environ,
        cwd=cwd,
        timeout=120,
    )


def one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


# -- the grammar ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("duckdb:///srv/x/corridor.duckdb", "/srv/x/corridor.duckdb"),
        ("duckdb:////srv/x/corridor.duckdb", "/srv/x/corridor.duckdb"),  # the test suite's form
        ("duckdb:/srv/x/corridor.duckdb", "/srv/x/corridor.duckdb"),
        ("duckdb:data/corridor.duckdb", "{cwd}/data/corridor.duckdb"),
        ("data/corridor.duckdb", "{cwd}/data/corridor.duckdb"),
        ("/srv/x/corridor.duckdb", "/srv/x/corridor.duckdb"),
        ("duckdb:../up/c.duckdb", "{parent}/up/c.duckdb"),
        ("duckdb:~/c.duckdb", "{home}/c.duckdb"),
        ("duckdb:///srv/my data/c.duckdb", "/srv/my data/c.duckdb"),  # taken literally
        ("duckdb:///srv/a%20b.duckdb", "/srv/a%20b.duckdb"),  # no percent-decoding
    ],
)
def test_duckdb_urls_read_as_documented(url: str, path: str) -> None:
    cwd = Path.cwd()
    expected = path.format(cwd=cwd, parent=cwd.parent, home=Path.home())
    loc = locate(url)
    assert (loc.engine, loc.path) == ("duckdb", Path(expected))


def test_default_store_is_relative_to_the_current_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CORRIDOR_STORE", raising=False)
    loc = locate(None)
    assert loc.path == Path.cwd() / "corridor-data" / "corridor.duckdb"
    assert loc.origin == "default"
    monkeypatch.setenv("CORRIDOR_STORE", "duckdb:///srv/c.duckdb")
    assert locate(None).path == Path("/srv/c.duckdb")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("duckdb://tmp/x.duckdb", "names a host ('tmp'); a DuckDB file is local"),
        ("duckdb:", "names no file"),
        ("duckdb://", "names no file"),
        ("mysql://localhost/db", "unsupported store URL scheme 'mysql'"),
        ("postgresql:corridor", "postgresql://user@host:5432/database"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=re.escape(message)):
        locate(url)


def test_postgres_url_is_passed_as_given() -> None:
    loc = locate("postgresql://u@db.internal:5432/corridor?sslmode=require")
    assert (loc.engine, loc.path, loc.url) == (
        "postgres",
        None,
        "postgresql://u@db.internal:5432/corridor?sslmode=require",
    )


def test_store_url_is_absolute_and_opens_the_same_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with open_store("duckdb:here/c.duckdb") as s:
        assert s.url == f"duckdb://{tmp_path}/here/c.duckdb"
        url = s.url
    assert (tmp_path / "here" / "c.duckdb").is_file()
    monkeypatch.chdir("/")
    with open_store(url, create=False) as s:  # the printed URL names the same file anywhere
        assert s.schema_version() > 0


def test_open_store_without_create_refuses_a_missing_file(tmp_path: Path) -> None:
    target = tmp_path / "none" / "corridor.duckdb"
    with pytest.raises(StoreError, match=re.escape(f"no Corridor store at {target}; create one")):
        open_store(f"duckdb://{target}", create=False)
    assert not (tmp_path / "none").exists()
    with pytest.raises(StoreError, match="is a folder, not a DuckDB file"):
        require_store(str(tmp_path))


@pytest.mark.parametrize(
    ("name", "content"),
    [("data.csv", b"person_id,segment\nc-1,retail\n"), ("truth.json", b'{"a": 1}'),
     ("people.parquet", b"PAR1\x00\x00PAR1"), ("notes.txt", b"x")],
)  # fmt: skip
def test_a_data_file_named_as_the_store_is_refused_and_left_as_it_was(
    tmp_path: Path, name: str, content: bytes
) -> None:
    """DuckDB 2 opens a CSV, JSON or Parquet file as a store kept in memory: a command that
    wrote to it said it had, and nothing was kept. It is refused, and the file is untouched."""
    path = tmp_path / name
    path.write_bytes(content)
    for create in (True, False):
        with pytest.raises(StoreError, match=re.escape(f"{path} is not a DuckDB store")):
            open_store(f"duckdb://{path}", create=create)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_three_slashes_meant_as_relative_get_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    open_store("data/c.duckdb").close()
    with pytest.raises(StoreError, match=re.escape("write duckdb:data/c.duckdb (or just")):
        require_store("duckdb:///data/c.duckdb")


# -- commands that only read refuse a missing store --------------------------------------------
READ_COMMANDS = [
    ["status"],
    ["gaps"],
    ["nps"],
    ["churn", "survival"],
    ["map", "show"],
    ["users", "list"],
    ["text", "sentiment"],
    ["serve", "--port", "1"],  # refused before it would bind
]


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: " ".join(c))
def test_read_commands_refuse_a_missing_store_and_create_nothing(
    command: list[str], tmp_path: Path
) -> None:
    """The form --help shows, duckdb:///tmp/x/corridor.duckdb, once made ./tmp/x/ silently."""
    target = tmp_path / "x" / "corridor.duckdb"
    line = one_line_error(corridor(*command, "--store", f"duckdb://{target}", cwd=tmp_path))
    assert f"no Corridor store at {target};" in line
    assert "`corridor demo`" in line and "`corridor import" in line
    assert list(tmp_path.iterdir()) == []  # nothing created, here or under ./tmp


def test_missing_default_and_env_stores_say_where_the_url_came_from(tmp_path: Path) -> None:
    line = one_line_error(corridor("status", cwd=tmp_path))
    assert f"no Corridor store at {tmp_path}/corridor-data/corridor.duckdb (the default" in line
    line = one_line_error(
        corridor("gaps", cwd=tmp_path, env={"CORRIDOR_STORE": "elsewhere/c.duckdb"})
    )
    assert f"{tmp_path}/elsewhere/c.duckdb (from CORRIDOR_STORE=elsewhere/c.duckdb)" in line
    assert list(tmp_path.iterdir()) == []


def test_creating_commands_create_relative_stores_where_said(tmp_path: Path) -> None:
    r = corridor("migrate", "--store", "duckdb:data/c.duckdb", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"created an empty store at {tmp_path}/data/c.duckdb" in " ".join(r.stdout.split())
    assert (tmp_path / "data" / "c.duckdb").is_file()
    r = corridor("status", "--store", "data/c.duckdb", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"store duckdb://{tmp_path}/data/c.duckdb" in r.stdout.replace("\n", "")


def test_import_of_a_missing_file_creates_no_store(tmp_path: Path) -> None:
    line = one_line_error(
        corridor("import", "nope.csv", "--kind", "people", "--store", "s.duckdb", cwd=tmp_path)
    )
    assert "does not exist" in line
    assert list(tmp_path.iterdir()) == []


def test_bad_url_is_one_line(tmp_path: Path) -> None:
    line = one_line_error(corridor("status", "--store", "duckdb://tmp/x.duckdb", cwd=tmp_path))
    assert "write duckdb:///tmp/x.duckdb for the absolute path" in line


def test_read_commands_work_on_an_existing_store(store_url: str, tmp_path: Path) -> None:
    open_store(store_url).close()
    r = corridor("status", "--store", store_url, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "schema version" in " ".join(r.stdout.split())


# -- PostgreSQL that cannot be reached ---------------------------------------------------------
def test_unreachable_postgres_is_one_line_with_the_password_hidden(tmp_path: Path) -> None:
    url = "postgresql://corridor:s3cret@127.0.0.1:1/corridor"
    line = one_line_error(corridor("status", "--store", url, cwd=tmp_path))
    assert "cannot connect to PostgreSQL at postgresql://corridor:***@127.0.0.1:1/corridor" in line
    assert "s3cret" not in line
    assert "start the server, or fix the host and port" in line


def test_bad_postgres_url_is_one_line(tmp_path: Path) -> None:
    line = one_line_error(
        corridor("status", "--store", "postgresql://u:pw@127.0.0.1:notaport/db", cwd=tmp_path)
    )
    assert "invalid integer value" in line and "pw@" not in line


def test_missing_postgres_database_is_one_line(pg_admin: str, tmp_path: Path) -> None:
    base, _, query = pg_admin.partition("?")
    url = base.rsplit("/", 1)[0] + "/corridor_no_such_db" + ("?" + query if query else "")
    line = one_line_error(corridor("gaps", "--store", url, cwd=tmp_path))
    assert 'database "corridor_no_such_db" does not exist' in line
    assert "createdb corridor_no_such_db" in line
