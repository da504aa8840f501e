"""Ingestion benchmark: `corridor import` against each engine's raw bulk path, and HTTP batches.

    python benchmarks/ingest.py                       # 1 M interactions, DuckDB and PostgreSQL
    python benchmarks/ingest.py --engine duckdb --rows 200000 --repeat 3

One run generates (deterministically, with numpy) a corridor map of 30 touch points, a people file
and a Parquet file of interactions, then measures on fresh stores:

(a) the import path: ``import_file`` on a store that already has the map and the people;
(b) the raw bulk path on the same file into an identical table (the same primary key and
    person index): DuckDB ``INSERT INTO ... SELECT ... FROM read_parquet(...)``; PostgreSQL
    ``COPY FROM STDIN`` of a CSV that DuckDB wrote from the Parquet file (the conversion is
    not timed); for comparison also the same rows as binary COPY (PostgreSQL's own output);
(c) the ratio import/raw in rows per second (target: >= 0.7); on PostgreSQL also the ratio in
    rows per CPU second, the client's and its server backends' (read from /proc when the
    server runs on this machine), which a machine busy with other work moves much less;
(d) HTTP: a real ``corridor serve`` on a fresh DuckDB store, posting JSON arrays of interactions
    with httpx (target: >= 50,000 interactions/s).

It prints a table and a last line starting with ``RESULT`` holding the key figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corridor.domain.corridor_map import CorridorMap
from corridor.ingest.files import import_file
from corridor.ingest.pipeline import Ingestor
from corridor.ingest.validate import ValidationResult
from corridor.store import open_store
from corridor.store.migrations import MIGRATIONS, TYPES, V1

SEED = 20250301
STAGES = ["awareness", "research", "purchase", "delivery", "use", "support", "renewal"]
CHANNELS = ["web", "app", "chat", "voice", "email", "store", "social", "partner"]
DEPARTMENTS = ["marketing", "sales", "ecommerce", "logistics", "billing", "service"]
OUTCOMES = np.array(["purchase", "abandon", "resolved", "unresolved", "cancel", None], object)
COLUMNS = [
    "interaction_id",
    "person_id",
    "occurred_at",
    "touchpoint",
    "channel",
    "partner_id",
    "agent_id",
    "outcome",
    "value",
    "duration_minutes",
]
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


# -- data -----------------------------------------------------------------------------------------
def corridor_map(n_touchpoints: int = 30) -> dict[str, Any]:
    rng = np.random.default_rng(SEED)
    touchpoints = []
    for i in range(n_touchpoints):
        stage = STAGES[i * len(STAGES) // n_touchpoints]
        channels = sorted(rng.choice(CHANNELS, size=int(rng.integers(1, 4)), replace=False))
        touchpoints.append(
            {
                "key": f"{stage}_{i:02d}",
                "name": f"{stage.title()} touch point {i}",
                "stage": stage,
                "channels": [str(c) for c in channels],
                "department": DEPARTMENTS[i % len(DEPARTMENTS)],
            }
        )
    return {"stages": STAGES, "touchpoints": touchpoints}


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    return pa.array(np.char.add(prefix, np.char.zfill(numbers.astype(str), width)).tolist())


def people_table(n: int) -> pa.Table:
    rng = np.random.default_rng(SEED + 1)
    idx = np.arange(n)
    email = pa.array(np.char.add(np.char.add("user", idx.astype(str)), "@example.com").tolist())
    email = pc.if_else(pa.array(rng.random(n) < 0.6), email, None)  # 60 % give an e-mail
    return pa.table(
        {
            "person_id": _ids("p-", idx, 8),
            "kind": pa.array(np.where(rng.random(n) < 0.8, "customer", "prospect").tolist()),
            "segment": pa.array(np.array(["gold", "silver", "bronze"])[rng.integers(0, 3, n)]),
            "region": pa.array(np.array(["north", "south", "east", "west"])[rng.integers(0, 4, n)]),
            "email": email,
        }
    )


def interactions_table(n: int, n_people: int, touchpoints: list[str]) -> pa.Table:
    rng = np.random.default_rng(SEED + 2)
    start = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)
    partner = pa.array(np.char.add("partner-", rng.integers(0, 40, n).astype(str)).tolist())
    partner = pc.if_else(pa.array(rng.random(n) < 0.2), partner, None)  # 20 % via a partner
    return pa.table(
        {
            "interaction_id": _ids("i-", np.arange(n), 9),
            "person_id": _ids("p-", rng.integers(0, n_people, n), 8),
            "occurred_at": pa.array(
                start + rng.integers(0, 365 * 86_400 * 10**6, n), pa.timestamp("us", tz="UTC")
            ),
            "touchpoint": pa.array(np.array(touchpoints)[rng.integers(0, len(touchpoints), n)]),
            "channel": pa.array(np.array(CHANNELS)[rng.integers(0, len(CHANNELS), n)]),
            "partner_id": partner,
            "agent_id": _ids("agent-", rng.integers(0, 500, n), 4),
            "outcome": pa.array(OUTCOMES[rng.integers(0, len(OUTCOMES), n)].tolist(), pa.string()),
            "value": pa.array(np.round(rng.gamma(2.0, 40.0, n), 2)),
            "duration_minutes": pa.array(np.round(rng.exponential(4.0, n), 2)),
        }
    )


@dataclass
class Data:
    folder: Path
    cmap: CorridorMap
    map_doc: dict[str, Any]
    people: Path
    interactions: Path
    rows: int
    n_people: int


def generate(folder: Path, rows: int, n_people: int) -> Data:
    doc = corridor_map()
    cmap = CorridorMap.from_dict(doc)
    people, interactions = folder / "people.parquet", folder / "interactions.parquet"
    pq.write_table(people_table(n_people), people)
    table = interactions_table(rows, n_people, cmap.touchpoint_keys)
    pq.write_table(table, interactions, row_group_size=100_000)
    return Data(folder, cmap, doc, people, interactions, rows, n_people)


# -- measurements ---------------------------------------------------------------------------------
@dataclass
class Timing:
    seconds: list[float] = field(default_factory=list)
    notes: dict[str, float] = field(default_factory=dict)
    #: CPU seconds of each run: this process and the PostgreSQL backends of its database
    cpu: list[float] = field(default_factory=list)
    #: each run's CPU seconds as (this process, the server backends)
    cpu_parts: list[tuple[float, float]] = field(default_factory=list)

    def least_cpu(self) -> str:
        client, server = min(self.cpu_parts, key=sum)
        return f"{client + server:.2f} s (client {client:.2f} s + server {server:.2f} s)"

    def best(self) -> float:
        return min(self.seconds)


def _backend_cpu(url: str) -> dict[int, float] | None:
    """CPU seconds used so far by each server backend connected to ``url``'s database, or None
    when they cannot be read (the server on another machine)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        me = con.info.backend_pid
        pids = [
            int(r[0])
            for r in con.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            ).fetchall()
            if r[0] != me
        ]
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        out[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return out


@contextlib.contextmanager
def pg_cpu(url: str, timing: Timing) -> Iterator[Callable[[], None]]:
    """Yields a function to call at the end of the measured work, while its connections are
    still open: it adds the CPU seconds of this process and of the database's backends since
    the block began to ``timing.cpu`` (nothing when the backends cannot be read)."""
    before, t0 = _backend_cpu(url) or {}, time.process_time()

    def done() -> None:
        client = time.process_time() - t0
        after = _backend_cpu(url)
        if after is not None:
            server = sum(v - before.get(p, 0.0) for p, v in after.items())
            timing.cpu.append(client + server)
            timing.cpu_parts.append((client, server))

    yield done


class TimedIngestor(Ingestor):
    """Records where the import path spends its time (validation runs a chunk ahead)."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.validate_s = 0.0
        self.write_s = 0.0

    def validate(self, kind: Any, batch: pa.Table) -> ValidationResult:
        t = time.perf_counter()
        try:
            return super().validate(kind, batch)
        finally:
            self.validate_s += time.perf_counter() - t

    def ingest(self, kind: Any, batch: pa.Table, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return super().ingest(kind, batch, **kw)
        finally:
            self.write_s += time.perf_counter() - t


def table_ddl(dialect: str) -> list[str]:
    """The store's interactions table: its V1 definition and the indexes later migrations put
    on it (migration 7's person index), so the raw path maintains what the import maintains."""
    ddl = next(s for s in V1.statements if "CREATE TABLE interactions" in s)
    indexes = [s for m in MIGRATIONS for s in m.sql(dialect) if " ON interactions " in s]
    return [ddl.format(**TYPES[dialect]), *indexes]


def to_format(data: Data, fmt: str) -> Path:
    """The interactions as CSV or NDJSON, written by DuckDB (not timed)."""
    path = data.folder / f"interactions.{fmt}"
    if not path.exists():
        options = "HEADER true" if fmt == "csv" else "FORMAT json"
        duckdb.sql(
            "SET TimeZone = 'UTC'; "
            f"COPY (SELECT * REPLACE (strftime(occurred_at, '%Y-%m-%dT%H:%M:%S.%fZ') AS "
            f"occurred_at) FROM read_parquet('{data.interactions}')) TO '{path}' ({options})"
        )
    return path


def import_path(
    url: str, data: Data, chunk_rows: int, timing: Timing, path: Path | None = None
) -> None:
    with contextlib.closing(open_store(url)) as store:
        ing = TimedIngestor(store)
        try:
            ing.load_map(data.cmap)
            import_file(ing, data.people, "people", chunk_rows=chunk_rows)
            ing.validate_s = ing.write_s = 0.0
            source = path or data.interactions
            with pg_cpu(url, timing) if store.dialect == "postgres" else _no_cpu() as done:
                t = time.perf_counter()
                s = import_file(ing, source, "interactions", chunk_rows=chunk_rows)
                seconds = time.perf_counter() - t
                done()
            assert s.inserted == data.rows and s.rejected == 0, s
            if not timing.seconds or seconds < timing.best():  # the breakdown of the best run
                timing.notes = {"validate_s": ing.validate_s, "write_s": ing.write_s}
            timing.seconds.append(seconds)
        finally:
            ing.close()


@contextlib.contextmanager
def _no_cpu() -> Iterator[Callable[[], None]]:
    yield lambda: None


def duckdb_raw(path: Path, data: Data, timing: Timing) -> None:
    con = duckdb.connect(str(path))
    try:
        for stmt in table_ddl("duckdb"):
            con.execute(stmt)
        cols = ", ".join(COLUMNS)
        t = time.perf_counter()
        con.execute(
            f"INSERT INTO interactions ({cols}) SELECT {cols} FROM read_parquet(?)",
            [str(data.interactions)],
        )
        timing.seconds.append(time.perf_counter() - t)
        assert con.execute("SELECT count(*) FROM interactions").fetchone() == (data.rows,)
    finally:
        con.close()


def pg_raw(url: str, path: Path, data: Data, timing: Timing, fmt: str = "csv") -> None:
    """COPY ``path`` (``fmt``: csv or binary) into a fresh interactions table; after a CSV run,
    the table is written out as binary COPY beside it (not timed) for the binary runs."""
    import psycopg

    with psycopg.connect(url) as con:
        for stmt in table_ddl("postgres"):
            con.execute(stmt)
        con.commit()
        cols = ", ".join(COLUMNS)
        with pg_cpu(url, timing) as done:
            t = time.perf_counter()
            with (
                con.cursor() as cur,
                cur.copy(f"COPY interactions ({cols}) FROM STDIN (FORMAT {fmt})") as cp,
                path.open("rb") as f,
            ):
                while block := f.read(1 << 20):
                    cp.write(block)
            con.commit()
            timing.seconds.append(time.perf_counter() - t)
            done()
        row = con.execute("SELECT count(*) FROM interactions").fetchone()
        assert row is not None and row[0] == data.rows
        binary = path.with_suffix(".bin")
        if fmt == "csv" and not binary.exists():
            with (
                con.cursor() as cur,
                cur.copy(f"COPY interactions ({cols}) TO STDOUT (FORMAT binary)") as cp,
                binary.open("wb") as out,
            ):
                for block in cp:
                    out.write(block)


def fresh_duckdb(path: Path) -> Path:
    for p in (path, Path(f"{path}.wal")):
        p.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def pg_database(admin: str) -> Iterator[str]:
    import psycopg

    name = f"corridor_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    base, _, query = admin.partition("?")
    url = base.rsplit("/", 1)[0] + "/" + name + ("?" + query if query else "")
    try:
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- HTTP -----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_batches(
    data: Data, folder: Path, batches: int, size: int, log: Callable[[str], None]
) -> float | None:
    """Interactions per second through POST /api/v1/interactions, or None when it cannot run."""
    try:
        import httpx

        from corridor.api.app import create_app  # noqa: F401  (is the API there yet?)
    except ImportError as e:
        log(f"HTTP part skipped: the API is not available ({e})")
        return None
    url = f"duckdb:///{fresh_duckdb(folder / 'http.duckdb')}"
    from corridor.auth import accounts
    from corridor.store import open_store

    with open_store(url) as store:  # the API needs a key: an analyst's, as a sender would use
        accounts.add_user(store, "bench", "bench-password", "analyst")
        key = accounts.create_key(store, "bench", "benchmark")[1]
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "corridor.cli", "serve", "--store", url, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, timeout=300, headers=auth) as client:
            if not _wait_ready(client, proc):
                err = proc.stderr.read()[-2000:] if proc.poll() is not None and proc.stderr else ""
                log(f"HTTP part skipped: `corridor serve` did not come up. {err.strip()}")
                return None
            r = client.put("/api/v1/map", content=orjson.dumps(data.map_doc),
                           headers={"content-type": "application/json"})  # fmt: skip
            if r.status_code != 200:
                log(f"HTTP part skipped: PUT /api/v1/map answered {r.status_code}: {r.text[:300]}")
                return None
            json = {"content-type": "application/json"}
            people = pq.read_table(data.people).to_pylist()
            for i in range(0, len(people), size):
                client.post("/api/v1/people", content=orjson.dumps(people[i : i + size]),
                            headers=json).raise_for_status()  # fmt: skip
            n = min(batches * size, data.rows)
            rows = pq.read_table(data.interactions).slice(0, n).to_pylist()
            bodies = [orjson.dumps(rows[i : i + size]) for i in range(0, n, size)]
            del rows
            accepted = 0
            t = time.perf_counter()
            for body in bodies:
                r = client.post("/api/v1/interactions", content=body, headers=json)
                if r.status_code != 200:
                    log(f"HTTP part failed: POST answered {r.status_code}: {r.text[:300]}")
                    return None
                accepted += int(r.json()["accepted"])
            seconds = time.perf_counter() - t
            if accepted != n:
                log(f"HTTP part: {accepted:,} of {n:,} interactions accepted")
            return accepted / seconds
    except httpx.HTTPError as e:
        log(f"HTTP part failed: {e}")
        return None
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_ready(client: Any, proc: subprocess.Popen[str], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if client.get("/api/v1/health").status_code == 200:
                return True
        except Exception:  # not listening yet
            pass
        time.sleep(0.2)
    return False


# -- main -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="interactions (default 1,000,000)")
    ap.add_argument("--people", type=int, default=None, help="persons (default rows / 10)")
    ap.add_argument("--engine", choices=["duckdb", "postgres", "both"], default="both")
    ap.add_argument(
        "--pg-url",
        default=os.environ.get("CORRIDOR_TEST_POSTGRES") or DEFAULT_PG,
        help="PostgreSQL server to create scratch databases on (default $CORRIDOR_TEST_POSTGRES "
        f"or {DEFAULT_PG})",
    )
    ap.add_argument(
        "--formats",
        default="parquet",
        help="also time importing the same rows as csv and/or ndjson on DuckDB, e.g. "
        "parquet,csv,ndjson (default parquet)",
    )
    ap.add_argument("--http-batches", type=int, default=20, help="HTTP batches (0: skip)")
    ap.add_argument("--http-batch-size", type=int, default=10_000)
    ap.add_argument("--chunk-rows", type=int, default=None, help="import chunk size")
    ap.add_argument("--repeat", type=int, default=1, help="runs per measurement; best is kept")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the files here")
    args = ap.parse_args(argv)
    n_people = args.people or max(args.rows // 10, 1)
    chunk_kw = {} if args.chunk_rows is None else {"chunk_rows": args.chunk_rows}
    chunk_rows = chunk_kw.get("chunk_rows") or import_file.__kwdefaults__["chunk_rows"]
    # absolute: the store URLs below are duckdb:///<path>, an absolute path
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="corridor-bench-"))).absolute()
    work.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(msg, flush=True)

    try:
        t = time.perf_counter()
        data = generate(work, args.rows, n_people)
        log(
            f"generated {args.rows:,} interactions and {n_people:,} people in "
            f"{time.perf_counter() - t:.1f} s ({data.interactions.stat().st_size / 1e6:.0f} MB "
            f"Parquet) in {work}; {os.cpu_count()} CPU cores; import chunk {chunk_rows:,} rows"
        )
        results: dict[str, str] = {}
        lines: list[tuple[str, str, str]] = []
        engines = ["duckdb", "postgres"] if args.engine == "both" else [args.engine]
        for engine in engines:
            imp, raw = Timing(), Timing()
            raw_binary = Timing()  # PostgreSQL: the same COPY from binary (for comparison)
            for _ in range(args.repeat):
                if engine == "duckdb":
                    duckdb_raw(fresh_duckdb(work / "raw.duckdb"), data, raw)
                    url = f"duckdb:///{fresh_duckdb(work / 'import.duckdb')}"
                    import_path(url, data, chunk_rows, imp)
                else:
                    csv_path = work / "pg_copy.csv"
                    if not csv_path.exists():  # not timed: the raw path's input
                        duckdb.sql(
                            f"COPY (SELECT {', '.join(COLUMNS)} FROM "
                            f"read_parquet('{data.interactions}')) TO '{csv_path}' (HEADER false)"
                        )
                    with pg_database(args.pg_url) as url:
                        pg_raw(url, csv_path, data, raw)
                    with pg_database(args.pg_url) as url:
                        import_path(url, data, chunk_rows, imp)
                    with pg_database(args.pg_url) as url:
                        pg_raw(url, csv_path.with_suffix(".bin"), data, raw_binary, "binary")
            imp_rs, raw_rs = args.rows / imp.best(), args.rows / raw.best()
            short = "pg" if engine == "postgres" else engine
            results[f"{short}_import_rows_s"] = f"{imp_rs:.0f}"
            results[f"{short}_raw_rows_s"] = f"{raw_rs:.0f}"
            results[f"{short}_ratio"] = f"{imp_rs / raw_rs:.2f}"
            raw_name = "INSERT ... read_parquet" if engine == "duckdb" else "COPY FROM STDIN (csv)"
            lines.append((f"{engine}: corridor import", f"{imp.best():.2f} s", f"{imp_rs:,.0f}"))
            lines.append((f"{engine}: raw {raw_name}", f"{raw.best():.2f} s", f"{raw_rs:,.0f}"))
            lines.append((f"{engine}: ratio import/raw", "", f"{imp_rs / raw_rs:.2f}"))
            if raw_binary.seconds:
                bin_rs = args.rows / raw_binary.best()
                results[f"{short}_raw_binary_rows_s"] = f"{bin_rs:.0f}"
                results[f"{short}_ratio_to_binary"] = f"{imp_rs / bin_rs:.2f}"
                lines.append(
                    (f"{engine}: raw COPY FROM STDIN (binary)", f"{raw_binary.best():.2f} s",
                     f"{bin_rs:,.0f}")
                )  # fmt: skip
                lines.append((f"{engine}: ratio import/raw binary", "", f"{imp_rs / bin_rs:.2f}"))
            if imp.cpu and raw.cpu:  # rows per CPU second: import / raw
                cpu_ratio = min(raw.cpu) / min(imp.cpu)
                results[f"{short}_cpu_ratio"] = f"{cpu_ratio:.2f}"
                log(f"{engine} CPU: import {imp.least_cpu()}, raw {raw.least_cpu()}")
                lines.append(
                    (f"{engine}: CPU import (client + server)", f"{min(imp.cpu):.2f} s", "")
                )
                lines.append((f"{engine}: CPU raw (client + server)", f"{min(raw.cpu):.2f} s", ""))
                lines.append((f"{engine}: ratio in rows per CPU second", "", f"{cpu_ratio:.2f}"))
            lines.append(
                (
                    f"{engine}:   of which validation (overlapped)",
                    f"{imp.notes['validate_s']:.2f} s",
                    "",
                )
            )
            lines.append((f"{engine}:   of which writing", f"{imp.notes['write_s']:.2f} s", ""))
            log(f"{engine} done: import {imp.seconds}, raw {raw.seconds}")
        for fmt in [f for f in args.formats.split(",") if f and f != "parquet"]:
            path = to_format(data, fmt)
            timing = Timing()
            for _ in range(args.repeat):
                url = f"duckdb:///{fresh_duckdb(work / 'import.duckdb')}"
                import_path(url, data, chunk_rows, timing, path)
            rate = args.rows / timing.best()
            results[f"duckdb_{fmt}_import_rows_s"] = f"{rate:.0f}"
            lines.append((f"duckdb: corridor import of {path.name}", f"{timing.best():.2f} s",
                          f"{rate:,.0f}"))  # fmt: skip
        if args.http_batches > 0:
            rate = http_batches(data, work, args.http_batches, args.http_batch_size, log)
            results["http_rows_s"] = "skipped" if rate is None else f"{rate:.0f}"
            label = f"duckdb: HTTP POST {args.http_batch_size:,}-row JSON arrays"
            lines.append((label, "", "skipped" if rate is None else f"{rate:,.0f}"))
        width = max(len(a) for a, _, _ in lines) + 2
        print()
        print(f"{'measurement':<{width}}{'time':>10}{'rows/s':>14}")
        for a, b, c in lines:
            print(f"{a:<{width}}{b:>10}{c:>14}")
        print()
        print("RESULT " + " ".join(f"{k}={v}" for k, v in results.items()), flush=True)
        return 0
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
