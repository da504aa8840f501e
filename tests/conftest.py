"""Shared fixtures. One suite, parametrised over both engines.

The PostgreSQL half needs ``CORRIDOR_TEST_POSTGRES`` (e.g. postgresql://postgres@127.0.0.1:5432/test);
each test gets a database of its own, dropped afterwards. Without the variable the PostgreSQL half
is skipped with a message; with it, an unreachable server fails the tests (never skips).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from argon2 import PasswordHasher

from corridor.auth import accounts
from corridor.domain.corridor_map import CorridorMap
from corridor.ingest.pipeline import Ingestor
from corridor.store import Store, open_store

if os.environ.get("PYTEST_XDIST_WORKER"):
    # an xdist worker starts with COLUMNS=80 in its environment (a plain run has none): the CLI's
    # rich consoles, made on import, would keep 80 columns even where a test asks for 200
    os.environ.pop("COLUMNS", None)

# Passwords are hashed with argon2id at argon2-cffi's recommended parameters (RFC 9106's
# low-memory profile: 64 MiB, 3 passes, 4 lanes): ~0.12 s per hash and per sign-in on two cores,
# and the suite's in-process tests make over a thousand (a quarter of the auth, admin and CSRF
# tests' time). They hash with the same algorithm at its cheapest parameters, as Django's docs
# advise for test suites; the CLI and server processes the tests start keep the real ones
# (test_cli_auth checks a stored hash's parameters).
accounts._HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)

PG_ENV = "CORRIDOR_TEST_POSTGRES"
ENGINES = ["duckdb", "postgres"]

SMALL_MAP = {
    "stages": ["awareness", "research", "purchase", "delivery", "use", "support", "renewal"],
    "touchpoints": [
        {
            "key": "ad_click",
            "name": "Ad click",
            "stage": "awareness",
            "channels": ["web", "social"],
            "department": "marketing",
        },
        {
            "key": "checkout",
            "name": "Online checkout",
            "stage": "purchase",
            "channels": ["web", "app"],
            "department": "ecommerce",
            "promises": [
                {
                    "key": "checkout-3min",
                    "metric": "duration_minutes",
                    "target": "<= 3",
                    "source": "advertising",
                }
            ],
        },
        {
            "key": "home_delivery",
            "name": "Home delivery",
            "stage": "delivery",
            "channels": ["partner", "web"],
            "department": "logistics",
        },
        {
            "key": "support_call",
            "name": "Support call",
            "stage": "support",
            "channels": ["voice"],
            "department": "service",
        },
    ],
}


def _pg_admin_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def _with_db(url: str, db: str) -> str:
    base, _, query = url.partition("?")
    base = base.rsplit("/", 1)[0] + "/" + db
    return base + ("?" + query if query else "")


# Under pytest-xdist (scripts/test: -n 2 --dist loadfile --no-loadscope-reorder) the files that
# take longest start first, so that the workers finish at about the same time; in the order of
# their serial times (seconds, measured). Only the order of files depends on this list.
LONGEST_FIRST = [
    # 816 in a loaded full run; by itself 435 after its budget was cut, 1246 before (more load)
    "test_api_fuzz.py",
    "test_lake_spark.py",  # 252 (one Spark session for the file)
    "test_getting_started.py",  # 237
    "test_churn.py",  # 189
    "test_lake_connect.py",  # 55-110 (a Spark Connect server of its own, 20-35 s to start)
    "test_parity.py",  # 150
    "test_store_urls.py",  # 68
    "test_api.py",  # 65
    "test_scope_leaks.py",  # 62
    "test_loop_crash.py",  # 57
    "test_rollup.py",  # 56
    "test_cli_server.py",  # 56
    "test_admin.py",  # 52
    "test_durability.py",  # 48
    "test_auth.py",  # ~45 (was 96; its read-only tests share a store: 211 s against 449, loaded)
    "test_recovery.py",  # 41
    "test_customer_search.py",  # ~25 (was 170; one store per engine: 65 s against 452, loaded)
]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return  # one process: the usual order
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: within a file too


def _utf8_safe(value: Any) -> Any:
    """``value`` with every string UTF-8 encodable (a lone surrogate written as ``\\udcxx``)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {_utf8_safe(k): _utf8_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_utf8_safe(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_utf8_safe(v) for v in value)
    return value


@pytest.hookimpl(wrapper=True)
def pytest_report_to_serializable(config: pytest.Config, report: Any) -> Any:
    """An xdist worker sends each test report to the main process as UTF-8: a failure whose
    message holds a lone surrogate (a fuzzed string, e.g. schemathesis' reproducer) would
    crash the worker ("strings must be utf-8 encodable") and end the run without a report."""
    data = yield
    return _utf8_safe(data) if os.environ.get("PYTEST_XDIST_WORKER") else data


@pytest.fixture(scope="session")
def pg_admin() -> str:
    url = _pg_admin_url()
    if url is None:
        pytest.skip(
            f"PostgreSQL half skipped: set {PG_ENV}=postgresql://user@host:port/db to run it"
        )
    try:
        with psycopg.connect(url, connect_timeout=5) as con:
            con.execute("SELECT 1")
    except psycopg.Error as e:  # fail, never skip, when the server was promised
        pytest.fail(f"{PG_ENV}={url} is set but the server cannot be reached: {e}")
    return url


def make_store_url(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest, *, migrated: bool = False
) -> str:
    """A new store's URL: a DuckDB file in ``tmp_path`` (not made yet) or a PostgreSQL database
    of its own (empty; dropped after the test). ``migrated``: the store exists already, at the
    latest schema, cloned from this worker's template (:func:`store_template`) instead of
    migrated step by step, which took 0.1-0.2 s on DuckDB and 0.2-0.6 s on PostgreSQL per
    test; the clone is what ``open_store`` would have made."""
    template = request.getfixturevalue("store_template")(engine) if migrated else None
    if engine == "duckdb":
        path = tmp_path / "corridor.duckdb"
        if template is not None:
            shutil.copy(template, path)
        return f"duckdb:///{path}"
    admin = request.getfixturevalue("pg_admin")
    return _with_db(admin, _pg_database(admin, request, "corridor_t", template))


def _pg_database(
    admin: str, request: pytest.FixtureRequest, prefix: str, template: str | None = None
) -> str:
    """A new PostgreSQL database's name (a copy of ``template``, else empty), dropped when
    ``request``'s scope ends."""
    db = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{db}"' + (f' TEMPLATE "{template}"' if template else ""))

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    request.addfinalizer(drop)
    return db


@pytest.fixture(scope="session")
def store_template(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], str]:
    """engine -> this worker's template store, made by ``open_store`` on first use: a DuckDB
    file's path, or the name of a PostgreSQL database (dropped at the end of the session)."""
    made: dict[str, str] = {}

    def template(engine: str) -> str:
        if engine in made:
            return made[engine]
        if engine == "duckdb":
            path = tmp_path_factory.mktemp("template") / "corridor.duckdb"
            open_store(f"duckdb:///{path}").close()
            made[engine] = str(path)
            return made[engine]
        admin = request.getfixturevalue("pg_admin")
        db = _pg_database(admin, request, "corridor_template")
        open_store(_with_db(admin, db)).close()  # no connection left: it can be cloned
        made[engine] = db
        return db

    return template


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A new store's URL; made already (from the template) when the test uses ``store``, which
    would open and migrate it first thing anyway."""
    return make_store_url(engine, tmp_path, request, migrated="store" in request.fixturenames)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url)
    yield s
    s.close()


@pytest.fixture
def small_map() -> CorridorMap:
    return CorridorMap.from_dict(SMALL_MAP)


@pytest.fixture
def ingestor(store: Store, small_map: CorridorMap) -> Iterator[Ingestor]:
    ing = Ingestor(store)
    ing.load_map(small_map)
    yield ing
    ing.close()
