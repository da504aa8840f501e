"""Hosted surveys benchmark: form submissions over HTTP at 50 concurrent clients, against the
plain feedback API at the same concurrency, and invitations made and sent per second.

    python benchmarks/surveys.py                       # 1,500 submissions, 50 clients, DuckDB
    python benchmarks/surveys.py --submissions 3000 --clients 100

It simulates a company (``corridor.simulate``: one month), imports its map, people and
interactions into a fresh DuckDB file (the embedded store), loads a two-page delivery survey
(three questions on page 1, two on page 2, one of them behind skip logic) and makes one personal
link per submission. Then, with a real ``corridor serve`` on the file (its defaults: texts
analysed in the background, the scheduler running):

(a) **forms**: ``--clients`` threads, each with its own HTTP connection, answer links as fast as
    they can, as a phone would: ``GET /s/<token>`` (the form), ``POST`` page 1 (``next``), ``POST``
    page 2 (``submit``; answered with 303 once the answer is acknowledged, stored as feedback by
    the server's finisher right after). Every request's
    time is kept; p50/p95/max per step and overall, submissions per second. Target: p95 < 100 ms.
(b) **baseline**: the same number of clients post one feedback record each to
    ``POST /api/v1/feedback`` (an admin's API key) as fast as they can, as many records as there
    were submissions: the plain ingest path the form ends in, at the same concurrency.
(c) **invitations** (in process, on a copy of the store): ``invitations.invite`` of
    ``--invitations`` people (rows made per second), then one ``invitations.run`` sending them
    all (a personal link and a queued mail each: invitations sent per second, with two contact
    rules checked), against the raw engine writing the same number of invitation rows with one
    ``INSERT … SELECT``.

Afterwards it checks that every submission stored exactly one feedback record. It prints a table
and a last line starting with ``RESULT``.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loop import free_port, server

from corridor.auth import accounts
from corridor.domain.corridor_map import CorridorMap
from corridor.ingest.files import import_file
from corridor.ingest.pipeline import Ingestor
from corridor.simulate import simulate
from corridor.simulate.corridor_map import map_document
from corridor.store import open_store
from corridor.surveys import catalog, contact, definition, invitations, links

assert free_port  # re-exported for symmetry with loop.py's helpers

SURVEY: dict[str, Any] = {
    "id": "delivery-pulse",
    "title": {"en": "How was your delivery?", "de": "Wie war Ihre Lieferung?"},
    "touchpoints": ["home_delivery"],
    "languages": ["en", "de"],
    "fallback_language": "en",
    "questions": [
        {"id": "expectation", "field": "expectation",
         "text": {"en": "What did you expect?", "de": "Was haben Sie erwartet?"}},
        {"id": "experience", "field": "experience", "required": True,
         "text": {"en": "How was it?", "de": "Wie war es?"}},
        {"id": "nps", "field": "nps",
         "text": {"en": "Would you recommend us?", "de": "Würden Sie uns empfehlen?"}},
        {"id": "what_went_wrong", "field": "text", "page": 2, "max_length": 500,
         "show_if": {"question": "experience", "below": 5},
         "text": {"en": "What went wrong?", "de": "Was lief schief?"}},
        {"id": "issue", "type": "choice", "attribute": "delivery_issue", "page": 2,
         "choices": [{"value": "late", "label": {"en": "Late", "de": "Spät"}},
                     {"value": "none", "label": {"en": "Nothing", "de": "Nichts"}}],
         "text": {"en": "Anything in particular?", "de": "Etwas Bestimmtes?"}},
    ],
}  # fmt: skip
FORM = re.compile(r'name="form" value="([^"]+)"')


def build(work: Path, customers: int, links_wanted: int) -> tuple[Path, list[str], str, float]:
    """The store file, the link tokens, an admin's API key, seconds to make the links."""
    sim = simulate(customers, 1, 15, work / "sim", fmt="parquet")
    path = work / "surveys.duckdb"
    with open_store(f"duckdb://{path}") as store:
        ing = Ingestor(store)
        try:
            ing.load_map(CorridorMap.from_dict(map_document()))
            import_file(ing, sim.files["people"], "people")
            import_file(ing, sim.files["interactions"], "interactions")
        finally:
            ing.close()
        catalog.save(store, definition.parse(SURVEY), by="bench")
        people = [r[0] for r in store.query(
            "SELECT person_id FROM people ORDER BY person_id LIMIT ?", [links_wanted])]  # fmt: skip
        people = (people * (links_wanted // max(len(people), 1) + 1))[:links_wanted]
        t = time.perf_counter()
        tokens = [links.create(store, "delivery-pulse", person_id=p)[1] for p in people]
        made_s = time.perf_counter() - t
        accounts.add_user(store, "bench", "bench-password", "admin")
        key = accounts.create_key(store, "bench", "benchmark")[1]
    return path, tokens, key, made_s


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))] if ordered else 0.0


