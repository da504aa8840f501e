"""The public survey pages: ``/s/<token>`` (and ``/s/<token>/embed`` for an iframe on the
brand's own site), no sign-in.

One page per survey page, plain HTML forms and no script: it works on a 360 px phone and by
keyboard alone; every field has a label (a fieldset's legend for a group of options), and an
error is shown next to its field, tied to it with ``aria-describedby``, and listed at the top.
The language comes from ``?lang=``, else the one chosen before (kept with the response), else
the link's, else ``Accept-Language``, else the survey's fallback.

Each post saves the page's valid answers (``Save and finish later`` saves without moving on), so
the customer resumes from the same link: a personal link has one response; an anonymous link's
visitor is recognised by a cookie holding the form token. Posts carry that token (a hidden
field): one without it is refused (403). Requests are limited per link and client address (429).
An unknown token is a 404 page; an expired, revoked or used link a 410 page; bad answers the
form again with the errors, 422, keeping every valid answer. Never a 500 for what a visitor sends.

Headers: a strict Content-Security-Policy (no script at all), no framing (``frame-ancestors
'none'``, ``X-Frame-Options: DENY``) except on the embed route, whose pages any site may frame.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import Message

from corridor.api.body import read_body
from corridor.errors import CorridorError, PayloadTooLargeError
from corridor.ingest.pipeline import Ingestor
from corridor.store import Store
from corridor.surveys import answers as answering
from corridor.surveys import catalog, links, responses
from corridor.surveys.definition import LANGUAGE, Question, Survey
from corridor.surveys.errors import LinkGoneError, LinkNotFoundError
from corridor.web import survey_words
from corridor.web.routes import _env

router = APIRouter(include_in_schema=False)
log = logging.getLogger("corridor.surveys")

_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors {frame}"
)
#: the public pages: no script, no framing, nothing cached, the token kept off other sites
HEADERS = {
    "Content-Security-Policy": _CSP.format(frame="'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
#: the embed route: any site may frame it (the brand's own pages)
EMBED_HEADERS = {
    **{k: v for k, v in HEADERS.items() if k != "X-Frame-Options"},
    "Content-Security-Policy": _CSP.format(frame="*"),
}
#: a form post larger than this is refused, counted as it is read (a chunked one too): a text
#: answer of 20,000 characters outside ASCII is up to 180 kB form-encoded, so this takes five
MAX_FORM_BYTES = 1024 * 1024
COOKIE = "corridor_survey"
LANGUAGE_NAMES = {
    "en": "English", "de": "Deutsch", "fr": "Français", "es": "Español", "it": "Italiano",
    "nl": "Nederlands", "pt": "Português", "pl": "Polski", "sv": "Svenska", "da": "Dansk",
    "fi": "Suomi", "nb": "Norsk", "cs": "Čeština", "tr": "Türkçe", "ja": "日本語", "zh": "中文",
}  # fmt: skip


# -- rate limit ---------------------------------------------------------------------------------
@dataclass
class LinkLimiter:
    """At most ``limit`` requests per ``window_s`` seconds for one link from one address (a
    sliding window, in memory: per server process).

    The pairs are kept in the order they were last asked for, so the idle ones are forgotten
    from the front as they go idle, a few at a time, and never by a scan of them all (random
    tokens from one address make a new pair each); at most ``most`` pairs are kept, the one
    idle longest forgotten first."""

    limit: int = 60
    window_s: float = 60.0
    most: int = 100_000
    _hits: OrderedDict[tuple[str, str], deque[float]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self, link_key: str, address: str, now: float | None = None) -> float:
        """0 when this request may go ahead (and counts it), else seconds to wait."""
        now = time.monotonic() if now is None else now
        key = (link_key[:32], address)
        with self._lock:
            while self._hits:  # forget the pairs idle for a whole window (the oldest first)
                first = next(iter(self._hits.values()))
                if first and first[-1] > now - self.window_s:
                    break
                self._hits.popitem(last=False)
            hits = self._hits.setdefault(key, deque())
            self._hits.move_to_end(key)
            while len(self._hits) > self.most:
                self._hits.popitem(last=False)
            while hits and hits[0] <= now - self.window_s:
                hits.popleft()
            if len(hits) >= self.limit:
                return hits[0] + self.window_s - now
            hits.append(now)
            return 0.0


def limiter(request: Request) -> LinkLimiter:
    found: LinkLimiter | None = getattr(request.app.state, "survey_limiter", None)
    if found is None:
        found = request.app.state.survey_limiter = LinkLimiter()
    return found


# -- rendering ----------------------------------------------------------------------------------
def _page(
    template: str, status: int, *, embed: bool, headers: dict[str, str] | None = None, **ctx: Any
) -> HTMLResponse:
    html = _env.get_template(template).render(embed=embed, **ctx)
    sent = {**(EMBED_HEADERS if embed else HEADERS), **(headers or {})}
    return HTMLResponse(html, status_code=status, headers=sent)


def _message(
    lang: str, title_key: str, message: str, status: int, *, embed: bool, **headers: str
) -> HTMLResponse:
    w = survey_words.words(lang)
    return _page(
        "survey_message.html",
        status,
        embed=embed,
        headers=headers,
        lang=lang,
        title=w[title_key],
        message=message,
        alert=status >= 400,
    )


def _ui_language(request: Request, link: links.Link | None = None) -> str:
    """The language of a page shown before a survey is known (refusals): ``?lang=``, the
    link's, ``Accept-Language``; among those the pages speak."""
    offered = tuple(survey_words.WORDS)
    wanted = (request.query_params.get("lang") or "").lower()
    for code in (wanted, (link.language if link else None) or ""):
        if code and (code in offered or code.split("-")[0] in offered):
            return code.split("-")[0]
    return survey_words.best(request.headers.get("accept-language"), offered) or "en"


