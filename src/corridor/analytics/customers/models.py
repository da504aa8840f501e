"""Fitted per-person models, held by whoever owns them (the app), never by a module.

A customer page asks one person's churn risk and lifetime value; the models behind them are
fitted on the whole store (a minute or more on a large one), so they are fitted once per state
of their inputs and kept. :class:`FittedModels` keeps them: one object per store, made by its
owner (``create_app`` puts one in ``app.state.models``) and handed to
:func:`~corridor.analytics.customers.churn_risk.person_risk` and
:func:`~corridor.analytics.customers.lifetime.person_value` as ``models=``. Without one, a call
fits afresh and keeps nothing.

Each model is kept with the key it was fitted under: the :func:`store_state` fingerprint of its
inputs and its parameters. A call whose key differs fits again (one fit at a time per model;
callers asking meanwhile wait for it and share it), and ``refit=False`` callers take whatever
model is kept, however old, without waiting.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ibis.common.exceptions import TableNotFound

from corridor.analytics.core.dimensions import Source, get_table

T = TypeVar("T")

#: the kept models' names
CHURN_RISK = "churn_risk"
LIFETIME = "lifetime"


class FittedModels:
    """The fitted churn-risk and lifetime models of one store, each with the key (input
    fingerprint and parameters) it was fitted under. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[str, tuple[tuple[Any, ...], Any]] = {}
        self._fitting: dict[str, threading.Lock] = {}

    def latest(self, name: str) -> tuple[tuple[Any, ...], Any] | None:
        """The model kept under ``name`` and its key, however old; None when none is."""
        with self._lock:
            return self._kept.get(name)

    def fitted(self, name: str, key: tuple[Any, ...], fit: Callable[[], T]) -> T:
        """The model ``name`` fitted under ``key``: the kept one when its key is ``key``, else
        ``fit()``'s, which is kept from then on (one fit at a time per name: a caller arriving
        meanwhile waits and takes that fit when its key is the same)."""
        with self._lock:
            gate = self._fitting.setdefault(name, threading.Lock())
        with gate:
            kept = self.latest(name)
            if kept is not None and kept[0] == key:
                value: T = kept[1]
                return value
            value = fit()
            with self._lock:
                self._kept[name] = (key, value)
            return value

    def clear(self) -> None:
        """Forget every kept model (the next call fits)."""
        with self._lock:
            self._kept.clear()


def store_state(source: Source) -> tuple[Any, ...]:
    """A cheap fingerprint of what the per-person models read; any ingest that changes a record
    changes it.

    Row counts and latest times of interactions and feedback, the people count, and the
    store's change markers: the number and time of the committed ingest batches that stored or
    updated records (a profile update of known people, re-sent with the same ids, changes
    nothing else counted here), and the corridor map's version. A source without those tables
    (a mapping of tables, a store at an old schema) is fingerprinted by the rest."""
    i = get_table(source, "interactions")
    f = get_table(source, "feedback")
    p = get_table(source, "people")
    # to_pandas: an empty table's MAX is NULL, which to_pyarrow refuses on PostgreSQL
    a = i.aggregate(n=i.count(), t=i.occurred_at.max()).to_pandas().iloc[0]
    b = f.aggregate(n=f.count(), t=f.occurred_at.max()).to_pandas().iloc[0]
    c = p.aggregate(n=p.count()).to_pandas().iloc[0]
    state: tuple[Any, ...] = (int(a["n"]), str(a["t"]), int(b["n"]), str(b["t"]), int(c["n"]))
    batches = _optional(source, "ingest_batches")
    if batches is not None:
        changed = batches.filter(batches.accepted > batches.duplicates)
        d = changed.aggregate(n=changed.count(), t=changed.received_at.max()).to_pandas().iloc[0]
        state += (int(d["n"]), str(d["t"]))
    maps = _optional(source, "corridor_maps")
    if maps is not None:
        state += (str(maps.aggregate(v=maps.version.max()).to_pandas().iloc[0]["v"]),)
    return state


def _optional(source: Source, name: str) -> Any:
    """Table ``name`` of ``source``, or None when it has none."""
    if isinstance(source, Mapping):
        return source.get(name)
    try:
        return get_table(source, name)
    except TableNotFound:  # a store at a schema version without it
        return None


__all__ = ["CHURN_RISK", "LIFETIME", "FittedModels", "store_state"]