class Forms:
    """``clients`` threads answering links from a shared queue."""

    def __init__(self, base: str, tokens: list[str], clients: int, think: float = 0.0) -> None:
        self.base = base
        self.think = think
        self.rng = random.Random(15)
        self.tokens = list(tokens)
        self.clients = clients
        self.lock = threading.Lock()
        self.times: dict[str, list[float]] = {"form": [], "page 1": [], "submit": []}
        self.errors: list[str] = []
        self.done = 0

    def next_token(self) -> str | None:
        with self.lock:
            return self.tokens.pop() if self.tokens else None

    def timed(self, step: str, c: httpx.Client, method: str, url: str, **kw: Any) -> httpx.Response:
        if self.think:  # a person reading and answering the page before sending it
            with self.lock:
                pause = self.rng.expovariate(1.0 / self.think)
            time.sleep(pause)
        t = time.perf_counter()
        r = c.request(method, url, **kw)
        with self.lock:
            self.times[step].append(time.perf_counter() - t)
        return r

    def client(self, k: int) -> None:
        headers = {"origin": self.base, "accept-language": "de" if k % 2 else "en"}
        with httpx.Client(base_url=self.base, headers=headers, timeout=30) as c:
            while (token := self.next_token()) is not None:
                url = f"/s/{token}"
                page = self.timed("form", c, "GET", url)
                low = k % 4 == 0  # a quarter answer low: page 2 asks what went wrong
                data = {"form": FORM.search(page.text).group(1), "page": "1",  # type: ignore[union-attr]
                        "action": "next", "expectation": "8", "experience": "3" if low else "8",
                        "nps": "9"}  # fmt: skip
                p2 = self.timed("page 1", c, "POST", url, data=data)
                why = {"what_went_wrong": "It came two days late."} if low else {}
                data2 = {"form": FORM.search(p2.text).group(1), "page": "2",  # type: ignore[union-attr]
                         "action": "submit", "issue": "late" if low else "none", **why}  # fmt: skip
                done = self.timed("submit", c, "POST", url, data=data2, follow_redirects=False)
                if done.status_code != 303:
                    with self.lock:
                        self.errors.append(f"{done.status_code} {done.text[:200]}")
                else:
                    with self.lock:
                        self.done += 1

    def run(self) -> float:
        threads = [threading.Thread(target=self.client, args=(k,)) for k in range(self.clients)]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return time.perf_counter() - t


