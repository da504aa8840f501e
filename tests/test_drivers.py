"""Key drivers: relative weights and LMG against independent implementations, the person-level
data on both engines, errors, and the API and CLI doors."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import statsmodels.api as sm
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from corridor.analytics.core.dimensions import Query
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.customers import drivers as drivers_module
from corridor.analytics.customers.drivers import driver_table, driver_values, quadrants
from corridor.analytics.estimators import importance as imp
from corridor.api.app import create_app
from corridor.cli import app as cli_app
from corridor.settings import Settings


def _longley() -> tuple[np.ndarray, np.ndarray]:
    d = sm.datasets.longley.load_pandas().data
    return d.drop(columns="TOTEMP").to_numpy(float), d["TOTEMP"].to_numpy(float)


def test_lmg_matches_brute_force_ols_over_all_subsets_on_longley():
    """Reference: the LMG decomposition as defined by Lindeman, Merenda & Gold (1980) and
    implemented by relaimpo (Grömping 2006, J. Stat. Software 17(1), section 3: "lmg" is the
    R² increase of a regressor averaged over all orderings). Computed here independently: a
    statsmodels OLS fit of the raw Longley (1967, JASA 62) data for each of the 2^6 subsets,
    increments weighted by s!(p−s−1)!/p!. Longley is a deliberately collinear data set."""
    x, y = _longley()
    p = x.shape[1]
    r2 = {(): 0.0}
    for k in range(1, p + 1):
        for s in itertools.combinations(range(p), k):
            r2[s] = sm.OLS(y, sm.add_constant(x[:, list(s)])).fit().rsquared
    expected = np.zeros(p)
    for j in range(p):
        for s, v in r2.items():
            if j not in s:
                w = math.factorial(len(s)) * math.factorial(p - len(s) - 1) / math.factorial(p)
                expected[j] += w * (r2[tuple(sorted((*s, j)))] - v)
    c = imp.correlation(imp.moments(np.column_stack([x, y])))
    got = imp.importance(c)
    assert got.lmg == pytest.approx(expected, abs=1e-9)
    assert got.r2 == pytest.approx(r2[tuple(range(p))], abs=1e-9)
    assert got.lmg.sum() == pytest.approx(got.r2, abs=1e-9)


@pytest.mark.filterwarnings("ignore:The design matrix is rank-deficient")
@pytest.mark.parametrize("collinear", [False, True])
def test_every_subsets_r2_is_the_ols_r2_of_that_subset(collinear):
    """Reference: statsmodels OLS of each of the 2^7 subsets of seven predictors; R²(S) is
    built from its parent by one row of the inverse Cholesky factor, and a subset whose
    predictors are collinear (an exact copy, ``collinear``) is solved directly instead."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(300, 7)) @ rng.normal(size=(7, 7))
    if collinear:
        x[:, 4] = 2 * x[:, 1] - x[:, 2]
    y = x @ rng.normal(size=7) + 3 * rng.normal(size=300)
    c = imp.correlation(imp.moments(np.column_stack([x, y])))
    got = imp.subset_r2(c[:-1, :-1], c[:-1, -1])
    for k in range(1, 8):
        for s in itertools.combinations(range(7), k):
            ols = sm.OLS(y, sm.add_constant(x[:, list(s)])).fit().rsquared
            assert got[sum(1 << j for j in s)] == pytest.approx(ols, abs=1e-7), s


