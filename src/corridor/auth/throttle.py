"""The sign-in throttle: failed passwords per (account, client address) pair, kept in the store.

A pair may fail ``limit`` times; the failure that reaches the limit locks that pair for ``base``
seconds, and each failure after a lock has passed doubles the wait, up to ``cap``. A successful
sign-in clears the pair; a pair with no failure for ``forget`` starts again from nothing.

Only the pair is locked: the same name from another address, and every other name from the same
address, are never slowed. So someone guessing one account's password cannot lock out the admin
(or anyone else) signing in from the same office network, and cannot lock the account for its
owner at another address. Requests refused while a pair is locked are not checked and not
counted, so pressing *Sign in* again does not lengthen the wait.

The state is a table (``login_failures``), not process memory: every server process on one store
shares it and a restart does not reset it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from corridor.store import Store

#: longest username kept as a key; longer names cannot exist (64 characters at most)
_NAME_CHARS = 128


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class LoginThrottle:
    store: Store
    limit: int = 5
    base: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(minutes=15)
    forget: timedelta = timedelta(hours=1)
    clock: Callable[[], datetime] = field(default=_utcnow)

    def wait(self, username: str, address: str) -> float:
        """Seconds until this pair may try again (0.0: now)."""
        now = self.clock()
        rows = self.store.query(
            "SELECT locked_until FROM login_failures "
            "WHERE username = ? AND address = ? AND locked_until > ?",
            (username[:_NAME_CHARS], address, now),
        )
        return max((rows[0][0] - now).total_seconds(), 0.0) if rows else 0.0

    def lock_for(self, failures: int) -> timedelta | None:
        """How long ``failures`` failures in a row lock a pair (``None``: not yet)."""
        if failures < self.limit:
            return None
        doubled = self.base * 2 ** min(failures - self.limit, 30)
        return min(doubled, self.cap)

    def failed(self, username: str, address: str) -> float:
        """Count a wrong password; returns the seconds the pair is now locked (0.0: not)."""
        now, name = self.clock(), username[:_NAME_CHARS]
        with self.store.transaction() as tx:
            # forgotten pairs go, so the table holds recent failures only
            tx.execute("DELETE FROM login_failures WHERE last_failed_at < ?", (now - self.forget,))
            tx.execute(
                "INSERT INTO login_failures (username, address, failures, last_failed_at) "
                "VALUES (?, ?, 1, ?) ON CONFLICT (username, address) DO UPDATE SET "
                "failures = login_failures.failures + 1, last_failed_at = excluded.last_failed_at",
                (name, address, now),
            )
            failures = int(
                tx.fetchall(
                    "SELECT failures FROM login_failures WHERE username = ? AND address = ?",
                    (name, address),
                )[0][0]
            )
            lock = self.lock_for(failures)
            if lock is not None:
                tx.execute(
                    "UPDATE login_failures SET locked_until = ? WHERE username = ? AND address = ?",
                    (now + lock, name, address),
                )
        return lock.total_seconds() if lock else 0.0

    def succeeded(self, username: str, address: str) -> None:
        with self.store.transaction() as tx:
            tx.execute(
                "DELETE FROM login_failures WHERE username = ? AND address = ?",
                (username[:_NAME_CHARS], address),
            )
