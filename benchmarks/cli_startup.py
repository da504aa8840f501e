"""CLI start-up benchmark: how long a ``corridor`` command takes before it does its work.

    python benchmarks/cli_startup.py              # 7 runs of each, p50 and best
    python benchmarks/cli_startup.py --repeat 15

Every command imports every analysis module (the commands are made from the analyses'
declarations), so a command that computes nothing still pays for the imports. Measured, each
in a new process, wall time:

(a) ``corridor --help``;
(b) ``corridor users list --store duckdb:///…`` on an empty store (opens the store, reads one
    table: what an admin's command costs);
(c) the floor: ``python -c "import pandas, ibis, duckdb, typer, rich"``, the libraries any
    command needs, so (a) − (c) is what Corridor itself adds;
(d) the baseline: ``corridor --help`` with SciPy's ``stats`` imported first, as every
    command did before SciPy was imported on first use (``corridor.lazy``).

Last line starts with ``RESULT``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EAGER = (
    "import runpy, sys, scipy.stats; sys.argv[0] = 'corridor'; "
    "runpy.run_module('corridor.cli', run_name='__main__')"
)


def timed_runs(argv: list[str], repeat: int) -> list[float]:
    env = {**os.environ, "NO_COLOR": "1"}
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        out.append(time.perf_counter() - t)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        store = f"duckdb:///{Path(tmp) / 'corridor.duckdb'}"
        subprocess.run([py, "-m", "corridor.cli", "migrate", "--store", store],
                       check=True, capture_output=True)  # fmt: skip
        cases = {
            "help": [py, "-m", "corridor.cli", "--help"],
            "users_list": [py, "-m", "corridor.cli", "users", "list", "--store", store],
            "floor": [py, "-c", "import pandas, ibis, duckdb, typer, rich"],
            "help_eager_scipy": [py, "-c", EAGER, "--help"],
        }
        timed_runs(cases["help"], 1)  # warm the file cache
        results = {name: timed_runs(argv, args.repeat) for name, argv in cases.items()}
    print(f"{'command':<17} {'p50 s':>7} {'best s':>7}")
    for name, runs in results.items():
        print(f"{name:<17} {statistics.median(runs):7.2f} {min(runs):7.2f}")
    fields = " ".join(f"{n}_p50_s={statistics.median(r):.2f}" for n, r in results.items())
    print(f"RESULT repeat={args.repeat} {fields}")


if __name__ == "__main__":
    main()
