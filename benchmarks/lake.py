"""The lake on Spark against DuckDB: the same questions at several sizes, and the sync rate.

    python benchmarks/lake.py                    # 1 M interactions: 3 min idle, ~12 min loaded
    python benchmarks/lake.py --sizes 1000000,10000000 --workdir /tmp/lakebench
    python benchmarks/lake.py --sizes 100000 --repeat 1            # a quick check
    python benchmarks/lake.py --sizes 10000000,100000000 --replicate --repeat 1 --workdir W

For each size (interactions; the company is ``benchmarks/gaps.py``'s, 12 months, with
``size / 38.3`` customers: the simulator makes ~38.3 interactions per customer-year), one run:

1. builds (or, with ``--workdir``, reuses) a DuckDB store of the simulated company with
   ``gaps.build`` (``simulate`` + ``import_dataset`` + the rollup); with ``--replicate``, every
   size after the first is built as copies of the first size's company (:func:`replicate`:
   the same customers under new ids, in minutes rather than the hour 100 M interactions take
   to simulate and import);
2. syncs it to a fresh lake with :func:`corridor.store.lake_sync.sync` (what ``corridor lake
   sync`` runs), timed: the sync rate is records (all seven fact tables) per second;
3. asks the same questions of the DuckDB store and of the lake store (``spark://local[2]``,
   ``ops=`` the same DuckDB file) through the registered analyses and
   :func:`corridor.analytics.core.scoping.run_scoped` (what the API calls): the gap analysis
   and NPS and CSAT by touch point and month, and ripple (its defaults). Each is timed on its
   first call (nothing cached by the engine) and on ``--repeat`` warm repeats (the median is
   reported); interactions per second = the company's interactions / the warm median;
4. checks that both engines answer the same: same rows and columns, numbers equal to a relative
   1e-6 (the largest relative difference is printed).

On DuckDB the gaps and metrics read the store's daily rollup (as Corridor does on an embedded
store); on the lake there is no rollup, and Spark aggregates the base tables. One Spark session
(``local[2]``, ``--driver-memory``) serves every size; its start is timed on its own. It prints a
table per size, how each cost grows between consecutive sizes (the ratio of times against the
ratio of interactions, and the exponent: 1 = linear), and a last line starting with ``RESULT``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from gaps import build

#: interactions the simulator makes per customer in 12 months (9,912,624 / 260,000 measured)
PER_CUSTOMER = 38.3
#: the questions: (label, analysis, its parameters)
QUESTIONS: list[tuple[str, str, dict[str, Any]]] = [
    ("gaps by touch point x month", "gaps", {"by": ["touchpoint"], "period": "month"}),
    ("NPS by touch point x month", "nps", {"by": ["touchpoint"], "period": "month"}),
    ("CSAT by touch point x month", "csat", {"by": ["touchpoint"], "period": "month"}),
    ("ripple (defaults)", "ripple", {}),
]
RTOL = 1e-6


@dataclass
class Timed:
    first: float = math.nan
    warm: list[float] = field(default_factory=list)
    rows: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.warm) if self.warm else self.first


@dataclass
class SizeRun:
    size: int
    customers: int
    counts: dict[str, int] = field(default_factory=dict)
    built_s: float | None = None  # None: reused
    path: Path | None = None
    #: built as this many copies of the first size's company (see replicate); 1: simulated
    copies: int = 1
    duckdb_mb: float = 0.0
    lake_mb: float = 0.0
    sync_records: int = 0
    sync_s: float = 0.0
    lake_open_s: float = 0.0
    duck: dict[str, Timed] = field(default_factory=dict)
    spark: dict[str, Timed] = field(default_factory=dict)
    same: dict[str, str] = field(default_factory=dict)

    @property
    def interactions(self) -> int:
        return self.counts.get("interactions", 0)

    @property
    def sync_rate(self) -> float:
        return self.sync_records / self.sync_s if self.sync_s else math.nan


# -- comparing answers ----------------------------------------------------------------------------
def plain(rows: Any) -> Any:
    """Rows as JSON reads them back, every number a float."""

    def norm(v: Any) -> Any:
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, int | float):
            return float(v)
        if isinstance(v, list):
            return [norm(x) for x in v]
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        return v

    return norm(orjson.loads(orjson.dumps(rows, default=str, option=orjson.OPT_NAIVE_UTC)))


def compare(a: Any, b: Any, where: str = "") -> tuple[float, str | None]:
    """The largest relative difference between two answers' numbers, and the first difference
    that is not a number within :data:`RTOL` (None: the same)."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return 0.0, None
        d = abs(a - b) / max(abs(a), abs(b), 1e-300) if a != b else 0.0
        bad = not math.isclose(a, b, rel_tol=RTOL, abs_tol=1e-12)
        return d, (f"{where}: {a!r} != {b!r}" if bad else None)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return math.inf, f"{where}: {len(a)} rows != {len(b)} rows"
        worst, first = 0.0, None
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d, bad = compare(x, y, f"{where}[{i}]")
            worst, first = max(worst, d), first or bad
        return worst, first
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return math.inf, f"{where}: columns differ {sorted(set(a) ^ set(b))}"
        worst, first = 0.0, None
        for k in a:
            d, bad = compare(a[k], b[k], f"{where}.{k}")
            worst, first = max(worst, d), first or bad
        return worst, first
    return 0.0, (None if a == b else f"{where}: {a!r} != {b!r}")


