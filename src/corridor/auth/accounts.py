"""Users, API keys and web sessions, kept in the store.

- Passwords are hashed with argon2id (``argon2-cffi``, its recommended parameters); a hash made
  with older parameters is re-hashed at the next successful sign-in.
- An API key reads ``cor_<key_id>_<secret>``: ``key_id`` (public, shown in lists) finds the row,
  and only the SHA-256 of the 256-bit random secret is stored. A key that high in entropy needs
  no slow hash; the comparison is constant-time.
- A web session is a random token in an HTTP-only cookie; the store keeps only its SHA-256 and
  an expiry, so signing out, removing the user or a stolen database never yields a live cookie.

Removing a user revokes their keys and ends their sessions in the same transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from corridor.auth.scope import ROLES, Principal, Role
from corridor.domain.plain_text import has_control
from corridor.errors import AccountError, AuthenticationError
from corridor.loop.cases import release_assignee
from corridor.store import Store
from corridor.store.maps import load_map

_HASHER = PasswordHasher()
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
KEY_PREFIX = "cor_"
MIN_PASSWORD = 8
SESSION_TTL = timedelta(hours=12)


@cache
def _dummy_hash() -> str:
    """A hash to verify against when the user does not exist, so that sign-in takes as long
    for an unknown user as for a wrong password. Made on first need, not on import: hashing
    takes ~0.12 s, and every CLI command imports this module."""
    return _HASHER.hash("not a password of anyone")


@dataclass(frozen=True)
class User:
    username: str
    role: Role
    department: str | None
    partner: str | None
    created_at: datetime

    def principal(self) -> Principal:
        return Principal(self.username, self.role, self.department, self.partner)


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    username: str
    name: str | None
    created_at: datetime
    revoked_at: datetime | None


def _now() -> datetime:
    return datetime.now(UTC)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _user(row: tuple[Any, ...]) -> User:
    name, role, dept, partner, created = row
    return User(name, Role(role), dept, partner, created)


def _printable(value: str | None, what: str) -> None:
    """Refuse control characters (NUL above all: PostgreSQL text cannot hold it)."""
    if value is not None and has_control(value):
        raise AccountError(f"the {what} {value!r} holds a control character; remove it")


def _check_department(store: Store, department: str) -> None:
    """A department head's department must be one of the corridor map's (once a map is
    loaded): a misspelt one would make an account that sees nothing. (A partner is an id in
    the records, which may come after its manager's account: not checked.)"""
    cmap = load_map(store)
    problem = cmap.unknown("department", department) if cmap is not None else None
    if problem:
        raise AccountError(problem)


def add_user(
    store: Store,
    username: str,
    password: str,
    role: str,
    *,
    department: str | None = None,
    partner: str | None = None,
) -> User:
    """Create a user. A department head needs ``department``, a partner manager ``partner``."""
    if not _USERNAME.match(username):
        raise AccountError(
            f"username {username!r} is not allowed: use 1-64 letters, digits, '.', '_', '@' "
            "or '-', starting with a letter or digit"
        )
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; use one of: {', '.join(ROLES)}")
    _printable(department, "department")
    _printable(partner, "partner")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    r = Role(role)
    if r is Role.DEPARTMENT_HEAD and not department:
        raise AccountError("a department head needs a department (--department)")
    if r is Role.PARTNER_MANAGER and not partner:
        raise AccountError("a partner manager needs a partner id (--partner)")
    if r is not Role.DEPARTMENT_HEAD and department:
        raise AccountError(f"only a department head has a department, not a {role}")
    if r is not Role.PARTNER_MANAGER and partner:
        raise AccountError(f"only a partner manager has a partner, not a {role}")
    if department:
        _check_department(store, department)
    now = _now()
    with store.transaction() as tx:
        if tx.fetchall("SELECT 1 FROM users WHERE username = ?", (username,)):
            raise AccountError(f"user {username!r} already exists; remove it first or pick another")
        tx.execute(
            "INSERT INTO users (username, role, department, partner, password_hash, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (username, r.value, department, partner, _HASHER.hash(password), now),
        )
    return User(username, r, department, partner, now)


def list_users(store: Store) -> list[User]:
    rows = store.query(
        "SELECT username, role, department, partner, created_at FROM users ORDER BY username"
    )
    return [_user(r) for r in rows]


def get_user(store: Store, username: str) -> User | None:
    if not _USERNAME.match(username):
        return None  # no such user can exist (and a NUL would break PostgreSQL's text)
    rows = store.query(
        "SELECT username, role, department, partner, created_at FROM users WHERE username = ?",
        (username,),
    )
    return _user(rows[0]) if rows else None


def remove_user(store: Store, username: str) -> None:
    """Remove a user, revoke their API keys and end their sessions; their notification settings
    go, the lines of their next digest are cancelled, and the cases given to them and not
    closed go back to their owners' queues (a user added again under the name, perhaps with
    another role, starts with none of them)."""
    if not _USERNAME.match(username):
        raise AccountError(f"no user {username!r}; `corridor users list` shows who exists")
    with store.transaction() as tx:
        if not tx.fetchall("SELECT 1 FROM users WHERE username = ?", (username,)):
            raise AccountError(f"no user {username!r}; `corridor users list` shows who exists")
        tx.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE username = ? AND revoked_at IS NULL",
            (_now(), username),
        )
        tx.execute("DELETE FROM web_sessions WHERE username = ?", (username,))
        tx.execute("DELETE FROM notification_prefs WHERE username = ?", (username,))
        tx.execute(
            "UPDATE outbox SET state = 'cancelled', last_error = 'the user was removed' "
            "WHERE target_kind = 'digest' AND target = ? AND state = 'pending'",
            (username,),
        )
        release_assignee(tx, username, _now())
        tx.execute("DELETE FROM users WHERE username = ?", (username,))


