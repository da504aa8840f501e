"""Customer search benchmark: the store's search (:mod:`corridor.store.people_search`) on a
simulated company of 364,000 people, against plain pandas ``str.contains`` over the same people.

    python benchmarks/customer_search.py                       # 260,000 customers + 40 % prospects
    python benchmarks/customer_search.py --engine both         # and on PostgreSQL
    python benchmarks/customer_search.py --customers 20000     # a quick check
    python benchmarks/customer_search.py --workdir bench-data/search   # keep (and reuse) the stores

The company is ``simulate(customers, months, seed)`` (people with e-mails such as
``maria.lopez42@example.com`` and phones such as ``+15551234567``, ~3.2 interactions per
customer per month), imported through ``corridor import``'s path into a DuckDB file and, with
``--engine both|postgres``, a PostgreSQL database (``--pg-url``; a scratch database
``corridor_bench_search`` is made there and kept for reuse).

For each query below (made from one simulated customer: ``c-000576`` when there are that many),
timed ``--repeat`` times after one warm-up:

(a) store: ``search_people(store, q)`` as an agent runs it (ranked, at most 50, each with its
    last activity and numbers of interactions and feedback, one query), and as a partner
    manager runs it (only people with a record of the partner; identities match whole);
(b) pandas: the people and their e-mails, CRM ids and phones read once into a DataFrame (timed
    separately), then ``str.contains`` (case-insensitive, no regex) on the id, the e-mails and
    CRM ids, and the phone digits; no ranking, no counts: the floor of doing it in Python.

The match counts of (a) and (b) are compared where (a) was not truncated. It prints a table and
a last line starting with ``RESULT``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg

PG_DB = "corridor_bench_search"


def _with_db(url: str, db: str) -> str:
    base, _, query = url.partition("?")
    return base.rsplit("/", 1)[0] + "/" + db + ("?" + query if query else "")


# -- data -----------------------------------------------------------------------------------------
def simulated(work: Path, spec: dict[str, int], log: Callable[[str], None]) -> Path:
    from corridor.simulate import simulate

    data, marker = work / "data", work / "data.json"
    if data.is_dir() and marker.exists() and json.loads(marker.read_text()) == spec:
        return data
    shutil.rmtree(data, ignore_errors=True)
    t = time.perf_counter()
    res = simulate(out_dir=data, **spec)
    log(f"simulated {res.counts} in {time.perf_counter() - t:.1f} s")
    marker.write_text(json.dumps(spec))
    return data


def loaded(
    url: str, data: Path, marker: Path, spec: dict[str, int], log: Callable[[str], None]
) -> None:
    """Import ``data`` into the store at ``url`` unless ``marker`` says it holds ``spec``."""
    from corridor.ingest.files import import_dataset
    from corridor.ingest.pipeline import Ingestor
    from corridor.store import open_store

    if marker.exists() and json.loads(marker.read_text()) == spec:
        log(f"reusing {url}")
        return
    with contextlib.closing(open_store(url)) as store:
        ing = Ingestor(store)
        try:
            t = time.perf_counter()
            import_dataset(ing, data)
            log(f"imported into {url.split('://')[0]} in {time.perf_counter() - t:.1f} s")
        finally:
            ing.close()
        if store.dialect == "postgres":
            with store.transaction() as tx:
                tx.execute("ANALYZE")
    marker.write_text(json.dumps(spec))


def fresh_pg(admin: str) -> str:
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
        con.execute(f'CREATE DATABASE "{PG_DB}"')
    return _with_db(admin, PG_DB)


# -- the queries ----------------------------------------------------------------------------------
def queries(store: Any) -> tuple[list[tuple[str, str]], str, str]:
    """(label, query) pairs made from one simulated customer with an e-mail, a phone and records,
    the partner whose manager runs the scoped searches, and that customer's id."""
    pid, email, phone = store.query(
        "SELECT p.person_id, e.id_value, f.id_value FROM people p "
        "JOIN identities e ON e.person_id = p.person_id AND e.id_type = 'email' "
        "JOIN identities f ON f.person_id = p.person_id AND f.id_type = 'phone' "
        "WHERE p.person_id >= 'c-000576' AND p.person_id IN "
        "(SELECT person_id FROM interactions WHERE partner_id IS NOT NULL) "
        "ORDER BY p.person_id LIMIT 1"
    )[0]
    partner = store.query(
        "SELECT partner_id FROM interactions WHERE person_id = ? AND partner_id IS NOT NULL "
        "ORDER BY partner_id LIMIT 1",
        (pid,),
    )[0][0]
    local = email.split("@")[0]
    name = re.sub(r"\d+$", "", local).split(".")[-1]  # the surname: "lopez"
    number = pid.split("-")[-1].lstrip("0") or "0"
    digits = re.sub(r"\D", "", phone)
    formatted = f"+{digits[0]} ({digits[1:4]}) {digits[4:7]}-{digits[7:]}"
    return (
        [
            ("one letter", local[0]),
            ("name part", name),
            ("partial e-mail", local[: max(3, len(local) - 1)]),
            ("whole e-mail, capitals", email.upper()),
            ("id fragment", number),
            ("whole id", pid),
            ("phone, last 4 digits", digits[-4:]),
            ("phone, formatted", formatted),
            ("no match", "zqxj"),
        ],
        partner,
        pid,
    )