def test_relative_weights_match_johnsons_procedure_on_the_data():
    """Reference: Johnson (2000, Multivariate Behavioral Research 35(1), pp. 8–9): the
    standardised predictors X = PΔQ' are replaced by their closest orthonormal counterparts
    Z = PQ' (scaled to unit variance); the criterion is regressed on Z (β) and each X_j on Z
    (Λ); ε_j = Σ_k Λ_jk² β_k². Computed here from the raw data with numpy's SVD and
    statsmodels OLS, not from the correlation matrix the library uses."""
    x, y = _longley()
    n = len(y)
    xs = (x - x.mean(0)) / x.std(0, ddof=1)
    ys = (y - y.mean()) / y.std(ddof=1)
    p_, _, qt = np.linalg.svd(xs, full_matrices=False)
    z = p_ @ qt * math.sqrt(n - 1)
    beta = sm.OLS(ys, z).fit().params
    lam = np.column_stack([sm.OLS(xs[:, j], z).fit().params for j in range(x.shape[1])])
    expected = (lam.T**2) @ (beta**2)
    got = imp.importance(imp.correlation(imp.moments(np.column_stack([x, y]))))
    assert got.weights == pytest.approx(expected, abs=1e-8)
    assert got.weights.sum() == pytest.approx(got.r2, abs=1e-9)


def test_orthogonal_predictors_get_their_squared_correlation():
    """With uncorrelated predictors every decomposition gives r_j² (Johnson 2000, p. 2)."""
    rng = np.random.default_rng(3)
    raw = rng.normal(size=(200, 4))
    x, _ = np.linalg.qr(raw - raw.mean(0))  # centred, orthogonal columns
    y = x @ np.array([3.0, 2.0, 1.0, 0.5]) + 0.02 * rng.normal(size=200)
    got = imp.importance(imp.correlation(imp.moments(np.column_stack([x, y]))))
    assert got.weights == pytest.approx(got.r**2, abs=1e-3)
    assert got.lmg == pytest.approx(got.r**2, abs=1e-3)


def test_missing_values_take_the_column_mean_and_a_bootstrap_replicate_is_a_resample():
    rng = np.random.default_rng(5)
    z = rng.normal(size=(300, 4))
    z[:, 3] += z[:, 0] - 0.5 * z[:, 2]
    preds = z[:, :3]
    preds[rng.random((300, 3)) < 0.4] = np.nan  # outcome complete, predictors gappy
    filled = pd.DataFrame(z).fillna(pd.DataFrame(z).mean())
    assert imp.correlation(imp.moments(z)) == pytest.approx(filled.corr().to_numpy(), abs=1e-12)
    boot = imp.bootstrap(z, 1, seed=11)
    idx = np.random.default_rng(11).integers(0, 300, 300)
    again = pd.DataFrame(z[idx])
    c = again.fillna(again.mean()).corr().to_numpy()
    assert boot.weights[0] == pytest.approx(imp.relative_weights(c[:3, :3], c[:3, 3]))
    assert boot.lmg[0] == pytest.approx(imp.lmg(c[:3, :3], c[:3, 3]))
    lo, hi = imp.percentile_interval(imp.bootstrap(z, 200, seed=1).weights, 0.95)
    point = imp.importance(imp.correlation(imp.moments(z))).weights
    assert np.all(lo <= point) and np.all(point <= hi)


def test_quadrants_cut_at_the_medians():
    """Importance-performance analysis (Martilla & James 1977, J. Marketing 41(1))."""
    got = quadrants(pd.Series([0.4, 0.3, 0.1, 0.05]), pd.Series([-2.0, 1.0, -1.5, 2.0]))
    assert got == ["concentrate here", "keep up the good work", "low priority", "possible overkill"]


# -- on the engines ------------------------------------------------------------------------------

N_PERSONS = 90


