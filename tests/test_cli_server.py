"""``corridor users`` and ``corridor keys`` while ``corridor serve`` holds the DuckDB file
(issue 11.11): the commands go through the running server with its local admin credential, so a
leaked key is revoked without downtime; a credential left by a killed server, or none at all,
gives a message saying what to do, never a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from corridor.auth import accounts, local_server
from corridor.store import open_store

PASSWORD = "correct horse battery"
ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "CORRIDOR_AUTH": "on"}


def corridor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corridor.cli", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``corridor serve`` on a DuckDB file, in a process of its own."""

    def __init__(self, db: Path, log: Path, *options: str) -> None:
        """``options``: more of ``corridor serve``'s options."""
        self.db, self.log, self.port = db, log, _free_port()
        cmd = [sys.executable, "-m", "corridor.cli", "serve", "--store", f"duckdb:///{db}"]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), *options]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=ENV,
            )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.base}/api/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"the server did not answer in time:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return int(self.proc.returncode)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "corridor.duckdb"
    with open_store(f"duckdb:///{path}") as s:
        accounts.add_user(s, "root", PASSWORD, "admin")
        accounts.add_user(s, "ana", PASSWORD, "analyst")
    return path


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for s in started:
        s.stop(signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_commands_go_through_the_running_server(db: Path, tmp_path: Path, servers):
    with open_store(f"duckdb:///{db}") as s:
        leaked, secret = accounts.create_key(s, "ana", "leaked")
    server = Server(db, tmp_path / "server.log")
    servers.append(server)
    store = ("--store", f"duckdb:///{db}")
    ana = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(f"{server.base}/api/v1/map", headers=ana).status_code in (200, 404)
    assert httpx.get(f"{server.base}/api/v1/users", headers=ana).status_code == 403

    credential = local_server.credential_path(db)
    assert stat.S_IMODE(credential.stat().st_mode) == 0o600
    assert json.loads(credential.read_text())["url"] == server.base

    revoked = corridor("keys", "revoke", leaked.key_id, *store)
    assert revoked.returncode == 0, revoked.stderr
    assert f"revoked {leaked.key_id}" in revoked.stdout
    assert f"this went through it at {server.base}" in revoked.stderr
    refused = httpx.get(f"{server.base}/api/v1/map", headers=ana)
    assert refused.status_code == 401 and "was revoked" in refused.text  # at once, no restart

    listed = corridor("users", "list", *store)
    assert listed.returncode == 0 and "root" in listed.stdout and "analyst" in listed.stdout
    added = corridor("users", "add", "etl", "--role", "analyst", "--password", PASSWORD, *store)
    assert added.returncode == 0 and "added etl (analyst)" in added.stdout, added.stderr
    made = corridor("keys", "create", "etl", "--name", "nightly", *store)
    assert made.returncode == 0, made.stderr
    key = next(line for line in made.stdout.splitlines() if line.startswith("cor_"))
    assert httpx.get(f"{server.base}/api/v1/map", headers={"X-API-Key": key}).status_code in (
        200,
        404,
    )
    keys = corridor("keys", "list", "--user", "etl", *store)
    assert key.split("_")[1] in keys.stdout and "nightly" in keys.stdout
    bad = corridor("users", "add", "ana", "--role", "analyst", "--password", PASSWORD, *store)
    assert bad.returncode == 2 and "user 'ana' already exists" in bad.stderr
    assert f"answered by the server at {server.base}" in bad.stderr
    assert "Traceback" not in bad.stderr
    removed = corridor("users", "remove", "etl", *store)
    assert removed.returncode == 0 and "sessions ended" in removed.stdout
    assert httpx.get(f"{server.base}/api/v1/map", headers={"X-API-Key": key}).status_code == 401

    # issue 13: analyses reach the server too, and print exactly what its API answers
    own = {"Authorization": f"Bearer {json.loads(credential.read_text())['key']}"}
    args = ("gaps", "--by", "touchpoint,region", "--where", "region=north,", "--period", "month")
    gaps = corridor(*args, "--format", "json", *store)
    assert gaps.returncode == 0, gaps.stderr
    assert f"this went through it at {server.base}" in gaps.stderr
    api = httpx.get(
        f"{server.base}/api/v1/gaps",
        params=[("by", "touchpoint,region"), ("region", "north,"), ("period", "month")],
        headers=own,
    )
    assert json.loads(gaps.stdout) == api.json()
    table = corridor("churn", "survival", "--by", "", *store)
    assert table.returncode == 0 and "Kaplan–Meier" in table.stdout, table.stderr
    wrong = corridor("gaps", "--by", "colour", *store)  # checked before any request
    assert wrong.returncode == 2 and "unknown by 'colour'" in wrong.stderr
    person = corridor("churn", "person", "nobody", "--format", "json", *store)
    # an empty store has no model yet: the server says so (status and reason)
    answer = json.loads(person.stdout)
    assert person.returncode == 0 and answer["status"] == "unavailable" and answer["reason"]

    # a graceful stop takes the credential (and the key in it) away
    server.stop()
    assert not credential.exists(), server.output()
    direct = corridor("users", "list", *store)
    assert direct.returncode == 0 and "went through" not in direct.stderr


def _hold(db: Path) -> subprocess.Popen[str]:
    """Another process holding the DuckDB file, as a server that stopped answering would."""
    code = (
        "import sys, time; from corridor.store import open_store\n"
        f"s = open_store({f'duckdb:///{db}'!r}); print('ready', flush=True); time.sleep(120)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=ENV
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_killed_server_or_no_server_gives_a_clear_message(db: Path, tmp_path: Path, servers):
    store = ("--store", f"duckdb:///{db}")
    credential = local_server.credential_path(db)
    # a server killed outright leaves its credential; the file is free again, so commands
    # open it directly and the stale credential changes nothing
    server = Server(db, tmp_path / "server.log")
    servers.append(server)
    assert credential.exists()
    server.stop(signal.SIGKILL)
    assert credential.exists()
    direct = corridor("users", "list", *store)
    assert direct.returncode == 0 and "root" in direct.stdout, direct.stderr

    # the file held by a process that does not answer, with the stale credential beside it
    holder = _hold(db)
    try:
        stale = corridor("keys", "revoke", "abc", *store)
        assert stale.returncode == 2 and "Traceback" not in stale.stderr
        message = " ".join(stale.stderr.split())
        assert f"{server.base}, but it does not answer" in message
        assert "stop that process and run the command again" in message
        assert "admin page" in message

        credential.unlink()  # no credential at all (a `corridor import` holds the file, say)
        none = corridor("users", "list", *store)
        assert none.returncode == 2 and "Traceback" not in none.stderr
        message = " ".join(none.stderr.split())
        assert "no server credential is next to it" in message
        assert "stop that process and run the command again" in message

        credential.write_text('{"url": "http://127.0.0.1:1", "key": "x"}')
        credential.chmod(0o644)  # readable by others: not trusted
        loose = corridor("users", "list", *store)
        assert loose.returncode == 2 and "is not private to you" in " ".join(loose.stderr.split())
    finally:
        holder.kill()
        holder.wait(10)
