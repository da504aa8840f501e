"""BG/NBD and Gamma-Gamma against the published CDNOW fits and the ``lifetimes`` package.

The CDNOW sample (2,357 customers who first bought in the first quarter of 1997, 39 weeks
of calibration) ships inside ``lifetimes==0.11.3`` (the ``validation`` extra); it is read as a
plain CSV from the package's folder, so the test does not need ``pkg_resources``.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.estimators.lifetime_models import BetaGeo, GammaGamma, clv


def _lifetimes_file(name: str) -> Path:
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("install the validation extra (lifetimes==0.11.3)")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / name


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    d = pd.read_csv(_lifetimes_file("cdnow_customers_summary_with_transactions.csv"))
    return d.rename(columns={"x": "frequency", "t_x": "recency", "zbar": "monetary"})


@pytest.fixture(scope="module")
def fitted(cdnow: pd.DataFrame) -> BetaGeo:
    return BetaGeo().fit(cdnow["frequency"], cdnow["recency"], cdnow["T"])


@pytest.fixture(scope="module")
def spend(cdnow: pd.DataFrame) -> GammaGamma:
    rb = cdnow[cdnow["frequency"] > 0]
    return GammaGamma().fit(rb["frequency"], rb["monetary"])


def _lifetimes():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifetimes sets a pandas option deprecated in pandas 3
        import lifetimes
    return lifetimes


def test_bgnbd_reproduces_the_published_cdnow_fit(cdnow, fitted):
    """Fader, Hardie & Lee (2005), "Counting your customers the easy way", *Marketing Science*
    24(2), §5: r = 0.243, α = 4.414, a = 0.793, b = 2.426, log-likelihood −9582.4 on the
    2,357-customer CDNOW sample. Within 0.5 % and 0.1."""
    assert len(cdnow) == 2357
    p = fitted.params_
    for name, value in {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}.items():
        assert p[name] == pytest.approx(value, rel=0.005), name
    assert fitted.log_likelihood_ == pytest.approx(-9582.4, abs=0.1)
    s = fitted.summary.set_index("parameter")
    assert ((s["low"] < s["estimate"]) & (s["estimate"] < s["high"])).all()
    assert (s["se"] > 0).all()


def test_gamma_gamma_reproduces_the_published_cdnow_fit(cdnow, spend):
    """Fader, Hardie & Lee (2005), "RFM and CLV: using iso-value curves for customer base
    analysis", *JMR* 42(4): on the 946 CDNOW repeat buyers p = 6.25, q = 3.74, γ = 15.44."""
    assert spend.n_ == 946
    p = spend.params_
    assert p["p"] == pytest.approx(6.25, rel=0.005)
    assert p["q"] == pytest.approx(3.74, rel=0.005)
    assert p["gamma"] == pytest.approx(15.44, rel=0.005)


def test_person_level_figures_match_the_lifetimes_package(cdnow, fitted, spend):
    """P(alive), E[purchases in 10 weeks], expected mean value and 12-month CLV (1 % a month,
    4.345 weeks a month) agree with ``lifetimes`` 0.11.3 on every CDNOW customer."""
    lt = _lifetimes()
    x, tx, t, m = cdnow["frequency"], cdnow["recency"], cdnow["T"], cdnow["monetary"]
    ref = lt.BetaGeoFitter().fit(x, tx, t)
    pa, _ = fitted.p_alive(x, tx, t)
    assert pa == pytest.approx(ref.conditional_probability_alive(x, tx, t), abs=1e-5)
    ep, _ = fitted.expected_purchases(10, x, tx, t)
    want = ref.conditional_expected_number_of_purchases_up_to_time(10, x, tx, t)
    assert ep == pytest.approx(np.asarray(want), abs=1e-5)
    gg = lt.GammaGammaFitter().fit(x[x > 0], m[x > 0])
    ev, _ = spend.expected_value(x, m)
    assert ev == pytest.approx(np.asarray(gg.conditional_expected_average_profit(x, m)), rel=1e-4)
    value, se = clv(fitted, spend, x, tx, t, m, 12, 4.345, 0.01)
    want = gg.customer_lifetime_value(ref, x, tx, t, m, time=12, discount_rate=0.01, freq="W")
    assert value == pytest.approx(np.asarray(want), rel=1e-3)
    assert (se > 0).all()


def test_p_alive_follows_the_model(fitted):
    """A customer with no repeat purchase is alive with certainty under BG/NBD; among buyers
    with the same frequency, the one who bought more recently is more likely alive; expected
    purchases grow with the horizon."""
    pa, _ = fitted.p_alive([0, 3, 3], [0, 10, 35], [39, 39, 39])
    assert pa[0] == 1.0
    assert pa[1] < pa[2] < 1
    e1, _ = fitted.expected_purchases(10, [3], [35], [39])
    e2, _ = fitted.expected_purchases(52, [3], [35], [39])
    assert 0 < e1[0] < e2[0]


def test_fit_recovers_simulated_parameters():
    """Customers drawn from the BG/NBD story with known parameters (r=0.5, α=6, a=1.2, b=3.5;
    39 weeks): the fit recovers each within its 99 % interval."""
    rng = np.random.default_rng(11)
    n, T = 6000, 39.0
    r, alpha, a, b = 0.5, 6.0, 1.2, 3.5
    lam = rng.gamma(r, 1 / alpha, n)
    p = rng.beta(a, b, n)
    x = np.zeros(n)
    tx = np.zeros(n)
    for i in range(n):
        now = 0.0
        while True:
            now += rng.exponential(1 / lam[i])
            if now > T:
                break
            x[i] += 1
            tx[i] = now
            if rng.random() < p[i]:
                break
    fit = BetaGeo(confidence=0.99).fit(x, tx, np.full(n, T))
    s = fit.summary.set_index("parameter")
    for name, value in {"r": r, "alpha": alpha, "a": a, "b": b}.items():
        assert s.loc[name, "low"] < value < s.loc[name, "high"], (name, s.loc[name])


def test_bad_inputs_are_refused():
    with pytest.raises(AnalyticsQueryError, match="recency"):
        BetaGeo().fit([1, 0], [5, 0], [4, 4])
    with pytest.raises(AnalyticsQueryError, match="repeat buyers"):
        GammaGamma().fit([0, 1, 2], [0.0, 5.0, 6.0])
