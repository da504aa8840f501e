"""The dashboard's pages: sign-in, overview, touch point, customer, department, partner.

Pages are rendered on the server (Jinja2) and draw their charts with plotly.js, which Corridor
serves itself from the ``plotly`` package: nothing is loaded from a CDN, so the dashboard works
air-gapped. A page a role may not see answers 403 with a page saying why and where to go; a
visitor without a session is sent to ``/login`` and back afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import anyio.to_thread
import orjson
from fastapi import APIRouter, FastAPI, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

import corridor
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.api.analyses import query_lists
from corridor.api.answer_cache import PAGE_WEIGHT, AnswerCache, behind_header
from corridor.api.deps import SESSION_COOKIE, current_principal
from corridor.auth import accounts
from corridor.auth.scope import Principal, Role, Scope
from corridor.auth.throttle import LoginThrottle
from corridor.domain.corridor_map import CorridorMap
from corridor.domain.plain_text import shown
from corridor.errors import AuthenticationError, PermissionDeniedError
from corridor.ingest.pipeline import Ingestor
from corridor.settings import Settings
from corridor.store import Store
from corridor.web import case_views, customer_views, forecast_views, models, org_views, views

router = APIRouter(include_in_schema=False)


def _printed(value: Any) -> Any:
    """Every value a template prints: a text's control characters shown as U+FFFD (a page
    never sends a raw NUL or escape byte, whether it was stored or just typed into a form that
    is shown again); markup the code made is left as it is."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return shown(value)
    return value


_env = Environment(
    loader=PackageLoader("corridor.web", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
    finalize=_printed,
)


def _fmt(value: Any, spec: str = "{:.2f}") -> str:
    if value is None:
        return "–"
    try:
        return spec.format(value)
    except (TypeError, ValueError):
        return str(value)


def _chart(spec: dict[str, Any] | None, label: str | None = None) -> Markup:
    """A chart placeholder: the figure as JSON in a data attribute, drawn by corridor.js."""
    if not spec:
        return Markup("")
    title = label or spec.get("title") or "chart"
    payload = orjson.dumps({"data": spec["data"], "layout": spec["layout"]}).decode()
    return Markup(
        '<figure class="chart" role="img" aria-label="{t}"><div class="plot" data-figure="{p}">'
        '</div><figcaption class="sr-only">{t}</figcaption></figure>'
    ).format(t=title, p=payload)


def _spark(values: list[float | None], width: int = 120, height: int = 28) -> Markup:
    """A tiny inline SVG trend line (decorative: the numbers are in the text beside it)."""
    pts = [(i, v) for i, v in enumerate(values) if v is not None]
    if len(pts) < 2:
        return Markup("")
    lo, hi = min(v for _, v in pts), max(v for _, v in pts)
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    span = (hi - lo) or 1.0
    step = width / max(len(values) - 1, 1)

    def y(v: float) -> float:
        return height - 2 - (v - lo) / span * (height - 4)

    line = " ".join(f"{i * step:.1f},{y(v):.1f}" for i, v in pts)
    return Markup(
        '<svg class="spark" width="{w}" height="{h}" viewBox="0 0 {w} {h}" aria-hidden="true">'
        '<line x1="0" x2="{w}" y1="{z:.1f}" y2="{z:.1f}" class="zero"/>'
        '<polyline points="{p}"/></svg>'
    ).format(w=width, h=height, z=y(0.0), p=line)


_env.filters["fmt"] = _fmt
_env.filters["spark"] = _spark
_env.globals["figure"] = _chart
_env.globals["version"] = corridor.__version__

_PLOTLY = Path(str(resources.files("plotly").joinpath("package_data", "plotly.min.js")))
_STATIC = resources.files("corridor.web").joinpath("static")


def _home_for(p: Principal) -> str:
    if p.role is Role.DEPARTMENT_HEAD:
        return f"/departments/{quote(p.department or '')}"
    if p.role is Role.PARTNER_MANAGER:
        return f"/partners/{quote(p.partner or '')}"
    if p.role is Role.AGENT:
        return "/customers"
    return "/"


def _nav(scope: Scope) -> list[dict[str, str]]:
    items = []
    if scope.sees_all:
        items.append({"href": "/", "label": "Corridor"})
    if scope.may_analyse:
        items.append({"href": "/departments", "label": "Departments"})
        items.append({"href": "/partners", "label": "Partners"})
    items.append({"href": "/customers", "label": "Customers"})
    items.append({"href": "/cases", "label": "Cases"})
    if scope.may_analyse:
        items.append({"href": "/rules", "label": "Rules"})
    if scope.may_write:
        items.append({"href": "/admin/surveys", "label": "Surveys"})
    return items


#: pages load only what Corridor serves; no framing (clickjacking), no MIME sniffing
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def render(
    request: Request, template: str, status: int = 200, scope: Scope | None = None, **ctx: Any
) -> HTMLResponse:
    page = _env.get_template(template).render(
        request=request,
        scope=scope,
        nav=_nav(scope) if scope else [],
        path=request.url.path,
        **ctx,
    )
    return HTMLResponse(page, status_code=status, headers=SECURITY_HEADERS)


def _safe_next(target: str | None) -> str | None:
    """Only same-site paths: never redirect a signed-in user to another site."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


async def _scope(request: Request, back: str | None = None) -> Scope | Response:
    """The signed-in user's scope; else the sign-in page, which comes back to ``back`` (by
    default this page) once signed in."""
    try:
        principal = await current_principal(request)
    except AuthenticationError:
        principal = None
    if principal is None:
        target = back or request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
    ingestor: Ingestor = request.app.state.ingestor
    return Scope.of(principal, ingestor.corridor_map)


class Answered(Exception):
    """Raised by a page's dependency that answered the request itself (the sign-in redirect, a
    page saying the user may not): the route does not run, and ``response`` goes back as it is
    (:func:`install`)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def _answered(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Answered)
    return exc.response