# -- measuring ------------------------------------------------------------------------------------
def ask(store: Any, name: str, params: dict[str, Any], repeat: int) -> tuple[Timed, Any]:
    from corridor.analytics.core import registry
    from corridor.analytics.core.scoping import run_scoped

    a = registry.analyses()[name]
    out = Timed()
    t = time.perf_counter()
    result = run_scoped(a, store, None, a.bind(dict(params)))
    out.first = time.perf_counter() - t
    for _ in range(repeat):
        t = time.perf_counter()
        result = run_scoped(a, store, None, a.bind(dict(params)))
        out.warm.append(time.perf_counter() - t)
    records = result.to_records()
    out.rows = len(records)
    return out, {"n": result.n, "rows": plain(records)}


def du_mb(path: Path) -> float:
    done = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[0]) / 1024


#: the fact tables a copy repeats, and how each column of theirs is written in copy k (``{s}``:
#: the copy's id suffix); other columns as they are. Events, the corridor map and everything
#: operational are the company's own, held once.
COPIED: dict[str, dict[str, str]] = {
    "people": {"person_id": "person_id || '{s}'"},
    "identities": {"id_value": "id_value || '{s}'", "person_id": "person_id || '{s}'"},
    "interactions": {"interaction_id": "interaction_id || '{s}'",
                     "person_id": "person_id || '{s}'"},
    "feedback": {"feedback_id": "feedback_id || '{s}'", "person_id": "person_id || '{s}'",
                 "interaction_id": "interaction_id || '{s}'"},
    "text_analysis": {"feedback_id": "feedback_id || '{s}'"},
    "feedback_rollup": {},
}  # fmt: skip


def replica_spec(base: Path, copies: int) -> dict[str, Any]:
    """What a replicated store is built from (its marker's ``spec``)."""
    base_spec = orjson.loads((base.parent / "gaps.json").read_bytes())["spec"]
    return {"replicate": str(base), "copies": copies, "base": base_spec}


