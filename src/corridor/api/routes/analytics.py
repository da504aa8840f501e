"""The store's read rule, as the route modules still in use call it (``_read_lock``).

The analysis routes themselves are generated from the registry (:mod:`corridor.api.analyses`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from corridor.store import Store


def _read_lock(store: Store) -> AbstractContextManager[None]:
    """The store's rule for concurrent reads (:meth:`corridor.store.Store.reading`)."""
    return store.reading()
