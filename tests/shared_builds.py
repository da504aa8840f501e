"""Costly read-only inputs built once per test run and shared by the modules that need the same
one, also across pytest-xdist workers (``-n 2``): a simulated company imported into a DuckDB
file, a ``corridor demo`` store. The first caller builds it under a file lock in the run's
temporary directory; later callers (another module, another worker) wait for it and get the
same files. A module never uses the shared files directly: it takes a copy of its own
(:func:`private_copy`), so what one module writes (rules, cases, fitted models) never reaches
another, exactly as when each module built its own.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from corridor.ingest.files import import_dataset
from corridor.ingest.pipeline import Ingestor
from corridor.simulate import simulate
from corridor.store import open_store


def _run_root(factory: pytest.TempPathFactory) -> Path:
    """The run's temporary directory, the same for every xdist worker of one run."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def built_once(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """The directory ``build`` filled, built by the first caller of this run only."""
    root = _run_root(factory) / "shared-builds"
    root.mkdir(exist_ok=True)
    done = root / name
    with _locked(root / f"{name}.lock"):
        if not done.exists():
            work = root / f"{name}.partial"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            build(work)
            work.rename(done)  # complete or absent: a failed build is retried by the next caller
    return done


def private_copy(src: Path, dest_dir: Path) -> Path:
    """A copy of the DuckDB file ``src`` in ``dest_dir``, for one module to use and change."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / src.name
    shutil.copy(src, dest)
    return dest


def simulated_company(
    factory: pytest.TempPathFactory,
    customers: int,
    months: int,
    seed: int,
    *,
    precursors: bool = False,
) -> tuple[Path, dict[str, Any]]:
    """``simulate(customers, months, seed, precursors=precursors)`` as parquet files imported
    into a fresh DuckDB store (every record accepted): the store file (shared: take a
    :func:`private_copy`; its folder's ``data`` holds the files) and the simulation's truth."""

    def build(work: Path) -> None:
        result = simulate(
            customers, months, seed, work / "data", fmt="parquet", precursors=precursors
        )
        with open_store(f"duckdb:///{work / 'corridor.duckdb'}") as store:
            ingestor = Ingestor(store)
            try:
                summaries = import_dataset(ingestor, work / "data")
            finally:
                ingestor.close()
        for kind, summary in summaries.items():
            assert summary.rejected == 0, (kind, summary.as_dict())
        assert result.truth == json.loads((work / "data" / "truth.json").read_text())

    name = f"company-{'precursors-' if precursors else ''}{customers}-{months}-{seed}"
    done = built_once(factory, name, build)
    truth = json.loads((done / "data" / "truth.json").read_text())
    return done / "corridor.duckdb", truth


def demo_store(factory: pytest.TempPathFactory, *args: str) -> Path:
    """The DuckDB file ``corridor demo --no-serve ARGS`` makes (shared: take a
    :func:`private_copy`)."""

    def build(work: Path) -> None:
        store = f"duckdb:///{work / 'corridor.duckdb'}"
        made = subprocess.run(
            [sys.executable, "-m", "corridor.cli", "demo", "--no-serve", *args, "--store", store],
            capture_output=True,
            text=True,
            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
            timeout=300,
        )
        assert made.returncode == 0, made.stdout + made.stderr

    name = "demo" + "".join(f"_{a.lstrip('-')}" for a in args)
    return built_once(factory, name, build) / "corridor.duckdb"