def _person_data(seed: int = 2):
    """Persons rate home delivery and support calls (some never do); their NPS follows the
    support-call gap; some cancel, and a few rate support again after cancelling."""
    rng = np.random.default_rng(seed)
    fb, ix = [], []
    for i in range(N_PERSONS):
        pid = f"p{i:03d}"
        gap_call = int(rng.integers(-5, 3))
        gap_del = int(rng.integers(-3, 3))
        for k, (tp, gap) in enumerate((("support_call", gap_call), ("home_delivery", gap_del))):
            if tp == "home_delivery" and i % 4 == 0:
                continue  # a quarter never rated a delivery
            fb.append(
                {
                    "feedback_id": f"f{i}-{k}",
                    "person_id": pid,
                    "occurred_at": f"2025-02-{1 + k:02d}T10:00:00Z",
                    "touchpoint": tp,
                    "source": "survey",
                    "expectation": 7,
                    "experience": 7 + gap,
                    "nps": int(np.clip(7 + gap_call + rng.integers(-1, 2), 0, 10)),
                }
            )
        if gap_call <= -3:
            ix.append(
                {
                    "interaction_id": f"x{i}",
                    "person_id": pid,
                    "occurred_at": "2025-03-01T10:00:00Z",
                    "touchpoint": "support_call",
                    "channel": "voice",
                    "outcome": "cancel",
                }
            )
            fb.append(  # after the cancellation: must not count as a driver of it
                {
                    "feedback_id": f"f{i}-late",
                    "person_id": pid,
                    "occurred_at": "2025-03-05T10:00:00Z",
                    "touchpoint": "support_call",
                    "source": "survey",
                    "expectation": 0,
                    "experience": 10,
                }
            )
    people = [{"person_id": f"p{i:03d}", "kind": "customer"} for i in range(N_PERSONS)]
    return pd.DataFrame(people), pd.DataFrame(fb), pd.DataFrame(ix)


