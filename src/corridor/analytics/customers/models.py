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

It also says how its fits are going (:meth:`FittedModels.state`): when the one in progress
started, when the kept model was fitted and how long that took, whether the latest fit failed,
and when the fit in progress should be done — the previous fit's time, or, before any, the
estimate its fitter gave (:meth:`FittedModels.fitting_round`, from the store's size). Pages and
the API tell a reader waiting for a first fit when to come back; the health route lists it.

Its owner can listen to fits (:meth:`FittedModels.on_fitted`): after each successful fit of a
model, its listeners are called with the key and the model (the app scores every customer with
a fresh churn model and checks the ``churn_jump`` alert rules). A listener that fails is
logged; the fit and the kept model stand.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from ibis.common.exceptions import TableNotFound

from corridor.analytics.core.dimensions import Source, get_table

T = TypeVar("T")
log = logging.getLogger("corridor.analytics")
#: called after a successful fit with the model's key and the model
Listener = Callable[[tuple[Any, ...], Any], None]

#: the kept models' names
CHURN_RISK = "churn_risk"
LIFETIME = "lifetime"


def slot(name: str, params: tuple[float, ...], defaults: tuple[float, ...]) -> str:
    """The name a model with these parameters is kept under: ``name`` itself for the defaults
    (what the app fits in the background, pages read and listeners hear of), ``name:other``
    for any other parameters, one slot for all of them. A query with another horizon is
    fitted and kept there, so it never evicts the default model that pages and the churn-jump
    rules rely on, and however many horizons are asked, at most one extra model is held."""
    return name if tuple(map(float, params)) == tuple(map(float, defaults)) else f"{name}:other"


#: what a model is doing: never fitted, being fitted (or waiting its turn in a round that
#: fits it), kept and idle, or its latest fit failed
ModelStatus = Literal["not_fitted", "fitting", "ready", "failed"]


@dataclass(frozen=True)
class ModelState:
    """How one kept model stands (:meth:`FittedModels.state`); times are UTC."""

    status: ModelStatus
    #: when the kept model's fit finished; None when none is kept
    fitted_at: datetime | None
    #: how long the latest finished fit took, in seconds
    took_s: float | None
    #: when the fit in progress (or the round it waits in) started
    started_at: datetime | None
    #: seconds until the fit in progress should be done (0: any moment now); None when no fit
    #: is in progress or nothing says how long it takes
    ready_in_s: float | None

    @property
    def first_fit(self) -> bool:
        """A fit is in progress and no model is kept yet: readers have nothing to read."""
        return self.status == "fitting" and self.fitted_at is None

    def pending(self) -> dict[str, Any]:
        """The fields a ``pending`` answer adds: ``fitting_started_at`` and ``ready_in_s``
        while a fit is in progress, ``reason`` when the latest one failed."""
        out: dict[str, Any] = {}
        if self.status == "fitting":
            at = self.started_at
            out["fitting_started_at"] = at.isoformat() if at is not None else None
            out["ready_in_s"] = None if self.ready_in_s is None else round(self.ready_in_s, 1)
        elif self.status == "failed":
            out["reason"] = (
                "the latest fit failed (the server's log says why); it is tried again shortly"
            )
        return out


@dataclass
class _Progress:
    """One model's fits, as :class:`FittedModels` records them (its clock's seconds)."""

    fitted_at: float | None = None  # when the kept model's fit finished
    took_s: float | None = None
    started: float | None = None  # the fit in progress
    queued: float | None = None  # waiting its turn in a round since
    since: float | None = None  # the fit in progress, or the round it is part of, started
    estimate_s: float | None = None  # the fitter's estimate, until a fit has been timed
    failed: bool = False


class FittedModels:
    """The fitted churn-risk and lifetime models of one store, each with the key (input
    fingerprint and parameters) it was fitted under, and how their fits are going. Thread-safe.

    ``clock``: wall-clock seconds (``time.time``), for tests."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._kept: dict[str, tuple[tuple[Any, ...], Any]] = {}
        self._fitting: dict[str, threading.Lock] = {}
        self._progress: dict[str, _Progress] = {}
        self._round: tuple[str, ...] = ()  # the models a fitter is fitting, in order
        self._listeners: dict[str, list[Listener]] = {}

    def on_fitted(self, name: str, listener: Listener) -> None:
        """Call ``listener(key, model)`` after each successful fit of the model ``name`` (in
        the fitting thread, before a caller waiting for that fit gets it; an exception it
        raises is logged, never passed on)."""
        with self._lock:
            self._listeners.setdefault(name, []).append(listener)

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
                with self._lock:
                    self._progress.setdefault(name, _Progress()).queued = None
                value: T = kept[1]
                return value
            with self._lock:
                p = self._progress.setdefault(name, _Progress())
                p.started = self._clock()
                p.since = p.queued if p.queued is not None else p.started
                p.queued = None
            try:
                value = fit()
            except BaseException:
                with self._lock:
                    p.started, p.failed = None, True
                raise
            with self._lock:
                self._kept[name] = (key, value)
                now = self._clock()
                assert p.started is not None
                p.took_s, p.fitted_at = max(now - p.started, 0.0), now
                p.started, p.failed = None, False
                listeners = list(self._listeners.get(name, ()))
            for listener in listeners:
                try:
                    listener(key, value)
                except Exception:
                    log.exception("a listener of the %s model's fits failed", name)
            return value

    @contextmanager
    def fitting_round(self, plan: Sequence[tuple[str, float | None]]) -> Iterator[None]:
        """While the block fits the models ``plan`` names, one after the other, each counts as
        being fitted from the start of the block (its :meth:`state` says when it should be
        done: after the ones before it). With each name goes the fitter's estimate of its fit
        in seconds (from the store's size), used until a fit of it has been timed."""
        with self._lock:
            now = self._clock()
            for name, estimate in plan:
                p = self._progress.setdefault(name, _Progress())
                p.queued = p.since = now
                p.estimate_s = estimate
            self._round = tuple(name for name, _ in plan)
        try:
            yield
        finally:
            with self._lock:
                for name in self._round:
                    self._progress[name].queued = None
                self._round = ()

    def state(self, name: str) -> ModelState:
        """How the model ``name`` stands: ``fitting`` while a fit of it is in progress or it
        waits its turn in a :meth:`fitting_round` (``ready_in_s``: the previous fit's time, or
        the round's estimate, after those before it), else ``failed`` when its latest fit
        failed, ``ready`` when one is kept, ``not_fitted`` when none ever was."""
        with self._lock:
            now = self._clock()
            p = self._progress.get(name) or _Progress()
            ready_at = self._ready_at(name, now)
            busy = p.started is not None or p.queued is not None
            status: ModelStatus
            if busy:
                status = "fitting"
            elif p.failed:
                status = "failed"
            else:
                status = "ready" if name in self._kept else "not_fitted"
            return ModelState(
                status=status,
                fitted_at=_utc(p.fitted_at) if name in self._kept else None,
                took_s=p.took_s,
                started_at=_utc(p.since) if busy else None,
                ready_in_s=None if ready_at is None else max(ready_at - now, 0.0),
            )

    def _ready_at(self, name: str, now: float) -> float | None:
        """When the fit of ``name`` in progress should be done (None when none is, or nothing
        says how long it takes): each model of the round up to it ends its expected time after
        it started, or after the one before it when waiting its turn; one that overran ends now
        at the earliest. Under the lock."""
        mine = self._progress.get(name)
        if mine is None or (mine.started is None and mine.queued is None):
            return None
        order = self._round if name in self._round else (name,)
        at = now
        for n in order[: order.index(name) + 1]:
            p = self._progress.get(n) or _Progress()
            expected = p.took_s if p.took_s is not None else p.estimate_s
            if p.started is None and p.queued is None:
                continue  # done (or skipped) in this round
            if expected is None:
                return None
            at = max(p.started + expected, now) if p.started is not None else at + expected
        return at

    def clear(self) -> None:
        """Forget every kept model (the next call fits)."""
        with self._lock:
            self._kept.clear()


def _utc(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


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


__all__ = [
    "CHURN_RISK",
    "LIFETIME",
    "FittedModels",
    "Listener",
    "ModelState",
    "ModelStatus",
    "store_state",
]