def _refused(
    request: Request,
    e: LinkGoneError | LinkNotFoundError,
    embed: bool,
    link: links.Link | None = None,
) -> HTMLResponse:
    lang = _ui_language(request, link)
    if isinstance(e, LinkGoneError):
        title = f"{e.reason}_title"
        return _message(lang, title, survey_words.refusal(lang, e.reason), 410, embed=embed)
    return _message(lang, "unknown_title", survey_words.refusal(lang, "unknown"), 404, embed=embed)


def _options(q: Question, survey: Survey, lang: str) -> list[dict[str, str]]:
    if q.type == "choice":
        return [{"value": c.value, "label": survey.t(c.label, lang)} for c in q.choices]
    return [{"value": str(v), "label": str(v)} for v in range(q.low, q.high + 1)]


def _question_view(
    q: Question, survey: Survey, lang: str, value: Any, raw: str | None
) -> dict[str, Any]:
    shown = raw if raw is not None else ("" if value is None else str(value))
    return {
        "id": q.id,
        "type": q.type,
        "label": survey.t(q.text, lang),
        "help": survey.t(q.help, lang) if q.help else "",
        "required": q.required,
        "options": _options(q, survey, lang) if q.type != "text" else [],
        "low_label": survey.t(q.low_label, lang) if q.low_label else "",
        "high_label": survey.t(q.high_label, lang) if q.high_label else "",
        "max_length": q.max_length,
        "value": shown,
    }