@pytest.fixture
def loaded(ingestor, store):
    people, fb, ix = _person_data()
    people["segment"] = ["a", "b"] * (N_PERSONS // 2)
    for kind, df in (("people", people), ("interactions", ix), ("feedback", fb)):
        report = ingestor.ingest(kind, pa.Table.from_pandas(df, preserve_index=False))
        assert report.rejected == 0, report
    return store, fb, ix


def _reference(fb: pd.DataFrame, outcome: str, ix: pd.DataFrame) -> pd.DataFrame:
    """Person-level means and mean-imputed correlations, computed with pandas."""
    rated = fb.dropna(subset=["expectation", "experience"]).copy()
    if outcome == "churn":
        cancel = ix.set_index("person_id")["occurred_at"]
        when = rated["person_id"].map(cancel)
        rated = rated[when.isna() | (rated["occurred_at"] < when)]
        y = rated.groupby("person_id").size().index.isin(cancel.index).astype(float)
        y = pd.Series(y, index=rated.groupby("person_id").size().index)
    else:
        y = rated.groupby("person_id")["nps"].mean()
    rated["gap"] = rated["experience"] - rated["expectation"]
    wide = rated.pivot_table(index="person_id", columns="touchpoint", values="gap")
    wide = wide.reindex(y.index)
    filled = wide.fillna(wide.mean())
    return pd.DataFrame(
        {"n": wide.notna().sum(), "r": filled.corrwith(y), "performance": wide.mean()}
    )


@pytest.mark.parametrize("outcome", ["nps", "churn"])
def test_person_level_drivers_match_pandas(loaded, outcome):
    store, fb, ix = loaded
    res = driver_table(store, outcome=outcome, bootstrap=50, min_n=10)
    f = res.frame.set_index("driver")
    ref = _reference(fb, outcome, ix)
    assert set(f.index) == {"support_call", "home_delivery"}
    assert f.loc["support_call", "rank"] == 1  # the planted driver
    for d in f.index:
        assert f.loc[d, "n"] == ref.loc[d, "n"]
        assert f.loc[d, "r"] == pytest.approx(ref.loc[d, "r"], abs=1e-9)
        assert f.loc[d, "performance"] == pytest.approx(ref.loc[d, "performance"], abs=1e-9)
        assert f.loc[d, "weight_low"] <= f.loc[d, "weight"] <= f.loc[d, "weight_high"]
    assert res.n == N_PERSONS
    assert f["weight"].sum() == pytest.approx(f["r2"].iloc[0])
    assert f["share"].sum() == pytest.approx(1.0)
    assert res.metadata()["query"]["outcome"] == outcome


def test_feedback_after_the_outcome_event_is_not_a_driver(loaded):
    store, _fb, ix = loaded
    agg, y = driver_values(store, Query.build(), "touchpoint", "churn")
    churned = set(ix["person_id"])
    late = agg[agg["person"].isin(churned) & (agg["driver"] == "support_call")]
    assert len(late) == len(churned) and (late["n"] == 1).all()  # the post-cancel one dropped
    assert y.set_index("person")["y"].sum() == len(churned)


def test_groups_and_facets(loaded):
    store, _fb, _ix = loaded
    res = driver_table(store, by="segment", bootstrap=30, min_n=10)
    assert set(res.frame["segment"]) == {"a", "b"}
    assert res.n == N_PERSONS
    facets = driver_table(store, drivers="facet", bootstrap=30, min_n=10)
    assert set(facets.frame["driver"]) <= {"expectation", "experience"}  # the others: constant


@pytest.mark.parametrize("by", [None, "segment"])
def test_bootstrap_intervals_do_not_depend_on_the_order_rows_come_back_in(loaded, monkeypatch, by):
    """Engines return rows in no fixed order (PySpark's differs from DuckDB's): the persons are
    put in order before resampling, so one seed gives the same intervals whatever the order."""
    store, _fb, _ix = loaded
    real = drivers_module.driver_values

    def frames(order: str) -> pd.DataFrame:
        def reordered(*args, **kwargs):
            agg, y = real(*args, **kwargs)
            if order == "reversed":
                return agg.iloc[::-1], y.iloc[::-1]
            if order == "shuffled":
                rng = np.random.default_rng(5)
                return agg.iloc[rng.permutation(len(agg))], y.iloc[rng.permutation(len(y))]
            return agg, y

        monkeypatch.setattr(drivers_module, "driver_values", reordered)
        return driver_table(store, outcome="nps", by=by, bootstrap=40, seed=3, min_n=10).frame

    base = frames("as returned")
    assert base["weight_low"].notna().all()
    for order in ("reversed", "shuffled"):
        pd.testing.assert_frame_equal(frames(order), base, check_exact=True)


def test_errors_say_what_to_do(loaded):
    store, _fb, _ix = loaded
    with pytest.raises(AnalyticsQueryError, match="allowed: nps, churn, repurchase"):
        driver_table(store, outcome="loyalty")
    with pytest.raises(AnalyticsQueryError, match="at most 15"):
        driver_table(store, select=[f"t{i}" for i in range(16)])
    with pytest.raises(AnalyticsQueryError, match="cannot be grouped by touchpoint"):
        driver_table(store, by="touchpoint")
    with pytest.raises(AnalyticsQueryError, match="from 20 to 10000"):
        driver_table(store, bootstrap=5)
    with pytest.raises(AnalyticsQueryError, match="unknown facet"):
        driver_table(store, drivers="facet", select=["mood"])


def test_api_and_cli(loaded, store_url):
    store, _fb, _ix = loaded
    with TestClient(create_app(Settings(auth="off"), store=store)) as c:
        r = c.get("/api/v1/drivers", params={"outcome": "churn", "bootstrap": 30, "min_n": 10})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["n"] == N_PERSONS and body["rows"][0]["driver"] == "support_call"
        bad = c.get("/api/v1/drivers", params={"outcome": "x"})
        assert bad.status_code == 422 and "allowed" in bad.json()["error"]["message"]
        assert c.get("/api/v1/drivers", params={"colour": "red"}).status_code == 422
    store.close()  # the CLI opens the store itself
    run = CliRunner().invoke
    r = run(
        cli_app,
        [
            "drivers",
            "--outcome",
            "nps",
            "--bootstrap",
            "30",
            "--min-n",
            "10",
            "--format",
            "json",
            "--store",
            store_url,
        ],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["rows"][0]["driver"] == "support_call"
    r = run(cli_app, ["drivers", "--outcome", "x", "--store", store_url])
    assert r.exit_code != 0