def install(app: FastAPI) -> None:
    """Let the pages' dependencies answer a request themselves (:class:`Answered`)."""
    app.add_exception_handler(Answered, _answered)


async def _signed_in(request: Request) -> tuple[Scope, Store, CorridorMap | None] | Response:
    """The signed-in user's scope, the store and the corridor map a page is built from; else
    the sign-in page (see :func:`_scope`)."""
    scope = await _scope(request)
    if isinstance(scope, Response):
        return scope
    ingestor: Ingestor = request.app.state.ingestor
    return scope, request.app.state.store, ingestor.corridor_map


def _filters(request: Request) -> dict[str, list[str | None]] | None:
    f = {dim: [request.query_params[dim]] for dim in views.FACETS if request.query_params.get(dim)}
    return f or None  # type: ignore[return-value]


async def _page(
    request: Request,
    template: str,
    build: Any,
    *,
    need_analyses: bool = True,
    keep: bool = False,
    **ctx: Any,
) -> Response:
    """Run ``build(store, scope, cmap, win)`` off the event loop and render it; errors become
    pages that say what to do. ``keep``: the page shows analyses of the data only (nothing of
    cases, models being fitted or the user), so what ``build`` gave is kept in the app's
    answer cache (:mod:`corridor.api.answer_cache`) for the same URL and scope until the data
    changes."""
    found = await _signed_in(request)
    if isinstance(found, Response):
        return found
    scope, store, cmap = found
    if cmap is None:
        return render(
            request,
            "empty.html",
            scope=scope,
            title="No corridor map yet",
            message="Load the corridor map first: `corridor map load map.yaml` or "
            "PUT /api/v1/map. Then send data with `corridor import` or POST /api/v1/<kind>.",
        )
    try:
        if need_analyses:
            scope.require_analyst_views()

        def work() -> dict[str, Any]:
            with store.reading():
                win = views.window(store, request.query_params.get("range"))
                options = views.facet_options(store)
                started = time.perf_counter()
                data = build(store, scope, cmap, win)
                data["server_ms"] = (time.perf_counter() - started) * 1000
                return {"win": win, "options": options, **data}

        cache: AnswerCache | None = getattr(request.app.state, "answers", None)
        headers: dict[str, str] = {}
        if keep and cache is not None:
            started = time.perf_counter()
            got = await anyio.to_thread.run_sync(
                cache.get,
                store,
                f"page:{request.url.path}",
                query_lists(request),
                scope,
                work,
                lambda _: PAGE_WEIGHT,
            )
            data = {**got.value, "server_ms": (time.perf_counter() - started) * 1000}
            headers = behind_header(got)
        else:
            data = await anyio.to_thread.run_sync(work)
    except PermissionDeniedError as e:
        return render(
            request,
            "error.html",
            status=403,
            scope=scope,
            title="Not in your view",
            message=str(e),
            home=_home_for(scope.principal),
        )
    except AnalyticsQueryError as e:
        return render(
            request, "error.html", status=422, scope=scope, title="Cannot show that", message=str(e)
        )
    page = render(
        request,
        template,
        scope=scope,
        windows=views.WINDOWS,
        facets=views.FACETS,
        selected={k: request.query_params.get(k, "") for k in views.FACETS},
        **ctx,
        **data,
    )
    page.headers.update(headers)
    return page


