"""Key-driver benchmark: the exact LMG decomposition for 15 drivers from the correlation matrix
(all 32,768 subsets, each from its parent by one row of the inverse Cholesky factor) against
the textbook way, one statsmodels OLS fit per subset on the data, and against the previous
algebra, one batched k × k solve per subset; plus the whole bootstrap the analysis runs.

    python benchmarks/drivers.py                  # 15 drivers, 20,000 persons
    python benchmarks/drivers.py --drivers 10 --persons 5000

Both give the same LMG shares (checked to 1e-8). The brute force is timed on ``--sample``
subsets and scaled to all 2^p (fitting all 32,768 would take minutes). Prints a table and a last
line starting with ``RESULT``.
"""

from __future__ import annotations

import argparse
import itertools
import math
import time

import numpy as np
import statsmodels.api as sm

from corridor.analytics.estimators import importance as imp


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--drivers", type=int, default=15)
    ap.add_argument("--persons", type=int, default=20_000)
    ap.add_argument("--sample", type=int, default=400, help="subsets fitted by the brute force")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=20, help="timings of the subset R² (median)")
    args = ap.parse_args()
    p, n = args.drivers, args.persons
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, p)) + 0.5 * rng.normal(size=(n, 1))  # correlated drivers
    y = x @ np.linspace(0.05, 0.5, p) + rng.normal(size=n)
    x[rng.random((n, p)) < 0.6] = np.nan  # most persons rated few touch points
    z = np.column_stack([x, y])

    imp.lmg(np.eye(p), np.zeros(p))  # warm the subset tables
    t = time.perf_counter()
    corr = imp.correlation(imp.moments(z))
    ours = imp.lmg(corr[:-1, :-1], corr[:-1, -1])
    ours_s = time.perf_counter() - t

    rxx, rxy = corr[:-1, :-1], corr[:-1, -1]
    solves = []
    for _ in range(args.repeat):  # the previous way: a batched solve per subset, by size
        t = time.perf_counter()
        by_solve = np.zeros(1 << p)
        for idx, masks in imp._subsets(p):
            a = rxx[idx[:, :, None], idx[:, None, :]]
            b = rxy[idx]
            by_solve[masks] = np.einsum("ci,ci->c", b, np.linalg.solve(a, b[..., None])[..., 0])
        solves.append(time.perf_counter() - t)
    chol = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        by_chol = imp.subset_r2(rxx, rxy)
        chol.append(time.perf_counter() - t)
    solve_s, chol_s = float(np.median(solves)), float(np.median(chol))
    same_solve = bool(np.allclose(np.clip(by_solve, 0, 1), by_chol, atol=1e-10))

    filled = np.where(np.isnan(x), np.nanmean(x, axis=0), x)
    subsets = [s for k in range(1, p + 1) for s in itertools.combinations(range(p), k)]
    pick = rng.choice(len(subsets), min(args.sample, len(subsets)), replace=False)
    t = time.perf_counter()
    for i in pick:
        sm.OLS(y, sm.add_constant(filled[:, list(subsets[i])])).fit().rsquared  # noqa: B018
    brute_s = (time.perf_counter() - t) / len(pick) * (2**p - 1)

    if p <= 10:  # small enough to check the whole decomposition by brute force
        r2 = {(): 0.0}
        for s in subsets:
            r2[s] = sm.OLS(y, sm.add_constant(filled[:, list(s)])).fit().rsquared
        ref = np.zeros(p)
        for j in range(p):
            for s, v in r2.items():
                if j not in s:
                    w = math.factorial(len(s)) * math.factorial(p - len(s) - 1) / math.factorial(p)
                    ref[j] += w * (r2[tuple(sorted((*s, j)))] - v)
        same = bool(np.allclose(ref, ours, atol=1e-8))
    else:  # check the subsets that were fitted
        r2_all = imp.subset_r2(corr[:-1, :-1], corr[:-1, -1])
        same = all(
            abs(
                r2_all[sum(1 << j for j in subsets[i])]
                - sm.OLS(y, sm.add_constant(filled[:, list(subsets[i])])).fit().rsquared
            )
            < 1e-8
            for i in pick[:50]
        )

    t = time.perf_counter()
    imp.bootstrap(z, args.bootstrap, seed=1)
    boot_s = time.perf_counter() - t

    print(f"{'':42s}{'seconds':>10s}")
    print(f"{'LMG, ' + str(p) + ' drivers, correlation algebra':42s}{ours_s:10.3f}")
    print(f"{'LMG by statsmodels OLS per subset (scaled)':42s}{brute_s:10.1f}")
    print(f"{'all subsets R², inverse Cholesky rows':42s}{chol_s:10.4f}")
    print(f"{'all subsets R², a solve per subset':42s}{solve_s:10.4f}")
    print(f"{'bootstrap, ' + str(args.bootstrap) + ' resamples (weights + LMG)':42s}{boot_s:10.2f}")
    print(
        f"RESULT drivers={p} persons={n} lmg_s={ours_s:.3f} brute_force_s={brute_s:.1f} "
        f"speedup={brute_s / ours_s:.0f} subsets_cholesky_s={chol_s:.4f} "
        f"subsets_solve_s={solve_s:.4f} cholesky_speedup={solve_s / chol_s:.2f} "
        f"bootstrap_{args.bootstrap}_s={boot_s:.2f} same={same and same_solve}"
    )


if __name__ == "__main__":
    main()
