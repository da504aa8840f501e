"""The store's read rule, as the route modules still in use call it (``_read_lock``).

The analysis routes themselves are generated from the registry (:mod:`corridor.api.analyses`).
"""

from __future__ import annotations

import threading

from corridor.store import Store

# One reader at a time per store connection: DuckDB connections are not shared across threads.
_read_locks: dict[int, threading.Lock] = {}


def _read_lock(store: Store) -> threading.Lock:
    return _read_locks.setdefault(id(store), threading.Lock())
