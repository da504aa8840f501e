"""Lifetime model benchmark: Corridor's BG/NBD and Gamma-Gamma fits against the ``lifetimes``
package (0.11.3, the reference implementation) on the same CDNOW data, in one run.

    python benchmarks/lifetime.py               # both CDNOW data sets, 5 repeats
    python benchmarks/lifetime.py --repeat 20

Data (inside ``lifetimes``, the ``validation`` extra): the 2,357-customer CDNOW sample summary
used by Fader, Hardie & Lee (2005), and the 23,570-customer CDNOW master file (69,659
transactions, 1997-01 to 1998-06) summarised by day with ``lifetimes.utils.
summary_data_from_transaction_data`` (weeks; observation end 1998-06-30). Each fit is timed
``--repeat`` times (median kept): ``corridor.analytics.estimators.lifetime_models.BetaGeo().fit``
against ``lifetimes.BetaGeoFitter().fit``, and ``GammaGamma().fit`` against
``GammaGammaFitter().fit`` on the repeat buyers. Corridor's fit time includes its standard errors (a
numerical Hessian); lifetimes' includes its own. The parameters and log-likelihoods of the two are
printed side by side and must agree. The last line starts with ``RESULT``.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from corridor.analytics.estimators.lifetime_models import BetaGeo, GammaGamma


def _lifetimes() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifetimes sets a pandas option deprecated in pandas 3
        import lifetimes
        import lifetimes.utils

    return lifetimes


def _datasets() -> dict[str, pd.DataFrame]:
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("install the validation extra: pip install -e '.[validation]'")
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets"
    sample = pd.read_csv(folder / "cdnow_customers_summary_with_transactions.csv")
    sample = sample.rename(columns={"x": "frequency", "t_x": "recency", "zbar": "monetary"})
    master = pd.read_csv(
        folder / "CDNOW_master.txt",
        sep=r"\s+",
        header=0,
        names=["customer", "date", "quantity", "amount"],
    )
    master["date"] = pd.to_datetime(master["date"].astype(str), format="%Y%m%d")
    lt = _lifetimes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = lt.utils.summary_data_from_transaction_data(
            master,
            "customer",
            "date",
            monetary_value_col="amount",
            observation_period_end="1998-06-30",
            freq="W",
        )
    summary = summary.rename(columns={"monetary_value": "monetary"})
    return {"cdnow_sample": sample, "cdnow_master": summary}


def _time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    lt = _lifetimes()
    results: dict[str, str] = {}
    for name, d in _datasets().items():
        x, tx, t = d["frequency"], d["recency"], d["T"]
        ours_s, ours = _time(lambda x=x, tx=tx, t=t: BetaGeo().fit(x, tx, t), args.repeat)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref_s, ref = _time(
                lambda x=x, tx=tx, t=t: lt.BetaGeoFitter().fit(x, tx, t), args.repeat
            )
        rb = d[(d["frequency"] > 0) & (d["monetary"] > 0)]
        gg_s, gg = _time(
            lambda rb=rb: GammaGamma().fit(rb["frequency"], rb["monetary"]), args.repeat
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rgg_s, rgg = _time(
                lambda rb=rb: lt.GammaGammaFitter().fit(rb["frequency"], rb["monetary"]),
                args.repeat,
            )
        # lifetimes reports a scaled objective: evaluate its parameters in the BG/NBD
        # log-likelihood (FHL 2005 eq. 6) instead
        ref_w = np.log(ref.params_[["r", "alpha", "a", "b"]].to_numpy(float))
        ref_ll = float(
            np.sum(BetaGeo.log_likelihood(ref_w, *(np.asarray(v, float) for v in (x, tx, t))))
        )
        print(f"\n{name}: {len(d):,} customers, {len(rb):,} repeat buyers")
        print(f"{'':14}{'corridor':>14}{'lifetimes':>14}")
        for p, q in zip(("r", "alpha", "a", "b"), ("r", "alpha", "a", "b"), strict=True):
            print(f"{p:14}{ours.params_[p]:14.4f}{ref.params_[q]:14.4f}")
        print(f"{'log-lik':14}{ours.log_likelihood_:14.2f}{ref_ll:14.2f}")
        for p, q in zip(("p", "q", "gamma"), ("p", "q", "v"), strict=True):
            print(f"{p:14}{gg.params_[p]:14.4f}{rgg.params_[q]:14.4f}")
        print(f"{'BG/NBD fit s':14}{ours_s:14.4f}{ref_s:14.4f}   ({ref_s / ours_s:.1f}x)")
        print(f"{'GG fit s':14}{gg_s:14.4f}{rgg_s:14.4f}   ({rgg_s / gg_s:.1f}x)")
        rel = np.abs(ours.params_.to_numpy() / ref.params_.to_numpy() - 1).max()
        assert rel < 1e-3 and abs(ours.log_likelihood_ - ref_ll) < 0.05, (rel, ref_ll)
        results[f"{name}_bgnbd_s"] = f"{ours_s:.4f}"
        results[f"{name}_lifetimes_bgnbd_s"] = f"{ref_s:.4f}"
        results[f"{name}_bgnbd_speedup"] = f"{ref_s / ours_s:.1f}"
        results[f"{name}_gg_speedup"] = f"{rgg_s / gg_s:.1f}"
        results[f"{name}_ll"] = f"{ours.log_likelihood_:.2f}"
    print("RESULT lifetime " + " ".join(f"{k}={v}" for k, v in results.items()), flush=True)


if __name__ == "__main__":
    main()
