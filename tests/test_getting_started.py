"""docs/getting-started.md, walked end to end with its commands exactly as printed (issue 13).

Each ```bash block of the guide runs as one bash script in a fresh directory, the way a newcomer
types it: `.venv/bin` on PATH (the guide says to activate the environment), the demo server
running during section 2, a password typed where a command asks for one. The only things the
test adds are a person's pacing — after a line that starts a server in the background, it waits
until the server answers before the next line — and, in section 4, the address of the test's
PostgreSQL server in place of the guide's example host. The install step itself (``python3 -m
venv … pip install``) is what this suite's environment already is; the test checks the guide
prints the README's command and runs its ``corridor demo`` part.

Then the errors a newcomer meets (issue 13.5): each is one line saying what to do, no traceback.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import PG_ENV
from test_docs import _code_blocks

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "getting-started.md"
PORT = 8765  # the guide's address: http://127.0.0.1:8765/
PASSWORD = "a-long-passphrase-1"

pytestmark = pytest.mark.slow


def sections() -> dict[str, list[str]]:
    """The guide's ```bash blocks under each numbered heading (indented ones unindented)."""
    out: dict[str, list[str]] = {}
    heading = ""
    blocks = re.compile(r"^## ([^\n]+)$|^( *)```bash\n(.*?)^\2```", re.M | re.S)
    for m in blocks.finditer(GUIDE.read_text()):
        if m.group(1):
            heading = m.group(1).split(".")[0]
            continue
        indent = len(m.group(2))
        body = "".join(line[indent:] + "\n" for line in m.group(3).splitlines())
        out.setdefault(heading, []).append(body)
    return out


def paced(block: str) -> str:
    """The block as typed: the password typed where a command asks for one (twice: it asks
    again to confirm); after a line that puts a server in the background, wait for it."""
    lines = []
    for line in block.splitlines():
        if re.match(r"^corridor users add ", line):
            line = f"printf '%s\\n%s\\n' {PASSWORD} {PASSWORD} | {line}"
        lines.append(line)
        if re.match(r"^corridor (serve|demo)\b.*&\s*$", line):
            lines.append("_wait_for_server")
    return "\n".join(lines) + "\n"


PRELUDE = f"""set -euo pipefail
_wait_for_server() {{
  for _ in $(seq 1 600); do
    curl -sf -o /dev/null http://127.0.0.1:{PORT}/api/v1/health && return 0
    sleep 0.2
  done
  echo "the server did not answer on port {PORT}" >&2; return 1
}}
"""


def env_for(cwd: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRIDOR_")}
    env["PATH"] = f"{cwd / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
    env["COLUMNS"] = "200"
    return env | extra


def bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``script`` as a newcomer's shell; background jobs it leaves are stopped after (its
    output goes to files: a server left in the background would hold a pipe open)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            ["bash", "-c", PRELUDE + script],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            text=True,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=600)
        finally:
            _stop_group(proc.pid)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), err.read())


def _stop_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(pgid, signal.SIGKILL)


def _port_free() -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", PORT))
        except OSError:
            return False
    return True