def _form(
    *,
    survey: Survey,
    response: responses.Response,
    page: int,
    lang: str,
    action: str,
    embed: bool,
    status: int = 200,
    errors: dict[str, str] | None = None,
    raw: dict[str, str] | None = None,
    notice: str | None = None,
    lang_error: str | None = None,
) -> HTMLResponse:
    errors = errors or {}
    raw = raw or {}
    visible = survey.visible_pages(response.answers) or [1]
    position = visible.index(page) + 1 if page in visible else 1
    questions = [
        _question_view(q, survey, lang, response.answers.get(q.id), raw.get(q.id))
        for q in survey.on_page(page)
        if survey.shown(q, response.answers)
    ]
    return _page(
        "survey_form.html",
        status,
        embed=embed,
        lang=lang,
        w=survey_words.words(lang),
        title=survey.t(survey.title, lang),
        intro=survey.t(survey.intro, lang) if survey.intro and position == 1 else "",
        languages=[(c, LANGUAGE_NAMES.get(c.split("-")[0], c)) for c in survey.languages],
        lang_error=lang_error,
        position=position,
        total=len(visible),
        notice=notice,
        errors=errors,
        questions=questions,
        form_token=response.form_token,
        page=page,
        action=action,
        last=position == len(visible),
        has_back=position > 1,
    )


def _current_page(survey: Survey, answers: dict[str, Any], page: int) -> int:
    """``page`` if it is shown, else the nearest shown page before it (else the first)."""
    visible = survey.visible_pages(answers) or [1]
    before = [p for p in visible if p <= page]
    return before[-1] if before else visible[0]


def _choose_language(
    request: Request, survey: Survey, link: links.Link, response_language: str | None
) -> tuple[str, str | None, bool]:
    """(language, the error about ``?lang=`` if it is not offered, whether ``?lang=`` chose)."""
    wanted = request.query_params.get("lang") or None  # (an empty one: none asked)
    if wanted is not None:
        code = survey.language(wanted) if LANGUAGE.match(wanted.lower()) else None
        if code is not None:
            return code, None, True
    fallback = (
        survey.language(response_language)
        or survey.language(link.language)
        or survey_words.best(request.headers.get("accept-language"), survey.languages)
        or survey.fallback_language
    )
    if wanted is not None:
        return fallback, answering.message(fallback, "language", wanted=wanted[:20]), False
    return fallback, None, False


# -- the routes ---------------------------------------------------------------------------------
def _address(request: Request) -> str:
    return request.client.host if request.client else "?"


def _slow(request: Request, token: str, embed: bool) -> HTMLResponse | None:
    wait = limiter(request).wait(links.token_hash(token), _address(request))
    if wait <= 0:
        return None
    lang = _ui_language(request)
    s = max(1, math.ceil(wait))
    text = survey_words.words(lang)["slow"].format(s=s)
    return _message(lang, "slow_title", text, 429, embed=embed, **{"Retry-After": str(s)})


def _finish(request: Request, store: Store, ingestor: Ingestor, response_id: str) -> None:
    """An acknowledged response not stored yet: the server's finisher stores it soon (without
    one, this request does)."""
    finisher = request.app.state.survey_finisher
    if finisher is not None:
        finisher.poke()
    else:
        responses.finish(store, ingestor, response_id)


def _base(token: str, embed: bool) -> str:
    return links.path(token) + ("/embed" if embed else "")


async def _show(request: Request, token: str, embed: bool) -> Response:
    store: Store = request.app.state.store
    ingestor: Ingestor = request.app.state.ingestor
    cookie = request.cookies.get(COOKIE)

    def work() -> Response:
        try:
            link = links.find(store, token)
        except LinkNotFoundError as e:
            return _refused(request, e, embed)
        gone = links.refusal(link)
        if gone is not None:
            if link.kind == "personal":  # finish an answer a crash left half stored
                for r in responses.for_link(store, link):
                    if r.state == responses.SUBMITTING:
                        _finish(request, store, ingestor, r.response_id)
            return _refused(request, gone, embed, link)
        latest = catalog.get(store, link.survey_id)
        lang, lang_error, chosen = _choose_language(request, latest.survey, link, None)
        try:
            response = responses.open_response(
                store,
                link,
                token,
                form_token=None if embed else cookie,
                language=lang,
                version=latest.version,
            )
        except LinkGoneError as e:  # expired (or withdrawn) a moment ago
            return _refused(request, e, embed, link)
        survey = (
            latest.survey
            if response.version == latest.version
            else catalog.get(store, response.survey_id, response.version).survey
        )
        lang, lang_error, chosen = _choose_language(request, survey, link, response.language)
        if chosen:
            response = responses.set_language(store, response, lang)
        page = _current_page(survey, response.answers, response.page)
        reply = _form(
            survey=survey,
            response=response,
            page=page,
            lang=lang,
            action=_base(token, embed),
            embed=embed,
            status=422 if lang_error else 200,
            lang_error=lang_error,
        )
        if link.kind == "anonymous" and not embed:
            _remember(reply, token, response.form_token, request.app.state.settings.secure_cookies)
        return reply

    return await anyio.to_thread.run_sync(work)