# --- sign-in -------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str | None = None) -> Response:
    settings: Settings = request.app.state.settings
    if settings.auth == "off":
        return RedirectResponse(_safe_next(next) or "/", status_code=303)
    return render(request, "login.html", next=_safe_next(next) or "", error=None)


def _throttle(request: Request) -> LoginThrottle:
    """The sign-in throttle, over this app's store (its state lives in the store)."""
    throttle: LoginThrottle | None = getattr(request.app.state, "login_throttle", None)
    if throttle is None:
        throttle = request.app.state.login_throttle = LoginThrottle(request.app.state.store)
    return throttle


def _login_again(
    request: Request, status: int, next: str, username: str, error: str
) -> HTMLResponse:
    """The sign-in form again, with the name given and why it was refused."""
    return render(
        request,
        "login.html",
        status=status,
        next=_safe_next(next) or "",
        error=error,
        username=username,
    )


def _wait_text(seconds: float) -> str:
    whole = int(seconds) + 1
    return f"{whole} seconds" if whole < 120 else f"{(whole + 59) // 60} minutes"


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    next: str = Form(""),
) -> Response:
    store: Store = request.app.state.store
    settings: Settings = request.app.state.settings
    throttle = _throttle(request)
    # per account and address: a guesser at one name never locks out another account (the
    # admin's, say) from the same address, nor that account's owner from another address
    address = request.client.host if request.client else "?"
    wait = await anyio.to_thread.run_sync(throttle.wait, username, address)
    if wait > 0:
        return _login_again(
            request,
            429,
            next,
            username,
            f"Too many failed sign-ins as {username!r} from this address; try again in "
            f"{_wait_text(wait)}. Other accounts are not affected.",
        )
    try:
        user = await anyio.to_thread.run_sync(accounts.verify_password, store, username, password)
    except AuthenticationError as e:
        await anyio.to_thread.run_sync(throttle.failed, username, address)
        return _login_again(
            request,
            401,
            next,
            username,
            f"{e}. Check both and try again; an admin can reset a password with "
            "`corridor users remove` and `corridor users add`.",
        )
    await anyio.to_thread.run_sync(throttle.succeeded, username, address)
    token = await anyio.to_thread.run_sync(accounts.start_session, store, user)
    target = _safe_next(next) or _home_for(user.principal())
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(accounts.SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
        path="/",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await anyio.to_thread.run_sync(accounts.end_session, request.app.state.store, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- pages ---------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request) -> Response:
    scope = await _scope(request)
    if isinstance(scope, Scope) and not scope.sees_all:
        return RedirectResponse(_home_for(scope.principal), status_code=303)
    filters = _filters(request)
    return await _page(
        request,
        "overview.html",
        lambda store, scope, cmap, win: views.overview(
            store, scope, cmap, win, filters, _forecasts(request)
        ),
        keep=True,
    )


def _forecasts(request: Request) -> forecast_views.ForecastCache:
    """The app's cache of the overview's forecasts (made on first use)."""
    cache: forecast_views.ForecastCache | None = getattr(request.app.state, "forecasts", None)
    if cache is None:
        cache = request.app.state.forecasts = forecast_views.ForecastCache()
    return cache


@router.get("/touchpoints/{key}", response_class=HTMLResponse)
async def touchpoint(request: Request, key: str) -> Response:
    filters = _filters(request)

    def build(store: Store, scope: Scope, cmap: Any, win: views.Window) -> dict[str, Any]:
        tp = next((t for t in cmap.touchpoints if t.key == key), None)
        if tp is None:
            raise AnalyticsQueryError(
                f"no touch point {key!r} in the corridor map; pick one on the overview"
            )
        if not scope.sees_touchpoint(key):
            raise PermissionDeniedError(
                f"{scope.principal.username} ({scope.principal.label}) may not see touch point "
                f"{key!r} (department {tp.department})"
            )
        return {"tp": tp, **views.touchpoint(store, scope, cmap, key, win, filters)}

    return await _page(request, "touchpoint.html", build, keep=True)


def _links(title: str, prefix: str, names: Iterable[str]) -> dict[str, Any]:
    """What ``list.html`` shows: a title and a link to ``prefix/name`` for every name."""
    return {"title": title, "items": [{"href": f"{prefix}/{quote(n)}", "label": n} for n in names]}


def _org_pages(
    kind: str,
    title: str,
    names: Callable[[Store, Scope, Any], Iterable[str]],
    detail: Callable[[Store, Scope, Any, str, views.Window], dict[str, Any]],
) -> None:
    """Declare ``/{kind}s``, a page titled ``title`` linking to each of ``names``, and
    ``/{kind}s/{name}``, the ``{kind}.html`` page of one of them, built by ``detail``."""
    prefix = f"/{kind}s"

    async def listing(request: Request) -> Response:
        return await _page(
            request,
            "list.html",
            lambda store, scope, cmap, win: _links(title, prefix, names(store, scope, cmap)),
        )

    async def page(request: Request, name: str) -> Response:
        return await _page(
            request,
            f"{kind}.html",
            lambda store, scope, cmap, win: detail(store, scope, cmap, name, win),
            keep=True,
        )

    router.get(prefix, response_class=HTMLResponse, name=f"{kind}_list")(listing)
    router.get(f"{prefix}/{{name}}", response_class=HTMLResponse, name=kind)(page)


_org_pages(
    "department",
    "Departments",
    lambda store, scope, cmap: org_views.departments(cmap, scope),
    org_views.department,
)
_org_pages(
    "partner",
    "Partners",
    lambda store, scope, cmap: org_views.partners(store, scope),
    org_views.partner,
)


@router.get("/customers", response_class=HTMLResponse)
async def customers(request: Request, q: str = "") -> Response:
    def build(store: Store, scope: Scope, cmap: Any, win: views.Window) -> dict[str, Any]:
        found = customer_views.find_people(store, q, scope) if q else []
        return {"q": q, "found": found}

    response = await _page(request, "customers.html", build, need_analyses=False)
    return response


@router.get("/customers/{person_id}", response_class=HTMLResponse)
async def customer(request: Request, person_id: str) -> Response:
    settings: Settings = request.app.state.settings
    if settings.model_refresh == "background":
        models.refresher(request.app.state, request.app.state.store)

    reloads: list[int] = []

    def build(store: Store, scope: Scope, cmap: Any, win: views.Window) -> dict[str, Any]:
        refit = settings.model_refresh == "on_request"
        data = customer_views.customer(
            store, scope, person_id, models=request.app.state.models, refit=refit
        )
        if data is None:
            where = "" if scope.sees_every_customer else " within your scope"
            raise AnalyticsQueryError(
                f"no customer with id {person_id!r}{where}; search by id, e-mail or phone on "
                "/customers"
            )
        reloads.extend(o["wait"]["reload_s"] for o in data["outlook"].values() if o.get("wait"))
        data["open_cases"] = case_views.customer_open_cases(store, scope, data["view"], cmap)
        return data

    response = await _page(request, "customer.html", build, need_analyses=False)
    if reloads and response.status_code == 200:  # a model is being fitted: come back when done
        response.headers["Refresh"] = str(min(reloads))
    return response


# --- assets --------------------------------------------------------------------------------


@router.get("/static/vendor/plotly.min.js")
async def plotly_js() -> Response:
    return FileResponse(
        _PLOTLY,
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in ("corridor.css", "corridor.js", "survey.css", "survey-embed.js"):
        raise HTTPException(404, f"no static file {name!r}")
    media = "text/css" if name.endswith(".css") else "text/javascript"
    return Response(
        _STATIC.joinpath(name).read_bytes(),
        media_type=media,
        headers={"Cache-Control": "public, max-age=300"},
    )