def baseline(base: str, key: str, records: int, clients: int) -> tuple[list[float], float]:
    """One feedback record per POST to /api/v1/feedback, ``clients`` at once."""
    times: list[float] = []
    lock = threading.Lock()
    left = [records]

    def client() -> None:
        headers = {"authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
            while True:
                with lock:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                rec = {"feedback_id": f"api-{uuid.uuid4().hex}", "person_id": "bench-api",
                       "occurred_at": datetime.now(UTC).isoformat(), "touchpoint": "home_delivery",
                       "source": "survey", "expectation": 8, "experience": 8, "nps": 9}  # fmt: skip
                t = time.perf_counter()
                r = c.post("/api/v1/feedback", json=rec)
                with lock:
                    times.append(time.perf_counter() - t)
                if r.status_code != 200:
                    raise RuntimeError(f"baseline POST: {r.status_code} {r.text[:300]}")

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return times, time.perf_counter() - t


def invitation_rates(path: Path, work: Path, n: int) -> dict[str, float]:
    copy = work / "invitations.duckdb"
    shutil.copy(path, copy)
    with open_store(f"duckdb://{copy}") as store:
        people = [r[0] for r in store.query(
            "SELECT person_id FROM people ORDER BY person_id LIMIT ?", [n])]  # fmt: skip
        contact.add(store, contact.build("max_per_period", count=2, period="30d"))
        contact.add(store, contact.build("exclude", field_name="segment", values=["none-such"]))
        t = time.perf_counter()
        made = invitations.invite(store, "delivery-pulse", people)
        invite_s = time.perf_counter() - t
        t = time.perf_counter()
        report = invitations.run(store, "https://cx.example.com")
        send_s = time.perf_counter() - t
        # the raw engine: the same number of invitation rows in one INSERT ... SELECT
        with store.transaction() as tx:
            tx.execute("CREATE TEMP TABLE raw_inv AS SELECT * FROM survey_invitations LIMIT 0")
            t = time.perf_counter()
            tx.execute(
                "INSERT INTO raw_inv (invitation_id, source_key, survey_id, person_id, channel, "
                "created_at, due_at, state) SELECT 'raw-' || person_id, 'raw|' || person_id, "
                "'delivery-pulse', person_id, 'email', now(), now(), 'scheduled' FROM people "
                "ORDER BY person_id LIMIT ?",
                [n],
            )
            raw_s = time.perf_counter() - t
    return {
        "invited": made,
        "invite_rows_s": made / invite_s,
        "sent": report.sent,
        "send_s": report.sent / send_s,
        "raw_rows_s": made / max(raw_s, 1e-9),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--submissions", type=int, default=1500)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--customers", type=int, default=3000)
    ap.add_argument("--invitations", type=int, default=2000)
    ap.add_argument("--think", type=float, default=1.0,
                    help="mean seconds a person takes before each request (exponential); the "
                    "saturation run uses none")  # fmt: skip
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args(argv)
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="corridor-surveys-bench-"))).absolute()
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    path, tokens, key, links_s = build(work, args.customers, args.submissions)
    rate = len(tokens) / links_s
    print(f"store built, {len(tokens):,} personal links made in {links_s:.1f} s ({rate:,.0f}/s); "
          f"{os.cpu_count()} CPU cores; {work}", flush=True)  # fmt: skip
    half = (len(tokens) - args.clients) // 2
    with server(f"duckdb://{path}", work / "server.log") as base:
        forms = Forms(base, tokens[: args.clients], args.clients)
        forms.run()  # a warm-up round, not timed
        warm = forms.done
        # people answering at a human pace: --clients of them at once, --think between pages
        forms = Forms(base, tokens[args.clients : args.clients + half], args.clients, args.think)
        forms_s = forms.run()
        # saturation: the same number of clients sending as fast as they can
        flat = Forms(base, tokens[args.clients + half :], args.clients)
        flat_s = flat.run()
        api_times, api_s = baseline(base, key, len(flat.times["submit"]), args.clients)
    warm += flat.done
    with open_store(f"duckdb://{path}") as store:
        stored = store.query(
            "SELECT count(*), count(DISTINCT feedback_id) FROM feedback WHERE source = 'survey' "
            "AND feedback_id NOT LIKE 'api-%'"
        )[0]
    rates = invitation_rates(path, work, args.invitations)
    every = [t for ts in forms.times.values() for t in ts]
    ok = (
        not forms.errors
        and not flat.errors
        and stored[0] == stored[1] == forms.done + warm
        and pct(every, 0.95) < 0.100
    )
    flat_every = [t for ts in flat.times.values() for t in ts]
    rows = [
        (f"{args.clients} people, {args.think:g} s per page: submissions / s",
         f"{forms.done / forms_s:,.1f}"),
        *[(f"  {step}: p50 / p95 / max ms",
           f"{1000 * statistics.median(ts):.1f} / {1000 * pct(ts, 0.95):.1f} / "
           f"{1000 * max(ts):.1f}") for step, ts in forms.times.items()],
        ("  every form request: p50 / p95 ms (target p95 < 100)",
         f"{1000 * statistics.median(every):.1f} / {1000 * pct(every, 0.95):.1f}"),
        ("saturation (no pause): submissions / s", f"{flat.done / flat_s:,.1f}"),
        ("  every form request: p50 / p95 ms",
         f"{1000 * statistics.median(flat_every):.1f} / {1000 * pct(flat_every, 0.95):.1f}"),
        ("  submit: p50 / p95 ms",
         f"{1000 * statistics.median(flat.times['submit']):.1f} / "
         f"{1000 * pct(flat.times['submit'], 0.95):.1f}"),
        ("baseline, no pause: POST /api/v1/feedback, one record: p50 / p95 ms",
         f"{1000 * statistics.median(api_times):.1f} / {1000 * pct(api_times, 0.95):.1f}"),
        ("baseline records / s", f"{len(api_times) / api_s:,.1f}"),
        ("feedback stored from the forms (each once)", f"{stored[0]:,} ({stored[1]:,} distinct)"),
        ("form errors", str(len(forms.errors))),
        ("invitations made / s (invite)", f"{rates['invite_rows_s']:,.0f}"),
        ("invitations sent / s (link + mail, 2 contact rules)", f"{rates['send_s']:,.0f}"),
        ("raw engine rows / s (one INSERT ... SELECT)", f"{rates['raw_rows_s']:,.0f}"),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows) + 2
    print()
    for what, value in rows:
        print(f"{what:<{width}}{value:>26}")
    if forms.errors:
        print("first errors:", forms.errors[:3])
    result = {
        "submissions": forms.done,
        "clients": args.clients,
        "think_s": f"{args.think:g}",
        "forms_s": f"{forms.done / forms_s:.1f}",
        "form_p50_ms": f"{1000 * statistics.median(every):.1f}",
        "form_p95_ms": f"{1000 * pct(every, 0.95):.1f}",
        "submit_p95_ms": f"{1000 * pct(forms.times['submit'], 0.95):.1f}",
        "flat_forms_s": f"{flat.done / flat_s:.1f}",
        "flat_p95_ms": f"{1000 * pct(flat_every, 0.95):.1f}",
        "flat_submit_p95_ms": f"{1000 * pct(flat.times['submit'], 0.95):.1f}",
        "api_p50_ms": f"{1000 * statistics.median(api_times):.1f}",
        "api_p95_ms": f"{1000 * pct(api_times, 0.95):.1f}",
        "api_rec_s": f"{len(api_times) / api_s:.1f}",
        "stored_once": str(stored[0] == stored[1] == forms.done + warm),
        "invite_rows_s": f"{rates['invite_rows_s']:.0f}",
        "send_s": f"{rates['send_s']:.0f}",
        "raw_rows_s": f"{rates['raw_rows_s']:.0f}",
        "links_s": f"{len(tokens) / links_s:.0f}",
        "pass": str(ok),
        "wall_s": f"{time.perf_counter() - started:.0f}",
    }
    print("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
