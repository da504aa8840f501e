"""How a command on this machine reaches an embedded store that a running server holds.

A DuckDB file is open in one process at a time, so while ``corridor serve`` runs on one no other
command can open it. The server therefore publishes a *local admin credential* next to the store
(:func:`published`): the file ``.<store file name>.server.json``, readable by its owner only
(0600), holding the server's URL and a fresh random API key. The key belongs to a built-in admin
principal (:data:`SERVER_ADMIN`) that is no user in the store and exists only in that server
process: it dies with the process, and the file is removed when the server stops.

A command that finds the file locked (:class:`~corridor.errors.StoreLockedError`) asks
:func:`client_for` for a :class:`ServerClient` and makes its call over HTTP instead. Without a
credential, or with one left behind by a server that was killed, it gets a
:class:`~corridor.errors.StoreError` saying what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from corridor.auth.scope import Principal, Role
from corridor.errors import (
    AccountError,
    AuthenticationError,
    CorridorError,
    PermissionDeniedError,
    StoreError,
    StoreLockedError,
)

#: the principal of the server's own credential; its name is no valid username
SERVER_ADMIN = Principal("(server admin)", Role.ADMIN)
LOCAL_KEY_PREFIX = "cor_local_"
_STATE = "local_admin_key_hash"
TIMEOUT = 30.0


def credential_path(store_path: Path) -> Path:
    """Where the server on ``store_path`` publishes its credential."""
    return store_path.parent / f".{store_path.name}.server.json"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def server_url(host: str, port: int) -> str:
    """The URL a command on this machine uses: loopback for a server on every interface."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


# -- server side ------------------------------------------------------------------------------


def principal_for_key(state: Any, key: str) -> Principal | None:
    """:data:`SERVER_ADMIN` if ``key`` is this server's own credential, else ``None``."""
    digest: str | None = getattr(state, _STATE, None)
    if digest is None or not key.startswith(LOCAL_KEY_PREFIX):
        return None
    return SERVER_ADMIN if hmac.compare_digest(digest, _sha256(key)) else None


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable and writable by the owner only, atomically."""
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def published(app: Any, host: str, port: int) -> Iterator[Path | None]:
    """While the block runs, ``app`` accepts a fresh local admin key, published next to its
    store; yields the credential's path (``None`` for a store that is no file: PostgreSQL)."""
    store = app.state.store
    store_path: Path | None = getattr(store, "path", None) if store.dialect == "duckdb" else None
    if store_path is None:
        yield None
        return
    key = LOCAL_KEY_PREFIX + secrets.token_urlsafe(32)
    setattr(app.state, _STATE, _sha256(key))
    target = credential_path(store_path.resolve())
    document = {
        "url": server_url(host, port),
        "key": key,
        "pid": os.getpid(),
        "store": str(store_path.resolve()),
        "started_at": datetime.now(UTC).isoformat(),
    }
    # uvicorn stops gracefully on SIGTERM, then raises it again with the handler it found: make
    # that handler an exit, so the ``finally`` below runs and the credential goes with the server
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit) if in_main else None
    _write_private(target, json.dumps(document, indent=2))
    try:
        yield target
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        setattr(app.state, _STATE, None)
        with contextlib.suppress(OSError, ValueError):
            if json.loads(target.read_text(encoding="utf-8")).get("key") == key:
                target.unlink()


# -- command side -----------------------------------------------------------------------------


class ServerCallError(CorridorError):
    """The running server refused or failed a call made on a command's behalf."""


_ERRORS: dict[int, type[CorridorError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: AccountError,
    422: AccountError,
}


@dataclass(frozen=True)
class ServerClient:
    """Calls the API of the server that holds a store, as its built-in admin."""

    url: str
    key: str
    credential: Path

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Any = None,
        missing_ok: bool = False,
    ) -> Any:
        """One API call; its JSON answer, or the server's own error message raised (with
        ``missing_ok``, None for a 404)."""
        try:
            with httpx.Client(base_url=self.url, timeout=TIMEOUT) as client:
                r = client.request(
                    method,
                    path,
                    json=json_body,
                    params=params,
                    headers={"Authorization": f"Bearer {self.key}"},
                )
        except httpx.HTTPError as e:
            why = f"it does not answer ({e})"
            raise StoreError(_stale(self.credential, self.url, why)) from None
        if r.status_code == 401:
            raise StoreError(_stale(self.credential, self.url, "it does not accept its key"))
        if r.is_success:
            return r.json() if r.content else None
        if missing_ok and r.status_code == 404:
            return None
        try:
            message = str(r.json()["error"]["message"])
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {r.status_code}: {r.text[:300]}"
        raise _ERRORS.get(r.status_code, ServerCallError)(
            f"{message} (answered by the server at {self.url})"
        )


def _what_to_do(url: str | None) -> str:
    page = f"the admin page {url}/admin" if url else "the server's admin page (/admin)"
    return (
        f"stop that process and run the command again, or manage users and keys on {page} "
        "(or its API: /api/v1/users, /api/v1/keys)"
    )


def _stale(credential: Path, url: str, why: str) -> str:
    return (
        f"the store is held by another process, and the server credential {credential} names "
        f"{url}, but {why}: it was probably left behind by a server that was stopped abruptly "
        f"(it is replaced when a server starts). {_what_to_do(None)}"
    )


def holder_url(locked: StoreLockedError) -> str | None:
    """The address of the server that holds the store ``locked`` names, as its credential says
    (None when there is no readable credential)."""
    if locked.path is None:
        return None
    try:
        raw = credential_path(Path(locked.path).resolve()).read_text(encoding="utf-8")
        return str(json.loads(raw)["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def client_for(locked: StoreLockedError) -> ServerClient:
    """A client for the server that holds the store ``locked`` names, from its credential;
    :class:`StoreError` saying what to do when there is none that can be used."""
    if locked.path is None:
        raise locked
    path = credential_path(Path(locked.path).resolve())
    held = (
        f"the DuckDB store {locked.path} is open in another process (a running `corridor serve`?)"
    )
    try:
        info = path.stat()
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StoreError(
            f"{held}, and no server credential is next to it ({path}): {_what_to_do(None)}"
        ) from None
    except OSError as e:
        raise StoreError(
            f"{held}; its server credential {path} cannot be read ({e}): {_what_to_do(None)}"
        ) from None
    if sys.platform != "win32" and (info.st_uid != os.getuid() or info.st_mode & 0o077):
        raise StoreError(
            f"{held}; its server credential {path} is not private to you (owner uid "
            f"{info.st_uid}, mode {info.st_mode & 0o777:o}), so it is not used: "
            f"{_what_to_do(None)}"
        )
    try:
        doc = json.loads(raw)
        url, key = str(doc["url"]), str(doc["key"])
    except (ValueError, KeyError, TypeError):
        raise StoreError(
            f"{held}; its server credential {path} is not readable JSON with url and key: "
            f"{_what_to_do(None)}"
        ) from None
    return ServerClient(url.rstrip("/"), key, path)