# -- measurements ---------------------------------------------------------------------------------
def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    out = fn()
    seconds = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        seconds.append(time.perf_counter() - t)
    return seconds, out


def ms(seconds: list[float], q: float = 50) -> float:
    return float(np.percentile(np.asarray(seconds) * 1000.0, q))


def people_frame(store: Any) -> tuple[float, pd.DataFrame]:
    """One row per identity: the person's id and group, the e-mail or CRM id in lower case, the
    phone's digits."""
    t = time.perf_counter()
    rows = store.query(
        "SELECT p.person_id, p.canonical_id, i.id_type, i.id_value FROM people p "
        "LEFT JOIN identities i ON i.person_id = p.person_id"
    )
    df = pd.DataFrame(rows, columns=["person_id", "canonical_id", "id_type", "id_value"])
    df["id_lower"] = df["person_id"].str.lower()
    df["value_lower"] = df["id_value"].str.lower().fillna("")
    phone = df["id_type"] == "phone"
    df["phone_digits"] = ""
    df.loc[phone, "phone_digits"] = df.loc[phone, "id_value"].str.replace(r"\D", "", regex=True)
    df.loc[phone, "value_lower"] = ""
    df.loc[df["id_type"] == "device_id", "value_lower"] = ""  # opaque: matched whole only
    return time.perf_counter() - t, df


def pandas_search(df: pd.DataFrame, q: str) -> int:
    """How many person groups match ``q`` anywhere (id, e-mail, CRM id, phone digits)."""
    text = " ".join(q.split()).lower()
    hit = df["id_lower"].str.contains(text, regex=False) | df["value_lower"].str.contains(
        text, regex=False
    )
    if re.fullmatch(r"\+?[\d\s\-().]*\d[\d\s\-().]*", text):
        hit |= df["phone_digits"].str.contains(re.sub(r"\D", "", text), regex=False)
    return int(df.loc[hit, "canonical_id"].nunique())


def bench_engine(
    url: str, repeat: int, pandas_repeat: int, log: Callable[[str], None]
) -> dict[str, Any]:
    from corridor.api.routes.people import records_in_scope
    from corridor.auth.scope import Principal, Role, Scope
    from corridor.store import open_store
    from corridor.store.people_search import search_people

    out: dict[str, Any] = {"rows": []}
    with contextlib.closing(open_store(url)) as store:
        n_people = store.count("people")
        n_inter = store.count("interactions")
        out["people"], out["interactions"] = n_people, n_inter
        qs, partner, pid = queries(store)
        scope = Scope.of(Principal("bench", Role.PARTNER_MANAGER, partner=partner), None)
        in_scope = records_in_scope(scope)
        load_s, df = people_frame(store)
        out["pandas_load_ms"] = load_s * 1000
        for label, q in qs:
            agent, found = timed(lambda q=q: search_people(store, q), repeat)
            scoped, sfound = timed(
                lambda q=q: search_people(store, q, in_scope=in_scope, partial_identities=False),
                repeat,
            )
            pd_s, n_pd = timed(lambda q=q: pandas_search(df, q), pandas_repeat)
            n_store = len(found.people)
            if not found.more and found.partial and n_store != n_pd:
                log(f"MISMATCH {label} {q!r}: store {n_store}, pandas {n_pd}")
                out["mismatch"] = True
            top = found.people[0].person_id if found.people else "-"
            out["rows"].append(
                {
                    "label": label,
                    "q": q,
                    "found": f"{n_store}{'+' if found.more else ''}",
                    "top": top,
                    "p50": ms(agent),
                    "p95": ms(agent, 95),
                    "scoped_p50": ms(scoped),
                    "scoped_found": f"{len(sfound.people)}{'+' if sfound.more else ''}",
                    "pandas_p50": ms(pd_s),
                    "pandas_found": n_pd,
                }
            )
        out["partner"], out["pid"] = partner, pid
    return out