def verify_password(store: Store, username: str, password: str) -> User:
    """The user, if the password is theirs; else :class:`AuthenticationError` (one message for
    an unknown user and a wrong password, so sign-in does not reveal who exists)."""
    rows = store.query("SELECT password_hash FROM users WHERE username = ?", (username,))
    stored = rows[0][0] if rows else _dummy_hash()
    try:
        _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        raise AuthenticationError("wrong username or password") from None
    if not rows:
        raise AuthenticationError("wrong username or password")
    if _HASHER.check_needs_rehash(stored):
        with store.transaction() as tx:
            tx.execute(
                "UPDATE users SET password_hash = ? WHERE username = ?",
                (_HASHER.hash(password), username),
            )
    user = get_user(store, username)
    if user is None:  # removed in between
        raise AuthenticationError("wrong username or password")
    return user


#: the longest name an API key may have (a label: what the key is for)
MAX_KEY_NAME = 200


def create_key(store: Store, username: str, name: str | None = None) -> tuple[ApiKey, str]:
    """A new API key for ``username``: the key record and the secret key text, which is shown
    once and never stored."""
    if get_user(store, username) is None:
        raise AccountError(f"no user {username!r}; create it with `corridor users add` first")
    _printable(name, "key name")
    if name is not None and len(name) > MAX_KEY_NAME:
        raise AccountError(
            f"a key name holds at most {MAX_KEY_NAME} characters: what the key is for"
        )
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    now = _now()
    with store.transaction() as tx:
        tx.execute(
            "INSERT INTO api_keys (key_id, username, name, key_hash, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (key_id, username, name, _sha256(secret), now),
        )
    return ApiKey(key_id, username, name, now, None), f"{KEY_PREFIX}{key_id}_{secret}"


def list_keys(store: Store, username: str | None = None) -> list[ApiKey]:
    sql = "SELECT key_id, username, name, created_at, revoked_at FROM api_keys"
    if not username:
        rows = store.query(sql + " ORDER BY username, created_at")
    elif _USERNAME.match(username):
        rows = store.query(sql + " WHERE username = ? ORDER BY created_at", (username,))
    else:
        rows = []  # no such user can exist
    return [ApiKey(*r) for r in rows]


def key_id_of(text: str) -> str:
    """The key id in a key id or a whole key (``cor_<id>_<secret>``)."""
    return text.strip().removeprefix(KEY_PREFIX).split("_", 1)[0]


def get_key(store: Store, key_id: str) -> ApiKey | None:
    """The record of one API key (by id, or the whole key), or ``None``."""
    rows = store.query(
        "SELECT key_id, username, name, created_at, revoked_at FROM api_keys WHERE key_id = ?",
        (key_id_of(key_id),),
    )
    return ApiKey(*rows[0]) if rows else None


def revoke_key(store: Store, key_id: str) -> None:
    key_id = key_id_of(key_id)
    with store.transaction() as tx:
        rows = tx.fetchall("SELECT revoked_at FROM api_keys WHERE key_id = ?", (key_id,))
        if not rows:
            raise AccountError(f"no API key {key_id!r}; `corridor keys list` shows the key ids")
        if rows[0][0] is None:
            tx.execute("UPDATE api_keys SET revoked_at = ? WHERE key_id = ?", (_now(), key_id))


def authenticate_key(store: Store, key: str) -> User:
    """The user an API key belongs to; :class:`AuthenticationError` if it is not a live key."""
    body = key.strip().removeprefix(KEY_PREFIX)
    key_id, _, secret = body.partition("_")
    if not key.strip().startswith(KEY_PREFIX) or not secret:
        raise AuthenticationError(
            "that is not a Corridor API key (they read cor_<id>_<secret>); "
            "create one with `corridor keys create USER`"
        )
    rows = store.query(
        "SELECT k.key_hash, k.revoked_at, u.username, u.role, u.department, u.partner, "
        "u.created_at FROM api_keys k JOIN users u ON u.username = k.username "
        "WHERE k.key_id = ?",
        (key_id,),
    )
    if not rows or not hmac.compare_digest(rows[0][0], _sha256(secret)):
        raise AuthenticationError("unknown API key; check it or create a new one")
    if rows[0][1] is not None:
        raise AuthenticationError(f"API key {key_id} was revoked; create a new one")
    return _user(rows[0][2:])


def start_session(store: Store, user: User, ttl: timedelta = SESSION_TTL) -> str:
    """A new web session for ``user``; returns the cookie token."""
    token = secrets.token_urlsafe(32)
    now = _now()
    with store.transaction() as tx:
        tx.execute("DELETE FROM web_sessions WHERE expires_at < ?", (now,))
        tx.execute(
            "INSERT INTO web_sessions (token_hash, username, created_at, expires_at) "
            "VALUES (?, ?, ?, ?)",
            (_sha256(token), user.username, now, now + ttl),
        )
    return token


def session_user(store: Store, token: str) -> User | None:
    """The user of a live session token, or ``None``."""
    rows = store.query(
        "SELECT u.username, u.role, u.department, u.partner, u.created_at FROM web_sessions s "
        "JOIN users u ON u.username = s.username WHERE s.token_hash = ? AND s.expires_at > ?",
        (_sha256(token), _now()),
    )
    return _user(rows[0]) if rows else None


def end_session(store: Store, token: str) -> None:
    with store.transaction() as tx:
        tx.execute("DELETE FROM web_sessions WHERE token_hash = ?", (_sha256(token),))