def replicate(base: Path, work: Path, copies: int, log: Callable[[str], None]) -> Path:
    """A store of ``copies`` copies of the company in the store ``base`` (built by
    ``gaps.build``), built once per (base, copies) in ``work``: the base file copied, then, for
    each further copy k, its people, identities, interactions, feedback and text analysis
    inserted again with every person, interaction, feedback and identity id suffixed ``~r<k>``
    (the same customers and histories under new ids: the simulator's company is independent
    across customers, so this is the company with ``copies`` times its customers, without the
    hour-long simulate and import of 100 M interactions); operational and market events once.
    The rollup's rows are inserted once per copy: it is additive, so its sums are the copies'."""
    import duckdb

    path, marker = work / "gaps.duckdb", work / "gaps.json"
    spec = replica_spec(base, copies)
    if path.exists() and marker.exists() and orjson.loads(marker.read_bytes()).get("spec") == spec:
        log(f"reusing {path} ({orjson.loads(marker.read_bytes())['counts']})")
        return path
    work.mkdir(parents=True, exist_ok=True)
    for p in (path, Path(f"{path}.wal"), marker):
        p.unlink(missing_ok=True)
    t = time.perf_counter()
    shutil.copyfile(base, path)
    con = duckdb.connect(str(path))
    try:
        con.execute("SET preserve_insertion_order = false")
        con.execute("SET memory_limit = '10GB'")  # the primary keys' indexes grow with each copy
        con.execute(f"ATTACH '{base}' AS base (READ_ONLY)")
        for k in range(1, copies):
            for name, written in COPIED.items():
                cols = [r[0] for r in con.execute(f"DESCRIBE base.{name}").fetchall()]
                select = ", ".join(written.get(c, c).format(s=f"~r{k}") for c in cols)
                con.execute(f"INSERT INTO {name} SELECT {select} FROM base.{name}")
            log(f"  copy {k + 1} of {copies} in, {time.perf_counter() - t:.0f} s")
        con.execute("DETACH base")
        con.execute("CHECKPOINT")
        counts = {
            n: int(con.execute(f"SELECT count(*) FROM {n}").fetchone()[0])  # type: ignore[index]
            for n in ("people", "interactions", "feedback")
        }
    finally:
        con.close()
    log(f"replicated {copies} times in {time.perf_counter() - t:.0f} s: {counts}")
    marker.write_bytes(orjson.dumps({"spec": spec, "counts": counts}))
    return path


def measure_size(
    run: SizeRun,
    work: Path,
    spark: Any,
    months: int,
    seed: int,
    repeat: int,
    log: Callable[[str], None],
    copies_of: tuple[Path, int] | None = None,
    duckdb_memory: str | None = None,
) -> None:
    from corridor.store import open_store
    from corridor.store.lake_store import open_lake_store
    from corridor.store.lake_sync import sync

    work.mkdir(parents=True, exist_ok=True)
    marker = work / "gaps.json"
    spec = {"customers": run.customers, "months": months, "seed": seed}
    if copies_of is not None:
        spec = replica_spec(*copies_of)
    reused = marker.exists() and orjson.loads(marker.read_bytes()).get("spec") == spec
    t = time.perf_counter()
    if copies_of is not None:
        path = replicate(copies_of[0], work, copies_of[1], log)
    else:
        path = build(work, run.customers, months, seed, log)
    if not reused:
        run.built_s = time.perf_counter() - t
    run.duckdb_mb = path.stat().st_size / 1e6
    lake = work / "lake"
    shutil.rmtree(lake, ignore_errors=True)  # the sync rate is a first sync's
    with contextlib.closing(open_store(f"duckdb:///{path}")) as duck:
        if duckdb_memory:  # beside the Spark driver's heap on the same machine
            with duck.transaction() as tx:
                tx.execute(f"SET memory_limit = '{duckdb_memory}'")
        run.path = path
        run.counts = {k: duck.count(k) for k in ("people", "interactions", "feedback")}
        log(f"{run.size:,}: store {run.counts}; syncing to {lake}")
        report = sync(duck, lake)
        run.sync_s = report.seconds
        run.sync_records = sum(t.rows for t in report.tables)
        run.lake_mb = du_mb(lake)
        log(
            f"  sync: {run.sync_records:,} records in {run.sync_s:.1f} s "
            f"({run.sync_rate:,.0f} records/s); lake {run.lake_mb:,.0f} MB"
        )
        t = time.perf_counter()
        url = f"spark://local[2]?lake={lake}&ops=duckdb:///{path}"
        with open_lake_store(url, open_store, session=spark) as on_spark:
            run.lake_open_s = time.perf_counter() - t
            for label, name, params in QUESTIONS:
                run.duck[label], expected = ask(duck, name, params, repeat)
                log(f"  {label}: DuckDB first {run.duck[label].first:.2f} s, "
                    f"warm {run.duck[label].median:.2f} s")  # fmt: skip
                run.spark[label], got = ask(on_spark, name, params, repeat)
                log(f"  {label}: Spark  first {run.spark[label].first:.2f} s, "
                    f"warm {run.spark[label].median:.2f} s")  # fmt: skip
                worst, bad = compare(got, expected, name)
                run.same[label] = "same" if bad is None else "DIFFERENT"
                log(f"  {label}: answers {run.same[label]} (max rel diff {worst:.1e})"
                    + (f"; {bad}" if bad else ""))  # fmt: skip


