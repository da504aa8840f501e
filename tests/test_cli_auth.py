"""``corridor users`` and ``corridor keys`` in a real process, on DuckDB and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from corridor.auth import accounts
from corridor.store import open_store


def corridor(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corridor.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        timeout=120,
    )


def test_users_and_keys_round_trip(store_url):
    open_store(store_url).close()  # users and keys go into an existing store
    s = "--store", store_url
    made = corridor(
        "users",
        "add",
        "lena",
        "--role",
        "department_head",
        "--department",
        "logistics",
        "--password",
        "pw-long-enough",
        *s,
    )
    assert made.returncode == 0, made.stderr
    assert "department head · logistics" in made.stdout
    with open_store(store_url) as st:  # argon2id at argon2-cffi's recommended parameters
        stored = st.query("SELECT password_hash FROM users WHERE username = 'lena'")[0][0]
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$"), stored
    # the password may come from a hidden prompt, asked twice
    prompted = corridor(
        "users", "add", "ana", "--role", "analyst", *s, stdin="secret-pw\nsecret-pw\n"
    )
    assert prompted.returncode == 0, prompted.stderr
    listed = corridor("users", "list", *s)
    assert "lena" in listed.stdout and "ana" in listed.stdout and "department_head" in listed.stdout

    bad = corridor("users", "add", "bob", "--role", "boss", "--password", "pw-long-enough", *s)
    assert bad.returncode == 2 and "unknown role 'boss'" in bad.stderr
    assert "Traceback" not in bad.stderr

    key = corridor("keys", "create", "ana", "--name", "etl", *s)
    assert key.returncode == 0, key.stderr
    secret = next(line for line in key.stdout.splitlines() if line.startswith("cor_"))
    with open_store(store_url) as st:
        assert accounts.authenticate_key(st, secret).username == "ana"
    key_id = secret.split("_")[1]
    assert key_id in corridor("keys", "list", *s).stdout
    assert corridor("keys", "revoke", key_id, *s).returncode == 0
    with open_store(store_url) as st, pytest.raises(Exception, match="revoked"):
        accounts.authenticate_key(st, secret)

    removed = corridor("users", "remove", "lena", *s)
    assert removed.returncode == 0 and "sessions ended" in removed.stdout
    missing = corridor("users", "remove", "lena", *s)
    assert missing.returncode == 2 and "no user 'lena'" in missing.stderr