def _remember(reply: Response, token: str, form_token: str, secure: bool) -> None:
    """An anonymous visitor's browser keeps the form token: the same link resumes the same
    response."""
    reply.set_cookie(
        COOKIE,
        form_token,
        max_age=30 * 86400,
        path=links.path(token),
        httponly=True,
        samesite="lax",
        secure=secure,
    )


async def _post(request: Request, token: str, embed: bool) -> Response:
    store: Store = request.app.state.store
    ingestor: Ingestor = request.app.state.ingestor
    lang = _ui_language(request)
    try:
        body = await read_body(request, MAX_FORM_BYTES)
    except PayloadTooLargeError:
        return _message(lang, "bad_title", survey_words.words(lang)["too_big"], 413, embed=embed)
    except CorridorError:  # a bad Content-Length, a client gone mid-body
        return _message(lang, "bad_title", survey_words.words(lang)["bad"], 400, embed=embed)

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, receive).form(max_files=0, max_fields=300)
        posted = {k: v for k, v in form.items() if isinstance(v, str)}
    except Exception:  # not a form, a file, too many fields: nothing to read
        return _message(lang, "bad_title", survey_words.words(lang)["bad"], 400, embed=embed)

    def work() -> Response:
        try:
            link = links.find(store, token)
        except LinkNotFoundError as e:
            return _refused(request, e, embed)
        response = responses.find_by_form(store, link, posted.get("form"))
        base = _base(token, embed)
        if response is not None and response.done:  # a retried submit: acknowledged already
            _finish(request, store, ingestor, response.response_id)
            return RedirectResponse(f"{base}/thanks?lang={response.language}", status_code=303)
        gone = links.refusal(link)
        if gone is not None:
            return _refused(request, gone, embed, link)
        if response is None:
            ui = _ui_language(request, link)
            return _message(ui, "form_title", survey_words.refusal(ui, "form"), 403, embed=embed)
        survey = catalog.get(store, response.survey_id, response.version).survey
        lang = survey.language(posted.get("lang")) or response.language
        action = posted.get("action", "next")
        if action not in ("next", "back", "save", "submit"):
            action = "next"
        try:
            page = int(posted.get("page", ""))
        except ValueError:
            page = response.page
        page = _current_page(survey, response.answers, page)
        strict = action in ("next", "submit")
        given = answering.read_page(
            survey, page, posted, response.answers, lang, check_required=strict
        )
        # the answers given are written once, with where the customer goes next (or with the
        # acknowledgement of a submit)
        before = response

        def saved(at: int) -> responses.Response:
            return responses.save(store, before, given.values, page=at, language=lang)

        response = responses.merge(before, given.values, page=page, language=lang)
        if given.errors:
            return _form(survey=survey, response=saved(page), page=page, lang=lang, action=base,
                         embed=embed, status=422, errors=given.errors, raw=given.raw)  # fmt: skip
        visible = survey.visible_pages(response.answers) or [1]
        here = visible.index(page) if page in visible else 0
        if action == "save":
            w = survey_words.words(lang)
            return _form(survey=survey, response=saved(page), page=page, lang=lang, action=base,
                         embed=embed, notice=w["saved"])  # fmt: skip
        if action == "back":
            target = visible[max(here - 1, 0)]
        elif here + 1 < len(visible):
            target = visible[here + 1]
        elif action != "submit":  # the last page, sent without its button: stay on it
            target = page
        else:  # the last page: send
            missing = answering.missing_required(survey, response.answers)
            if missing is not None:
                at, qid = missing
                response = saved(at)
                errors = {qid: answering.message(lang, "required")}
                return _form(survey=survey, response=response, page=at, lang=lang, action=base,
                             embed=embed, status=422, errors=errors)  # fmt: skip
            finisher = request.app.state.survey_finisher
            responses.submit(
                store, ingestor, response, survey, finish_now=finisher is None,
                given=given.values,
            )  # fmt: skip
            if finisher is not None:  # stored as feedback right after, with any sent meanwhile
                finisher.poke()
            reply = RedirectResponse(f"{base}/thanks?lang={lang}", status_code=303)
            if link.kind == "anonymous" and not embed:
                reply.delete_cookie(COOKIE, path=links.path(token))
            return reply
        return _form(survey=survey, response=saved(target), page=target, lang=lang, action=base,
                     embed=embed)  # fmt: skip

    return await anyio.to_thread.run_sync(work)