def _wait_until_answers(proc: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"corridor demo exited ({proc.returncode}):\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{PORT}/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"corridor demo did not answer on port {PORT}:\n{log.read_text()}")


def newcomer_dir(base: Path, name: str) -> Path:
    """A fresh directory with `.venv` the environment this suite runs in."""
    d = base / name
    d.mkdir()
    (d / ".venv").symlink_to(Path(sys.prefix))
    return d


@pytest.fixture(scope="module")
def guide() -> dict[str, list[str]]:
    got = sections()
    assert set(got) >= {"1", "2", "3", "4", "5"}, f"sections with bash blocks: {sorted(got)}"
    return got


class Demo:
    """The demo's terminal: its directory, and Ctrl-C."""

    def __init__(self, cwd: Path, proc: subprocess.Popen[str]) -> None:
        self.cwd, self.proc = cwd, proc

    def ctrl_c(self) -> None:
        """Sections 3 and 4 serve on the demo's address: the newcomer stops the demo first."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            self.proc.wait(timeout=60)
        for _ in range(300):
            if _port_free():
                return
            time.sleep(0.1)
        pytest.fail(f"the demo still holds port {PORT} after Ctrl-C")


@pytest.fixture(scope="module")
def port_held() -> Iterator[None]:
    """The guide's port is this module's alone while it runs: a machine-wide lock, so another
    test run on this machine (or a pytest-xdist worker) waits here instead of finding it taken.
    Nothing else in the suite listens on it (the others bind port 0: 32768 and up)."""
    with (Path(tempfile.gettempdir()) / f"corridor-tests-port-{PORT}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory, guide: dict[str, list[str]], port_held: None
) -> Iterator[Demo]:
    """Section 1: the README's first command, its `corridor demo` run as printed, serving."""
    (install,) = guide["1"]
    readme = (ROOT / "README.md").read_text()
    assert install.strip() in readme, "the guide's first command is not the README's"
    steps = [s.strip() for s in install.strip().split("&&")]
    assert steps[:2] == ["python3 -m venv .venv", ".venv/bin/python -m pip install -q -e ."]
    assert steps[2] == ".venv/bin/corridor demo"
    if not _port_free():
        pytest.fail(f"port {PORT} (the guide's address) is taken: stop what listens there")
    cwd = newcomer_dir(tmp_path_factory.mktemp("guide"), "demo")
    log = cwd / "demo.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["bash", "-c", steps[2]],
            cwd=cwd,
            env=env_for(cwd),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    try:
        _wait_until_answers(proc, log)
        said = log.read_text()
        assert "demo company loaded into" in said and "corridor-demo" in said, said
        yield Demo(cwd, proc)
    finally:
        _stop_group(proc.pid)


def test_section_2_questions_while_the_demo_serves(demo: Demo, guide: dict[str, list[str]]) -> None:
    """The analyses and the curl call, typed in a second terminal while the demo runs: they go
    through the server (one line says so), the CSV lands, the API answers with the key shown."""
    (block,) = guide["2"]
    done = bash(paced(block), demo.cwd, env_for(demo.cwd))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("held by a running server: this went through it") >= 3
    assert "Traceback" not in done.stderr
    csv = (demo.cwd / "nps.csv").read_text().splitlines()
    assert csv[0].startswith("region,") and "nps" in csv[0] and len(csv) > 4
    assert re.search(r"Experience minus expectation.*\n(.*\n)*.*awareness", done.stdout)
    reply = done.stdout[done.stdout.rindex('{"analysis"') :]
    assert '"touchpoint"' in reply and '"north"' in reply, reply[:500]


def test_section_2_other_commands_while_the_demo_serves(demo: Demo) -> None:
    """What the guide's paragraph promises while a server runs: readers go through it, writers
    say in one line what to do."""
    cwd = demo.cwd
    env = env_for(cwd)
    for cmd in ("corridor status", "corridor map show", "corridor themes list",
                "corridor text comments --limit 3"):  # fmt: skip
        done = bash(cmd, cwd, env)
        assert done.returncode == 0, (cmd, done.stderr)
        assert "went through it at http://127.0.0.1:8765" in done.stderr, (cmd, done.stderr)
    for cmd in ("corridor import people.csv --kind people", "corridor migrate",
                "corridor text analyze", "corridor themes discover"):  # fmt: skip
        (cwd / "people.csv").write_text("person_id,kind\nc-1,customer\n")  # (a good file)
        done = bash(cmd, cwd, env)
        assert done.returncode != 0, cmd
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, (cmd, done.stderr)
        assert "held by a running server (http://127.0.0.1:8765)" in lines[0]
        assert "stop that server (Ctrl-C where it runs) and run this again" in lines[0]


def test_api_examples_run_as_printed(demo: Demo) -> None:
    """docs/api.md's curl examples against the demo, with the keys its authentication section
    makes (run once; the keys kept in the shell's environment, as a reader's shell keeps them):
    each answers JSON that is not an error — the ingestion example's bad record is named in a
    report that still stores the good one. `KEY_ID` is the key id the example's POST answered,
    as the guide says."""
    blocks = [body for lang, body in _code_blocks((ROOT / "docs" / "api.md").read_text())
              if lang == "bash"]  # fmt: skip
    (keys,) = [b for b in blocks if "export CORRIDOR_KEY" in b]
    shown = bash(keys + '\necho "CORRIDOR_KEY=$CORRIDOR_KEY"; echo "ADMIN_KEY=$ADMIN_KEY"\n',
                 demo.cwd, env_for(demo.cwd))  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    env = env_for(demo.cwd) | dict(
        re.findall(r"^(CORRIDOR_KEY|ADMIN_KEY)=(cor_\S+)$", shown.stdout, re.M)
    )
    assert {"CORRIDOR_KEY", "ADMIN_KEY"} <= set(env)
    # a command runs from its `curl` line to the next one (its JSON body may span lines)
    curls = ["curl" + c.rstrip() for b in blocks for c in re.split(r"^curl", b, flags=re.M)[1:]]
    assert len(curls) >= 10
    key_id = None
    for cmd in curls:
        if "KEY_ID" in cmd:
            assert key_id is not None, "the guide deletes a key before making one"
            cmd = cmd.replace("KEY_ID", key_id)
        done = bash(cmd, demo.cwd, env)
        assert done.returncode == 0, (cmd, done.stderr)
        reply = json.loads(done.stdout)
        assert not (isinstance(reply, dict) and "error" in reply), (cmd, reply)
        if "/api/v1/keys" in cmd and "-X POST" in cmd:
            key_id = reply["key_id"]
        if "/api/v1/interactions" in cmd:
            assert reply["accepted"] == 1 and reply["rejected"] == 1, reply


@pytest.fixture(scope="module")
def own_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Section 3 and 5's files: `corridor simulate` writes a company as contract files; they
    are given the guide's names."""
    cwd = newcomer_dir(tmp_path_factory.mktemp("guide"), "own")
    env = env_for(cwd)
    for fmt in ("csv", "parquet", "ndjson"):
        made = bash(f"corridor simulate --customers 300 --months 3 --format {fmt} --out {fmt}/",
                    cwd, env)  # fmt: skip
        assert made.returncode == 0, made.stderr
    (cwd / "ndjson" / "corridor.yaml").rename(cwd / "corridor.yaml")
    (cwd / "csv" / "people.csv").rename(cwd / "people.csv")
    (cwd / "parquet" / "interactions.parquet").rename(cwd / "interactions.parquet")
    (cwd / "ndjson" / "feedback.ndjson").rename(cwd / "surveys.ndjson")
    (cwd / "ndjson" / "interactions.ndjson").rename(cwd / "interactions.ndjson")
    return cwd


def test_section_3_your_own_data(own_data: Path, guide: dict[str, list[str]], demo: Demo) -> None:
    """Map, imports, then a stream over HTTP with the key the guide shows how to keep (after
    Ctrl-C in the demo's terminal: the stream's server takes the same address)."""
    demo.ctrl_c()
    load, imports, stream = guide["3"]
    env = env_for(own_data)
    done = bash(load, own_data, env)
    assert done.returncode == 0, done.stderr
    assert "loaded corridor map v1" in done.stdout
    done = bash(imports, own_data, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("stored = new + dup.") == 3
    done = bash(paced(stream), own_data, env)
    assert done.returncode == 0, done.stdout + done.stderr
    reply = done.stdout.strip().splitlines()[-1]
    assert '"accepted"' in reply, done.stdout[-2000:]


def test_section_4_a_team_server(own_data: Path, guide: dict[str, list[str]], demo: Demo) -> None:
    """The same steps on PostgreSQL (the test's server in place of db.internal)."""
    if not os.environ.get(PG_ENV):
        pytest.skip(f"set {PG_ENV} to walk the PostgreSQL section")
    import psycopg

    demo.ctrl_c()
    (block,) = guide["4"]
    example = "postgresql://corridor@db.internal:5432/corridor"
    assert example in block
    admin = os.environ[PG_ENV]
    db = f"corridor_guide_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{db}"')
    try:
        url = admin.rsplit("/", 1)[0] + "/" + db
        script = paced(block.replace(example, url).replace("--host 0.0.0.0", "--host 0.0.0.0 &"))
        done = bash(script, own_data, env_for(own_data))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "schema version 0 ->" in done.stdout
        assert re.findall(r"added (\S+) \(", done.stdout) == ["you", "lena", "paul"]
    finally:
        with psycopg.connect(admin, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def test_section_5_simulated_data(tmp_path: Path, guide: dict[str, list[str]]) -> None:
    (block,) = guide["5"]
    cwd = newcomer_dir(tmp_path, "sim")
    done = bash(block, cwd, env_for(cwd))
    assert done.returncode == 0, done.stderr
    truth = (cwd / "sim" / "truth.json").read_text()
    assert "ripple" in truth and "drift" in truth
    assert (cwd / "sim" / "corridor.yaml").exists()


# -- the errors a newcomer meets: one line each, saying what to do ----------------------------


def one_line_error(cmd: str, cwd: Path) -> str:
    done = bash(cmd, cwd, env_for(cwd))
    assert done.returncode != 0, (cmd, done.stdout)
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, (cmd, done.stderr)
    return errors[0]


def test_newcomer_errors_say_what_to_do(own_data: Path, tmp_path: Path) -> None:
    cwd = newcomer_dir(tmp_path, "errors")
    files = own_data
    # a store URL with two slashes where an absolute path needs three
    said = one_line_error("corridor gaps --store duckdb://srv/cx/corridor.duckdb", cwd)
    assert "names a host ('srv')" in said and "write duckdb:///" in said
    said = one_line_error("corridor gaps --store postgresql:/db.internal/corridor", cwd)
    assert "postgresql://user@host:5432/database" in said
    # an unknown --kind, named with what is allowed
    said = one_line_error(f"corridor import {files}/people.csv --kind person", cwd)
    assert "unknown record kind 'person'" in said and "people" in said
    # records before the map: every row refused, and the one line names the remedy
    done = bash(f"corridor import {files}/surveys.ndjson --kind feedback", cwd, env_for(cwd))
    assert done.returncode == 2
    assert "every row was quarantined: no corridor map is loaded" in done.stderr
    assert "corridor map load FILE" in done.stderr
    # a map that does not match the data: the touch points it lacks, and what to do
    other = (files / "corridor.yaml").read_text().replace("support_call", "support_phone")
    (cwd / "other.yaml").write_text(other)
    assert bash("corridor map load other.yaml", cwd, env_for(cwd)).returncode == 0
    done = bash(f"corridor import {files}/interactions.ndjson --kind interactions", cwd,
                env_for(cwd))  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert re.search(
        r"\d+ × touchpoint: unknown touch point 'support_call' \(not in the loaded corridor "
        r"map: add it there and `corridor map load` the map again, or correct the row\)",
        done.stdout,
    ), done.stdout
    # ... and a map that drops touch points stored records use is refused, naming them
    (cwd / "dropping.yaml").write_text(other.replace("key: product_page", "key: product_page_v2"))
    said = one_line_error("corridor map load dropping.yaml", cwd)
    assert "product_page" in said and "--force" in said
    # feedback before the people it names: stored, and the people join it later
    fresh = newcomer_dir(tmp_path, "order")
    env = env_for(fresh)
    assert bash(f"corridor map load {files}/corridor.yaml", fresh, env).returncode == 0
    for kind, name in (("feedback", "surveys.ndjson"), ("people", "people.csv")):
        done = bash(f"corridor import {files}/{name} --kind {kind}", fresh, env)
        assert done.returncode == 0, done.stdout + done.stderr