def report(engine: str, res: dict[str, Any]) -> None:
    print(
        f"\n{engine}: {res['people']:,} people, {res['interactions']:,} interactions; "
        f"pandas frame read in {res['pandas_load_ms']:.0f} ms; scoped = partner manager of "
        f"{res['partner']}"
    )
    head = (
        f"{'query':24} {'q':28} {'found':>6} {'top':>9} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'scoped':>7} {'s.found':>7} {'pandas':>7} {'pd.found':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in res["rows"]:
        print(
            f"{r['label']:24} {r['q'][:28]:28} {r['found']:>6} {r['top']:>9} {r['p50']:7.1f} "
            f"{r['p95']:7.1f} {r['scoped_p50']:7.1f} {r['scoped_found']:>7} "
            f"{r['pandas_p50']:7.1f} {r['pandas_found']:>8}"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--customers", type=int, default=260_000, help="customers (+40 %% prospects)")
    ap.add_argument("--months", type=int, default=12)
    ap.add_argument("--seed", type=int, default=20250301)
    ap.add_argument("--engine", choices=("duckdb", "postgres", "both"), default="duckdb")
    ap.add_argument(
        "--pg-url",
        default=os.environ.get(
            "CORRIDOR_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    ap.add_argument("--repeat", type=int, default=20, help="timed runs of each store search")
    ap.add_argument("--pandas-repeat", type=int, default=5, help="timed pandas runs")
    ap.add_argument("--workdir", type=Path, default=None, help="keep (and reuse) the stores here")
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    spec = {"customers": args.customers, "months": args.months, "seed": args.seed}
    tmp = None if args.workdir else tempfile.mkdtemp(prefix="corridor-search-")
    work = args.workdir or Path(tmp or ".")
    work.mkdir(parents=True, exist_ok=True)
    try:
        data = simulated(work, spec, log)
        engines = ["duckdb", "postgres"] if args.engine == "both" else [args.engine]
        results: dict[str, Any] = {}
        for engine in engines:
            if engine == "duckdb":
                url = f"duckdb:///{(work / 'search.duckdb').absolute()}"
                marker = work / "search.duckdb.json"
                if not marker.exists():
                    (work / "search.duckdb").unlink(missing_ok=True)
            else:
                url = _with_db(args.pg_url, PG_DB)
                marker = work / "search.pg.json"
                if not (marker.exists() and json.loads(marker.read_text()) == spec):
                    marker.unlink(missing_ok=True)
                    url = fresh_pg(args.pg_url)
            loaded(url, data, marker, spec, log)
            res = bench_engine(url, args.repeat, args.pandas_repeat, log)
            report(engine, res)
            results[engine] = res
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    summary: dict[str, Any] = {}
    for engine, res in results.items():
        rows = res["rows"]
        summary["people"] = res["people"]
        summary[f"{engine}_p50_ms"] = round(float(np.median([r["p50"] for r in rows])), 1)
        summary[f"{engine}_worst_p50_ms"] = round(max(r["p50"] for r in rows), 1)
        summary[f"{engine}_scoped_worst_p50_ms"] = round(max(r["scoped_p50"] for r in rows), 1)
        summary[f"{engine}_pandas_p50_ms"] = round(
            float(np.median([r["pandas_p50"] for r in rows])), 1
        )
        summary[f"{engine}_speedup"] = round(
            summary[f"{engine}_pandas_p50_ms"] / max(summary[f"{engine}_p50_ms"], 0.01), 1
        )
        summary[f"{engine}_counts_agree"] = not res.get("mismatch", False)
    print("RESULT " + " ".join(f"{k}={v}" for k, v in summary.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