async def _thanks(request: Request, token: str, embed: bool) -> Response:
    store: Store = request.app.state.store

    def work() -> Response:
        try:
            link = links.find(store, token)
        except LinkNotFoundError as e:
            return _refused(request, e, embed)
        # the version answered (its thanks and languages), not one loaded since
        survey = catalog.get(store, link.survey_id, responses.answered_version(store, link)).survey
        wanted = request.query_params.get("lang")
        lang = (
            survey.language(wanted if wanted and LANGUAGE.match(wanted.lower()) else None)
            or survey.language(link.language)
            or survey_words.best(request.headers.get("accept-language"), survey.languages)
            or survey.fallback_language
        )
        w = survey_words.words(lang)
        text = survey.t(survey.thanks, lang) if survey.thanks else w["thanks"]
        return _page("survey_message.html", 200, embed=embed, lang=lang,
                     title=w["thanks_title"], message=text, alert=False)  # fmt: skip

    return await anyio.to_thread.run_sync(work)


_Handler = Callable[[Request, str, bool], Awaitable[Response]]


def _paced(handler: _Handler, embed: bool) -> Callable[[Request, str], Awaitable[Response]]:
    """``handler`` as a route's endpoint, behind the link limiter: a link or address asking too
    often is told to wait (429) before anything is read."""

    async def endpoint(request: Request, token: str) -> Response:
        slow = _slow(request, token, embed)
        if slow is not None:
            return slow
        return await handler(request, token, embed)

    return endpoint


def _declare_pages(prefix: str, embed: bool) -> None:
    """The form (GET shows a page, POST answers it) and its thanks page at ``prefix``: the
    survey on its own page, or ``embed``-ded in another site's page."""
    name = "survey_embed" if embed else "survey"  # the route names: survey_page, survey_post...
    for path, method, handler, route_name in (
        (prefix, "GET", _show, name if embed else f"{name}_page"),
        (prefix, "POST", _post, f"{name}_post"),
        (f"{prefix}/thanks", "GET", _thanks, f"{name}_thanks"),
    ):
        router.add_api_route(path, _paced(handler, embed), methods=[method],
                             response_class=HTMLResponse, name=route_name)  # fmt: skip


_declare_pages("/s/{token}", embed=False)
_declare_pages("/s/{token}/embed", embed=True)


@router.api_route("/s/{rest:path}", methods=["GET", "POST"], response_class=HTMLResponse)
async def survey_unknown(request: Request, rest: str) -> Response:
    """Anything else under /s/: the page an unknown link gets (a link cut or mangled in a
    mail), not the API's JSON."""
    lang = _ui_language(request)
    return _message(lang, "unknown_title", survey_words.refusal(lang, "unknown"), 404, embed=False)


__all__ = ["EMBED_HEADERS", "HEADERS", "LinkLimiter", "router"]
