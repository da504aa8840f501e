"""The Python SDK: the same analyses in process (:func:`connect`) or over HTTP (:class:`Client`).

::

    import corridor

    with corridor.connect("duckdb:corridor-data/corridor.duckdb") as cx:   # in process
        gaps = cx.gaps(by=["touchpoint", "region"], period="month")
    api = corridor.Client("http://127.0.0.1:8765", api_key="cor_…")       # a running server
    gaps = api.gaps(by=["touchpoint", "region"], period="month")
    gaps.frame            # a pandas DataFrame; gaps.n, gaps.confidence, gaps.method
    gaps.summary()        # a few lines to read; in a notebook the result shows as a table

Both expose one method per registered analysis (generated from the registry, so a new analysis
appears here by itself), taking the calling convention of
:mod:`corridor.analytics.core.registry` (``by``, ``filters``, ``since``, ``until``, ``period``,
``confidence`` and the analysis' own parameters) and returning an
:class:`~corridor.analytics.core.result.AnalyticsResult`: the same rows either way. Over HTTP the
server applies the caller's scope (a department head's key sees their department), and errors
arrive as the same :class:`~corridor.errors.CorridorError` types with the server's message.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Self
from urllib.parse import quote

import pandas as pd

from corridor.analytics.core import registry
from corridor.analytics.core.registry import Analysis
from corridor.analytics.core.result import AnalyticsResult
from corridor.analytics.customers.outlook import PersonChurnRisk, PersonLifetimeValue
from corridor.errors import (
    AuthenticationError,
    CorridorError,
    PermissionDeniedError,
    StoreError,
)


class RemoteResult(AnalyticsResult):
    """A result read back from the API: the same frame, n, confidence, method and query; the
    declared extras (``model``, ``test``, ``summary``...) in :attr:`extra`."""

    def metadata(self) -> dict[str, Any]:
        meta = super().metadata()
        meta["kind"] = self.extra.get("kind", meta["kind"])
        return meta


def _method(a: Analysis) -> Any:
    def method(self: _Analyses, **params: Any) -> AnalyticsResult:
        return self.run(a.name, **params)

    method.__name__ = a.name
    lines = [a.title + ".", "", a.description, "", "Parameters:"]
    for p in a.parameters():
        lines.append(f"    {p.name}: {p.describe()}")
    if a.filters:
        lines.append(f"    filters: {{dimension: [values]}} for {', '.join(a.filters)}")
    method.__doc__ = "\n".join(lines)
    return method


class _Analyses:
    """What a connection and a client share: one method per registered analysis (added below
    from the registry), and a ``with`` block that closes them."""

    def run(self, name: str, **params: Any) -> AnalyticsResult:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def analyses(self) -> list[str]:
        """The names of the analyses this connection can run."""
        return [a.name for a in registry.analyses().values() if not a.person]


for _a in registry.analyses().values():
    if not _a.person:
        setattr(_Analyses, _a.name, _method(_a))


class Connection(_Analyses):
    """Analyses in process, over a store opened from its URL (see :func:`connect`)."""

    def __init__(self, url: str | None = None) -> None:
        from corridor.analytics.customers.models import FittedModels
        from corridor.store import open_store, require_store

        require_store(url)
        self.store = open_store(url)
        #: the churn-risk and lifetime models this connection fitted (refitted when the store
        #: changes): a second person's lookup reuses them
        self.models = FittedModels()

    def run(self, name: str, **params: Any) -> AnalyticsResult:
        """Run the analysis ``name`` (the same as calling its method)."""
        return registry.get(name)(self.store, **params)

    def person_risk(self, person_id: str, *, horizon_months: float = 3.0) -> PersonChurnRisk:
        """One customer's probability of churning within ``horizon_months``, with its
        interval and reasons (``status`` active, churned or unknown)."""
        from corridor.analytics.customers.churn_risk import person_risk

        found = person_risk(self.store, person_id, horizon_months, models=self.models)
        return PersonChurnRisk.model_validate(found)

    def person_value(
        self, person_id: str, *, horizon_months: float = 12.0, discount_monthly: float = 0.01
    ) -> PersonLifetimeValue:
        """One buyer's P(alive), expected purchases, expected value and CLV with intervals."""
        from corridor.analytics.customers.lifetime import person_value

        found = person_value(
            self.store, person_id, horizon_months, discount_monthly, models=self.models
        )
        return PersonLifetimeValue.model_validate(found)

    def close(self) -> None:
        self.store.close()

    def __repr__(self) -> str:
        return f"corridor.Connection({self.store.url!r})"


