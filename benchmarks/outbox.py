"""The outbox's bookkeeping: claiming and finishing notifications, against the engine's bare
statements.

    python benchmarks/outbox.py                                   # both engines, 20,000 rows
    python benchmarks/outbox.py --engine duckdb --rows 50000 --claim 1600

What the dispatcher (``corridor.loop.outbox.dispatch``) does around every send is two write
transactions: a claim (:func:`corridor.loop.outbox.claim`: pick due rows, take a lease, count
the attempt, put first-time rows of an endpoint that takes batches into batches) and a finish
(:func:`corridor.loop.outbox.finish_many`: log each attempt, set each row's new state). When
alerts fire on every record, thousands of notifications pass through them, and on DuckDB they
queue with the ingest's transactions for the store's one writer.

One run, per engine (a fresh DuckDB file; a PostgreSQL database created for the run and
dropped after), fills the outbox with ``--rows`` notifications for one webhook endpoint taking
batches of 100 (``enqueue_many``, 500 events per transaction, not timed), then times, round by
round, until none is due:

- ``corridor``: ``claim(limit=--claim)`` then ``finish_many`` with every attempt a success, as
  the dispatcher calls them (the sends themselves are left out);
- ``raw``: the baseline: the least an engine must do for the same rows, in two transactions:
  ``SELECT … ORDER BY next_attempt_at LIMIT n`` with ``UPDATE … SET lease`` for the claim, and
  ``UPDATE … SET state = 'delivered'`` plus one ``INSERT`` of the attempts (staged) for the
  finish, on a second outbox filled the same way.

It prints ms per 100 notifications for each, the ratio corridor / raw, and a last line starting
with ``RESULT``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pyarrow as pa

from corridor.loop import outbox, webhooks
from corridor.loop.outbox import Attempt
from corridor.store import Store, open_store

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
_TS = pa.timestamp("us", tz="UTC")


@contextlib.contextmanager
def scratch(engine: str, folder: Path, pg_admin: str) -> Iterator[str]:
    """A fresh store URL: a DuckDB file, or a PostgreSQL database dropped afterwards."""
    if engine == "duckdb":
        yield f"duckdb:///{folder / f'outbox-{uuid.uuid4().hex[:8]}.duckdb'}"
        return
    name = f"corridor_outbox_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    try:
        yield pg_admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(pg_admin, autocommit=True) as con:
            con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def fill(store: Store, rows: int) -> None:
    """``rows`` notifications of ~1 kB for one endpoint taking batches of 100."""
    webhooks.add_endpoint(store, "http://127.0.0.1:9/hook", allow_private=True, batch_max=100)
    for start in range(0, rows, 500):
        events = [
            outbox.Event(
                "case.opened",
                {"title": f"case-{i}: detractor at checkout", "case": {f"f{k}": f"v{k}-{i}"
                 for k in range(25)}, "history_id": uuid.uuid4().hex},
                f"bench-{i}",
            )
            for i in range(start, min(rows, start + 500))
        ]  # fmt: skip
        with store.transaction() as tx:
            outbox.enqueue_many(tx, events)


def corridor_rounds(store: Store, claim: int) -> tuple[int, float]:
    """Claim and finish until nothing is due, as the dispatcher does; (rows, seconds)."""
    done, seconds = 0, 0.0
    while True:
        t = time.perf_counter()
        rows = outbox.claim(store, "bench", kinds=(outbox.WEBHOOK,), limit=claim, exclusive=True)
        if not rows:
            return done, seconds
        ok = [(r, Attempt(ok=True, status_code=200, duration_ms=3.0)) for r in rows]
        outbox.finish_many(store, ok, owner="bench", max_attempts=5, base_s=1.0)
        seconds += time.perf_counter() - t
        done += len(rows)


def raw_rounds(store: Store, claim: int) -> tuple[int, float]:
    """The engine's bare statements for the same work; (rows, seconds)."""
    done, seconds = 0, 0.0
    while True:
        t = time.perf_counter()
        now = datetime.now(UTC)
        with store.transaction() as tx:
            ids = [
                int(r[0])
                for r in tx.fetchall(
                    "SELECT id FROM outbox WHERE state = 'pending' AND next_attempt_at <= ? "
                    "ORDER BY next_attempt_at, id LIMIT ?",
                    [now, claim],
                )
            ]
            if not ids:
                return done, seconds
            tx.stage("_ids", pa.table({"id": pa.array(ids, pa.int64())}))
            tx.execute(
                "UPDATE outbox SET lease_owner = 'raw', lease_until = ?, attempts = attempts + 1 "
                "WHERE id IN (SELECT id FROM _ids)",
                [now],
            )
            tx.fetchall("SELECT id, payload FROM outbox WHERE id IN (SELECT id FROM _ids)")
        with store.transaction() as tx:
            tx.stage(
                "_done",
                pa.table(
                    {"id": pa.array(ids, pa.int64()), "done_at": pa.array([now] * len(ids), _TS)}
                ),
            )
            tx.execute(
                "INSERT INTO deliveries (outbox_id, attempt, attempted_at, status_code, "
                "duration_ms, error) SELECT id, 1, done_at, 200, 3.0, NULL FROM _done"
            )
            tx.execute(
                "UPDATE outbox SET state = 'delivered', delivered_at = ?, lease_owner = NULL, "
                "lease_until = NULL WHERE id IN (SELECT id FROM _done)",
                [now],
            )
        seconds += time.perf_counter() - t
        done += len(ids)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000, help="notifications (default 20,000)")
    ap.add_argument("--claim", type=int, default=1600,
                    help="rows per claim (default 1,600: the dispatcher's)")  # fmt: skip
    ap.add_argument("--engine", choices=["duckdb", "postgres", "both"], default="both")
    ap.add_argument("--pg-url", default=os.environ.get("CORRIDOR_TEST_POSTGRES") or DEFAULT_PG,
                    help="PostgreSQL server to create scratch databases on")  # fmt: skip
    args = ap.parse_args(argv)
    engines = ["duckdb", "postgres"] if args.engine == "both" else [args.engine]
    results: dict[str, str] = {"rows": str(args.rows), "claim": str(args.claim)}
    with tempfile.TemporaryDirectory(prefix="corridor-outbox-bench-") as folder:
        for engine in engines:
            per100 = {}
            for mode, rounds in (("corridor", corridor_rounds), ("raw", raw_rounds)):
                with scratch(engine, Path(folder), args.pg_url) as url:
                    store = open_store(url)
                    try:
                        fill(store, args.rows)
                        done, seconds = rounds(store, args.claim)
                    finally:
                        store.close()
                if done != args.rows:
                    print(f"{engine} {mode}: {done} of {args.rows} rows passed", file=sys.stderr)
                    return 1
                per100[mode] = seconds * 1000 / done * 100
                print(f"{engine:<9} {mode:<9} {per100[mode]:6.2f} ms per 100 notifications "
                      f"({done:,} in {seconds:.2f} s)", flush=True)  # fmt: skip
            ratio = per100["corridor"] / per100["raw"]
            print(f"{engine:<9} corridor / raw: {ratio:.2f}")
            results[f"{engine}_ms_per_100"] = f"{per100['corridor']:.2f}"
            results[f"{engine}_raw_ms_per_100"] = f"{per100['raw']:.2f}"
            results[f"{engine}_ratio"] = f"{ratio:.2f}"
    print("RESULT " + " ".join(f"{k}={v}" for k, v in results.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
