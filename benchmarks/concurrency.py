"""Many users at once: readers of the gap analysis and the overview page, alone and while
writers post feedback, through a real server on the simulated company.

    python benchmarks/concurrency.py                          # ~10 M interactions (260,000)
    python benchmarks/concurrency.py --customers 26000 --seconds 30   # ~1 M interactions
    python benchmarks/concurrency.py --workdir /tmp/concbench      # keep (and reuse) the store

One run builds (or, with ``--workdir``, reuses) a DuckDB store of ``benchmarks/gaps.py``'s
simulated company (12 months) and copies it (the writers add to the copy; the kept store stays
as built). It makes an analyst with an API key on the copy, reads a sample of recent interactions
(person, touch point, time) to write feedback about, starts a real ``corridor serve`` on the copy
and waits until the per-person models are fitted. One first request of each read
(computed, as after every change of the data) is reported as "first". Then two phases of
``--seconds`` each, every client a thread with an httpx client of its own:

(1) reads alone (the baseline): ``--readers`` threads (12), half requesting
    ``GET /api/v1/gaps`` with the analyst's API key, half the overview page ``/?range=12m``
    signed in as the analyst through the login form, each one request after the other;
(2) the mix: the same readers plus ``--writers`` threads (4), each posting batches of
    ``--batch`` (20) new feedback records (``POST /api/v1/feedback``, a JSON array; ids new to
    the store, about sampled interactions of the last 30 days, with scores and sometimes a
    short text) one after the other, as fast as the server answers.

Per phase and kind: requests/s, p50 and p95 of the whole request, and p95 of the server's own
time (the ``Server-Timing: app;dur=`` header); with the writers, how far behind the latest
write the answers were (p95 and most of the ``Corridor-Data-Behind`` header: kept answers are
served up to ``CORRIDOR_ANSWER_MAX_STALE_S`` behind, NaN from a server that does not say).
Any answer other than 200 (or a batch not fully accepted) is counted as an error and not timed.
With ``--profile DIR`` it also records the server with py-spy during the mix (``DIR/mix.txt``,
collapsed stacks per thread).

Targets (issue 17, with the mix, on the 10 M company): gaps p95 < 300 ms, overview p95 < 1 s,
read throughput with writers at least half of reads alone. It prints a table and a last line
starting with ``RESULT``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from analyses import PASSWORD, USER, wait_for_models
from gaps import build, server

GAPS_URL = "/api/v1/gaps"
OVERVIEW_URL = "/?range=12m"
GAPS_TARGET_MS = 300.0
OVERVIEW_TARGET_MS = 1000.0
RATIO_TARGET = 0.5
TEXTS = (
    "The delivery was late again and nobody told me why.",
    "Friendly staff, quick answer, thank you.",
    "Checkout kept failing with my card, very frustrating.",
    "Fine overall, but the app is slow.",
)


@dataclass
class Samples:
    """The finished requests of one kind in one phase."""

    wall_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    #: how far behind the latest write each answer was (``Corridor-Data-Behind``), seconds
    behind_s: list[float] = field(default_factory=list)
    errors: int = 0
    last_error: str = ""

    def p(self, q: float, server: bool = False) -> float:
        values = self.server_ms if server else self.wall_ms
        return float(np.percentile(values, q)) if values else float("nan")

    def behind(self) -> tuple[float, float]:
        """(p95, max) of how far behind the latest write the answers were (NaN: not said)."""
        v = self.behind_s
        return (float(np.percentile(v, 95)), max(v)) if v else (float("nan"), float("nan"))


def prepare(path: Path, sample: int, seed: int) -> dict[str, Any]:
    """An analyst with an API key (made on first use) and recent interactions to write feedback
    about (read before the server holds the file)."""
    from corridor.auth import accounts
    from corridor.store import open_store

    with contextlib.closing(open_store(f"duckdb:///{path}")) as store:
        if accounts.get_user(store, USER) is None:
            accounts.add_user(store, USER, PASSWORD, "analyst")
        key = accounts.create_key(store, USER, "concurrency benchmark")[1]
        rows = store.query(
            "SELECT interaction_id, person_id, touchpoint, occurred_at FROM interactions "
            "WHERE person_id IS NOT NULL AND touchpoint IS NOT NULL AND occurred_at >= "
            "(SELECT max(occurred_at) FROM interactions) - INTERVAL 30 DAY "
            f"ORDER BY hash(interaction_id || '{int(seed)}') LIMIT {int(sample)}"
        )
    return {"key": key, "interactions": rows}


def feedback_batch(rng: random.Random, interactions: list[tuple], n: int, prefix: str) -> list:
    out = []
    for i in range(n):
        iid, pid, tp, at = rng.choice(interactions)
        at = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
        when = at + timedelta(hours=rng.uniform(0.5, 48))
        expectation = rng.randint(4, 10)
        record = {
            "feedback_id": f"{prefix}-{i}",
            "person_id": pid,
            "interaction_id": iid,
            "touchpoint": tp,
            "occurred_at": when.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "source": "survey",
            "expectation": expectation,
            "experience": max(0, min(10, expectation + rng.randint(-4, 2))),
            "nps": rng.randint(0, 10),
            "csat": rng.randint(1, 5),
        }
        if rng.random() < 0.3:
            record["text"] = rng.choice(TEXTS)
        out.append(record)
    return out


def server_pid() -> int | None:
    """The ``corridor serve`` child of this process (Linux /proc)."""
    me = str(os.getpid())
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[1] == me and b"serve" in cmd:
            return int(d.name)
    return None


class Load:
    """Readers and writers against one server, each with a client of its own (the page readers
    signed in before any clock starts); ``phase`` runs them for some seconds."""

    def __init__(self, base: str, prep: dict[str, Any], args: argparse.Namespace) -> None:
        import httpx

        self.prep, self.args = prep, args
        self.run_id = uuid.uuid4().hex[:8]
        auth = {"Authorization": f"Bearer {prep['key']}"}
        self.readers: list[tuple[str, Any]] = []
        for i in range(args.readers):
            if i % 2 == 0:
                self.readers.append(("gaps", httpx.Client(base_url=base, timeout=600,
                                                          headers=auth)))  # fmt: skip
                continue
            web = httpx.Client(base_url=base, timeout=600, follow_redirects=True)
            r = web.post("/login", data={"username": USER, "password": PASSWORD},
                         follow_redirects=False)  # fmt: skip
            if r.status_code not in (200, 303):
                raise RuntimeError(f"login failed: {r.status_code} {r.text[:160]}")
            self.readers.append(("overview", web))
        self.writers = [
            httpx.Client(base_url=base, timeout=600, headers=auth) for _ in range(args.writers)
        ]

    def close(self) -> None:
        for _, client in self.readers:
            client.close()
        for client in self.writers:
            client.close()

    def _reader(self, kind: str, client: Any, stop: float, out: Samples, lock: Any) -> None:
        url = GAPS_URL if kind == "gaps" else OVERVIEW_URL
        while time.perf_counter() < stop:
            t = time.perf_counter()
            r = client.get(url)
            wall = (time.perf_counter() - t) * 1000
            with lock:
                record(out, r, wall, ok=r.status_code == 200)

    def _writer(self, n: int, stop: float, out: Samples, lock: Any) -> None:
        rng = random.Random(f"{self.run_id}-{n}")
        client = self.writers[n]
        batch = 0
        while time.perf_counter() < stop:
            body = feedback_batch(rng, self.prep["interactions"], self.args.batch,
                                  f"conc-{self.run_id}-w{n}-b{batch}")  # fmt: skip
            batch += 1
            t = time.perf_counter()
            r = client.post("/api/v1/feedback", json=body)
            wall = (time.perf_counter() - t) * 1000
            with lock:
                ok = r.status_code == 200 and r.json().get("inserted") == len(body)
                record(out, r, wall, ok=ok)

    def phase(self, writers: int) -> tuple[dict[str, Samples], float]:
        """Every reader (and ``writers`` writers) one request after the other until the clock
        runs out; the requests under way then are waited for and counted."""
        lock = threading.Lock()
        got = {"gaps": Samples(), "overview": Samples(), "write": Samples()}
        start = time.perf_counter()
        stop = start + self.args.seconds
        threads = [
            threading.Thread(target=self._reader, args=(kind, client, stop, got[kind], lock))
            for kind, client in self.readers
        ]
        threads += [
            threading.Thread(target=self._writer, args=(n, stop, got["write"], lock))
            for n in range(writers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return got, time.perf_counter() - start


def record(out: Samples, r: Any, wall_ms: float, ok: bool) -> None:
    if not ok:
        out.errors += 1
        out.last_error = f"{r.status_code}: {r.text[:160]}"
        return
    out.wall_ms.append(wall_ms)
    dur = r.headers.get("server-timing", "app;dur=nan").split("dur=")[1]
    out.server_ms.append(float(dur.split(",")[0].split(";")[0]))
    behind = r.headers.get("corridor-data-behind")
    if behind is not None:
        out.behind_s.append(float(behind))


def first(base: str, key: str) -> dict[str, float]:
    """One request of each read, timed: computed afresh (cold)."""
    import httpx

    out = {}
    with httpx.Client(base_url=base, timeout=900, follow_redirects=True) as web:
        web.post("/login", data={"username": USER, "password": PASSWORD}).raise_for_status()
        for name, url, headers in (
            ("gaps", GAPS_URL, {"Authorization": f"Bearer {key}"}),
            ("overview", OVERVIEW_URL, {}),
        ):
            t = time.perf_counter()
            r = web.get(url, headers=headers)
            r.raise_for_status()
            out[name] = (time.perf_counter() - t) * 1000
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--customers", type=int, default=260_000,
                    help="simulated customers (default 260,000: ~10 M interactions)")  # fmt: skip
    ap.add_argument("--months", type=int, default=12)
    ap.add_argument("--seed", type=int, default=20250301)
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    ap.add_argument("--readers", type=int, default=12, help="half gaps, half overview")
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=20, help="feedback records per POST")
    ap.add_argument("--workdir", type=Path, default=None, help="keep (and reuse) the store")
    ap.add_argument("--profile", type=Path, default=None,
                    help="py-spy the server during the mix, into this folder")  # fmt: skip
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    root = (args.workdir or Path(tempfile.mkdtemp(prefix="corridor-concurrency-"))).absolute()
    work = root / f"c{args.customers}"
    work.mkdir(parents=True, exist_ok=True)
    try:
        path = build(work, args.customers, args.months, args.seed, log)
        counts = json.loads((work / "gaps.json").read_text())["counts"]
        # the writers add feedback: run on a copy, so a kept store stays as built
        built, path = path, work / "run.duckdb"
        Path(f"{path}.wal").unlink(missing_ok=True)
        shutil.copyfile(built, path)
        prep = prepare(path, 5000, args.seed)
        log(f"{counts}; {len(prep['interactions'])} recent interactions to write feedback about")
        with server(path, log) as base:
            import httpx

            with httpx.Client(base_url=base, timeout=60) as c:
                fit_s = wait_for_models(c, log, timeout_s=1800)
            log(f"models fitted in {fit_s:.0f} s")
            cold = first(base, prep["key"])
            log(f"first requests: {cold}")
            load = Load(base, prep, args)
            log(f"phase 1: {args.readers} readers alone for {args.seconds:.0f} s")
            alone, alone_s = load.phase(writers=0)
            log(f"phase 2: {args.readers} readers + {args.writers} writers "
                f"(batches of {args.batch}) for {args.seconds:.0f} s")  # fmt: skip
            spy = None
            pid = server_pid()
            if args.profile is not None and pid is not None:
                args.profile.mkdir(parents=True, exist_ok=True)
                py_spy = Path(sys.executable).parent / "py-spy"
                spy = subprocess.Popen(
                    [str(py_spy), "record", "--pid", str(pid), "--duration",
                     str(int(args.seconds)), "--threads", "--idle", "--format", "raw",
                     "--output", str(args.profile / "mix.txt")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
            mix, mix_s = load.phase(writers=args.writers)
            load.close()
            if spy is not None:
                spy.wait(timeout=120)
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)

    def rps(s: Samples, seconds: float) -> float:
        return len(s.wall_ms) / seconds

    reads_alone = (len(alone["gaps"].wall_ms) + len(alone["overview"].wall_ms)) / alone_s
    reads_mix = (len(mix["gaps"].wall_ms) + len(mix["overview"].wall_ms)) / mix_s
    ratio = reads_mix / reads_alone if reads_alone else float("nan")
    gaps_p95, overview_p95 = mix["gaps"].p(95), mix["overview"].p(95)

    print(f"{counts['interactions']:,} interactions, {counts['feedback']:,} feedback; "
          f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} after the run; "
          f"{args.readers} readers, {args.writers} writers x {args.batch} records, "
          f"{args.seconds:.0f} s per phase")  # fmt: skip
    print(f"first (computed) requests: gaps {cold['gaps']:,.0f} ms, overview "
          f"{cold['overview']:,.0f} ms")  # fmt: skip
    print(f"{'phase':<14}{'kind':<10}{'req/s':>8}{'p50 ms':>10}{'p95 ms':>10}{'server p95':>12}"
          f"{'n':>7}{'errors':>8}")  # fmt: skip
    for label, got, secs in (("reads alone", alone, alone_s), ("with writers", mix, mix_s)):
        for kind in ("gaps", "overview", "write"):
            s = got[kind]
            if kind == "write" and not s.wall_ms and not s.errors:
                continue
            print(f"{label:<14}{kind:<10}{rps(s, secs):>8.2f}{s.p(50):>10,.0f}{s.p(95):>10,.0f}"
                  f"{s.p(95, server=True):>12,.0f}{len(s.wall_ms):>7}{s.errors:>8}")  # fmt: skip
            if s.errors:
                print(f"    last error: {s.last_error}")
    for kind in ("gaps", "overview"):
        p95, most = mix[kind].behind()
        print(f"{kind} answers with writers: behind the latest write p95 {p95:.1f} s, "
              f"at most {most:.1f} s (Corridor-Data-Behind)")  # fmt: skip
    checks = [
        ("gaps p95 with writers", f"{gaps_p95:,.0f} ms", f"< {GAPS_TARGET_MS:,.0f} ms",
         gaps_p95 < GAPS_TARGET_MS),
        ("overview p95 with writers", f"{overview_p95:,.0f} ms",
         f"< {OVERVIEW_TARGET_MS:,.0f} ms", overview_p95 < OVERVIEW_TARGET_MS),
        ("reads/s with writers / alone", f"{reads_mix:.2f} / {reads_alone:.2f} = {ratio:.2f}",
         f">= {RATIO_TARGET}", ratio >= RATIO_TARGET),
    ]  # fmt: skip
    errors = sum(s.errors for got in (alone, mix) for s in got.values())
    for name, value, target, met in checks:
        print(f"{name:<30}{value:>26}  {target:<10} {'ok' if met else 'MISSED'}")
    passed = all(c[3] for c in checks) and errors == 0
    w = mix["write"]
    print(
        f"RESULT interactions={counts['interactions']} readers={args.readers} "
        f"writers={args.writers} batch={args.batch} seconds={args.seconds:.0f} "
        f"reads_alone_rps={reads_alone:.2f} reads_mix_rps={reads_mix:.2f} ratio={ratio:.2f} "
        f"gaps_alone_p95_ms={alone['gaps'].p(95):.0f} gaps_mix_p95_ms={gaps_p95:.0f} "
        f"overview_alone_p95_ms={alone['overview'].p(95):.0f} "
        f"overview_mix_p95_ms={overview_p95:.0f} "
        f"gaps_mix_behind_max_s={mix['gaps'].behind()[1]:.1f} "
        f"overview_mix_behind_max_s={mix['overview'].behind()[1]:.1f} "
        f"write_batches_per_s={rps(w, mix_s):.2f} "
        f"write_records_per_s={rps(w, mix_s) * args.batch:.1f} write_p95_ms={w.p(95):.0f} "
        f"errors={errors} pass={passed}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