def connect(url: str | None = None) -> Connection:
    """Open a store in process: ``duckdb:///abs/path.duckdb``, ``duckdb:rel/path.duckdb``, a
    plain path, or ``postgresql://user@host/db`` (default: ``CORRIDOR_STORE``, else
    ``corridor-data/corridor.duckdb``). The store must exist."""
    return Connection(url)


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [str(v) for v in value] or [""]
    return str(value)


def query_params(a: Analysis, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The query string of a request for ``a`` with these keyword arguments."""
    out: list[tuple[str, str]] = []
    for key, value in params.items():
        if key == "filters":
            for dim, values in (value or {}).items():
                vals = [values] if values is None or isinstance(values, str) else list(values)
                out.extend((dim, "" if v is None else str(v)) for v in vals)
            continue
        if value is None:
            continue
        if key == "confidence" and value == 0.95 and not a.confidence:
            continue
        shown = _query_value(value)
        if isinstance(shown, list):
            out.extend((key, v) for v in shown)
        else:
            out.append((key, shown))
    return out


_ERRORS: dict[int, type[CorridorError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
}


class Client(_Analyses):
    """The analyses of a running Corridor server (``corridor serve``), over its API.

    ``api_key``: a key from ``corridor keys create USER`` (default: ``CORRIDOR_API_KEY``); the
    server applies that user's scope.
    """

    def __init__(
        self, base_url: str, api_key: str | None = None, *, timeout: float = 300.0
    ) -> None:
        import os

        import httpx

        key = api_key or os.environ.get("CORRIDOR_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def get(self, path: str, params: Any = None) -> Any:
        """``GET /api/v1{path}``: the JSON body, or the server's error as a CorridorError."""
        import httpx

        try:
            r = self._http.get(f"/api/v1{path}", params=params)
        except httpx.HTTPError as e:
            raise StoreError(
                f"cannot reach the Corridor server at {self.base_url}: {e}; is `corridor "
                "serve` running there?"
            ) from None
        if r.status_code >= 400:
            try:
                message = r.json()["error"]["message"]
            except Exception:
                message = r.text[:200] or f"HTTP {r.status_code}"
            cls = _ERRORS.get(r.status_code, CorridorError)
            err = cls(message)
            err.status_code = r.status_code
            raise err
        return r.json()

    def run(self, name: str, **params: Any) -> AnalyticsResult:
        """Run the analysis ``name`` on the server (the same as calling its method)."""
        a = registry.get(name)
        a.bind(params)  # the same checks and messages as in process, before any request
        return result_from_body(a, self.get(a.path, query_params(a, params)))

    def person_risk(self, person_id: str, *, horizon_months: float = 3.0) -> PersonChurnRisk:
        body = self.get(
            f"/churn/risk/{quote(person_id, safe='')}", {"horizon_months": horizon_months}
        )
        return PersonChurnRisk.model_validate(body)

    def person_value(
        self, person_id: str, *, horizon_months: float = 12.0, discount_monthly: float = 0.01
    ) -> PersonLifetimeValue:
        """One buyer's P(alive), expected purchases, expected value and CLV with intervals."""
        params = {"horizon_months": horizon_months, "discount_monthly": discount_monthly}
        body = self.get(f"/lifetime/people/{quote(person_id, safe='')}", params)
        return PersonLifetimeValue.model_validate(body)

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"corridor.Client({self.base_url!r})"


_BASE = ("analysis", "title", "n", "confidence", "method", "query", "rows")


def result_from_body(a: Analysis, body: Mapping[str, Any]) -> AnalyticsResult:
    """An API reply as a result: timestamps typed as UTC times again."""
    frame = pd.DataFrame(body.get("rows") or [])
    times = {c.name for c in a.columns if c.type == "datetime"} | {"period"}
    for col in frame.columns:
        if col in times:
            frame[col] = pd.to_datetime(frame[col], utc=True)
    return RemoteResult(
        frame=frame,
        n=int(body.get("n") or 0),
        confidence=float(body.get("confidence") or 0.95),
        method=str(body.get("method") or ""),
        query=dict(body.get("query") or {}),
        extra={k: v for k, v in body.items() if k not in _BASE},
    )


__all__ = [
    "Client",
    "Connection",
    "PersonChurnRisk",
    "PersonLifetimeValue",
    "RemoteResult",
    "connect",
    "query_params",
    "result_from_body",
]