def start_spark(driver_memory: str) -> tuple[Any, float]:
    from pyspark.sql import SparkSession

    from corridor.store.lake_store import SPARK_CONF, spark_session

    t = time.perf_counter()
    # the driver's memory is fixed when its JVM starts: set before the lake store's session
    builder = SparkSession.builder.master("local[2]").config("spark.driver.memory", driver_memory)
    for key, value in SPARK_CONF.items():
        builder = builder.config(key, value)
    builder.getOrCreate()
    session = spark_session("local[2]")
    return session, time.perf_counter() - t


# -- report ---------------------------------------------------------------------------------------
def table(run: SizeRun) -> None:
    n = run.interactions
    print()
    feedback = run.counts.get("feedback", 0)
    print(f"{n:,} interactions ({run.customers:,} customers, {feedback:,} feedback); "
          f"DuckDB file {run.duckdb_mb:,.0f} MB, lake {run.lake_mb:,.0f} MB")  # fmt: skip
    if run.built_s is not None and run.copies > 1:
        print(f"built as {run.copies} copies of the first size's company in {run.built_s:.0f} s")
    elif run.built_s is not None:
        print(f"built (simulate + import + rollup) in {run.built_s:.0f} s")
    print(f"lake sync: {run.sync_records:,} records in {run.sync_s:.1f} s = "
          f"{run.sync_rate:,.0f} records/s; "
          f"lake store opened in {run.lake_open_s:.1f} s")  # fmt: skip
    head = f"{'question':<30}{'DuckDB 1st':>11}{'warm':>8}{'Spark 1st':>11}{'warm':>8}"
    print(head + f"{'Spark/Duck':>11}{'Spark int/s':>13}  answers")
    for label, _, _ in QUESTIONS:
        d, s = run.duck[label], run.spark[label]
        print(f"{label:<30}{d.first:>11.2f}{d.median:>8.2f}{s.first:>11.2f}{s.median:>8.2f}"
              f"{s.median / d.median:>11.1f}{n / s.median:>13,.0f}  {run.same[label]}")  # fmt: skip


def growth(a: SizeRun, b: SizeRun) -> dict[str, float]:
    """Exponents k of time ~ rows^k between two sizes (1: linear; < 1: fixed costs dominate)."""
    ratio = b.interactions / a.interactions
    out = {"sync": math.log(b.sync_s / a.sync_s) / math.log(ratio)}
    for label, name, _ in QUESTIONS:
        for engine, got in (("duckdb", (a.duck, b.duck)), ("spark", (a.spark, b.spark))):
            t0, t1 = got[0][label].median, got[1][label].median
            out[f"{engine}_{name}"] = math.log(t1 / t0) / math.log(ratio)
    print()
    print(f"growth {a.interactions:,} -> {b.interactions:,} interactions (x{ratio:.1f}): "
          f"time ratio (exponent; 1 = linear)")  # fmt: skip
    print(f"  lake sync: x{b.sync_s / a.sync_s:.1f} ({out['sync']:.2f})")
    for label, name, _ in QUESTIONS:
        d = b.duck[label].median / a.duck[label].median
        s = b.spark[label].median / a.spark[label].median
        print(f"  {label:<30} DuckDB x{d:.1f} ({out['duckdb_' + name]:.2f})   "
              f"Spark x{s:.1f} ({out['spark_' + name]:.2f})")  # fmt: skip
    return out


