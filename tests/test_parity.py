"""Issue 12: every registered analysis gives the same rows five ways, on both engines: its
function, the SDK in process (``corridor.connect``), the SDK over HTTP (``corridor.Client``
against a real uvicorn server), the CLI with ``--format json``, and the raw API. The rows'
columns are the declared ones (plus groupings and periods)."""

from __future__ import annotations

import math
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from typer.testing import CliRunner

import corridor
from conftest import ENGINES, make_store_url
from corridor.analytics.core import registry
from corridor.analytics.core.dimensions import DIMENSIONS
from corridor.analytics.core.registry import Analysis
from corridor.analytics.core.scoping import run_scoped
from corridor.api.app import create_app
from corridor.auth import accounts
from corridor.cli import app as cli_app
from corridor.sdk import query_params
from corridor.settings import Settings
from corridor.store import open_store

pytestmark = pytest.mark.slow

ANALYSES = [a for a in registry.analyses().values() if not a.person]
#: parameters beyond the defaults, to reach groupings, periods, filters and lists; bootstrap
#: kept small (parity, not precision)
CASES: dict[str, dict[str, Any]] = {
    "gaps": {
        "by": ["touchpoint", "region"], "period": "quarter",
        "filters": {"region": ["north", None]},
    },
    "nps": {"by": ["segment"], "confidence": 0.9},
    "drivers": {"bootstrap": 20},
    "journeys": {"bootstrap": 20, "view": "attribution"},
    "churn_survival": {"by": []},
    "text_intents": {"by": ["channel"], "filters": {"touchpoint": ["home_delivery", "checkout"]}},
}  # fmt: skip
ROW_KEYS = {*DIMENSIONS, "period", "period_label"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", params=ENGINES)
def company(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small simulated company with analysed texts and themes, on each engine."""
    url = make_store_url(str(request.param), tmp_path_factory.mktemp("parity"), request)
    for args in (
        ["simulate", "--customers", "300", "--months", "8", "--seed", "3", "--into-store",
         "--out", str(tmp_path_factory.mktemp("files"))],
        ["text", "analyze"],
        ["themes", "discover"],
    ):  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "corridor.cli", *args, "--store", url],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    return url


@pytest.fixture(scope="module")
def server(company: str) -> Iterator[tuple[str, str]]:
    """``corridor serve``'s app on a real socket, and an analyst's key."""
    with open_store(company) as s:
        accounts.add_user(s, "parity", "parity-password-1", "analyst")
        _, key = accounts.create_key(s, "parity", "parity test")
    app = create_app(Settings(store_url=company, model_refresh="on_request"))
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", key
    finally:
        srv.should_exit = True
        thread.join(timeout=30)


def _plain(rows: Any) -> Any:
    """Rows as JSON reads them back, numbers as floats (an int column with a gap reads as
    float in a frame)."""

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


def _same(a: Any, b: Any, where: str) -> None:
    if isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (where, a, b)
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), (where, len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, dict) and isinstance(b, dict):
        assert set(a) == set(b), (where, sorted(set(a) ^ set(b)))
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    else:
        assert a == b, (where, a, b)


def _cli_args(a: Analysis, kwargs: dict[str, Any], url: str) -> list[str]:
    args = [*(a.command or (a.name,))]
    for key, value in kwargs.items():
        if key == "filters":
            for dim, values in value.items():
                args += ["--where", f"{dim}={','.join(v or '' for v in values)}"]
        elif isinstance(value, list):
            args += [f"--{key.replace('_', '-')}", ",".join(value)]
        else:
            args += [f"--{key.replace('_', '-')}", str(value)]
    return [*args, "--format", "json", "--store", url]


@pytest.mark.parametrize("a", ANALYSES, ids=lambda a: a.name)
def test_five_ways_give_the_same_rows(company, server, a):
    base_url, key = server
    kwargs = CASES.get(a.name, {})
    with open_store(company) as s:
        direct = run_scoped(a, s, None, a.bind(kwargs))
    expected = _plain(direct.to_records())
    extra = set(direct.frame.columns) - ROW_KEYS - {c.name for c in a.columns}
    assert not extra, f"{a.name} returns undeclared columns {sorted(extra)}"

    with corridor.connect(company) as cx:
        in_process = cx.run(a.name, **kwargs)
    with corridor.Client(base_url, api_key=key) as api:
        over_http = api.run(a.name, **kwargs)
    raw = httpx.get(
        f"{base_url}/api/v1{a.path}",
        params=query_params(a, kwargs),
        headers={"Authorization": f"Bearer {key}"},
        timeout=300,
    )
    assert raw.status_code == 200, raw.text
    cli = CliRunner().invoke(cli_app, _cli_args(a, kwargs, company))
    assert cli.exit_code == 0, cli.output

    _same(_plain(in_process.to_records()), expected, f"{a.name} sdk")
    _same(_plain(over_http.to_records()), expected, f"{a.name} client")
    _same(_plain(raw.json()["rows"]), expected, f"{a.name} api")
    _same(_plain(orjson.loads(cli.stdout)["rows"]), expected, f"{a.name} cli")
    assert over_http.n == in_process.n == direct.n == raw.json()["n"]


def test_a_customers_outlook_is_typed_and_the_same_in_process_and_over_http(company, server):
    """``person_risk`` / ``person_value``: typed answers (not dicts), equal both ways."""
    base_url, key = server
    with open_store(company) as s:
        buyer = s.query(
            "SELECT person_id FROM interactions WHERE outcome = 'purchase' GROUP BY 1 "
            "ORDER BY count(*) DESC, 1 LIMIT 1"
        )[0][0]
    with corridor.connect(company) as cx:
        local = (cx.person_risk(buyer), cx.person_value(buyer, horizon_months=6))
    with corridor.Client(base_url, api_key=key) as api:
        remote = (api.person_risk(buyer), api.person_value(buyer, horizon_months=6))
    assert local[0].status in ("active", "churned") and local[1].status == "buyer"
    for mine, theirs in zip(local, remote, strict=True):
        assert type(mine) is type(theirs)
        _same(_plain(mine.model_dump()), _plain(theirs.model_dump()), type(mine).__name__)