def short(size: int) -> str:
    """1000000 -> 1m, 250000 -> 250k."""
    if size >= 1_000_000 and size % 1_000_000 == 0:
        return f"{size // 1_000_000}m"
    return f"{size // 1000}k"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="1000000",
                    help="interactions per company, comma-separated (default 1000000)")  # fmt: skip
    ap.add_argument("--months", type=int, default=12)
    ap.add_argument("--seed", type=int, default=20250301)
    ap.add_argument("--repeat", type=int, default=2, help="warm repeats of each question")
    ap.add_argument("--driver-memory", default="6g", help="the Spark driver's JVM heap")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="keep (and reuse) stores and lakes here, a folder each")  # fmt: skip
    ap.add_argument("--replicate", action="store_true",
                    help="build every size after the first as copies of the first size's "
                    "company (see replicate) instead of simulating it")  # fmt: skip
    ap.add_argument("--duckdb-memory", default="8GB",
                    help="DuckDB's memory limit beside the Spark driver (default 8GB)")  # fmt: skip
    args = ap.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="corridor-lake-"))).absolute()
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(msg, flush=True)

    runs: list[SizeRun] = []
    try:
        spark, spark_s = start_spark(args.driver_memory)
        log(f"Spark session (local[2], driver {args.driver_memory}) started in {spark_s:.1f} s")
        try:
            for size in sizes:
                customers = max(100, round(size / PER_CUSTOMER))
                copies_of, folder = None, f"c{customers}"
                if args.replicate and runs and runs[0].path is not None:
                    copies = max(2, round(size / sizes[0]))
                    customers = runs[0].customers * copies
                    copies_of, folder = (runs[0].path, copies), f"c{runs[0].customers}x{copies}"
                run = SizeRun(size, customers, copies=copies_of[1] if copies_of else 1)
                measure_size(run, work / folder, spark, args.months, args.seed, args.repeat,
                             log, copies_of, args.duckdb_memory)  # fmt: skip
                runs.append(run)
        finally:
            spark.stop()
        for run in runs:
            table(run)
        exps = [growth(a, b) for a, b in itertools.pairwise(runs)]
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\npeak memory of the Python process: {peak:,.0f} MB; the Spark driver's heap: "
              f"{args.driver_memory}")  # fmt: skip
        agree = all(v == "same" for r in runs for v in r.same.values())
        results: dict[str, Any] = {"spark_start_s": f"{spark_s:.1f}"}
        for r in runs:
            p = f"i{r.interactions}"
            results[f"{p}_sync_rec_s"] = f"{r.sync_rate:.0f}"
            for label, name, _ in QUESTIONS:
                results[f"{p}_{name}_duckdb_s"] = f"{r.duck[label].median:.2f}"
                results[f"{p}_{name}_spark_s"] = f"{r.spark[label].median:.2f}"
        for (a, b), e in zip(itertools.pairwise(runs), exps, strict=True):
            for k, v in e.items():
                results[f"growth_{short(a.size)}_{short(b.size)}_{k}"] = f"{v:.2f}"
        results["answers"] = "same" if agree else "DIFFERENT"
        results["wall_s"] = f"{time.perf_counter() - started:.0f}"
        print()
        print("RESULT " + " ".join(f"{k}={v}" for k, v in results.items()), flush=True)
        return 0 if agree else 1
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
