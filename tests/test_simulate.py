"""The company simulator: files, contract columns, determinism, and the planted effects being
visible in the raw data with plain pandas."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from scipy import stats

from corridor.domain import contract
from corridor.domain.corridor_map import CorridorMap
from corridor.simulate import SimulationResult, simulate
from corridor.simulate.text import all_strings

KINDS = (
    "people",
    "interactions",
    "feedback",
    "operational_events",
    "market_events",
    "employee_predictions",
)
CONTRACT = {
    k.name: k
    for k in (getattr(contract, n) for n in dir(contract))
    if isinstance(k, contract.RecordKind)
}
# the optional share-of-wallet columns of docs/data-contract.md, after the contract's own
EXTRAS = {"feedback": ("brands_used", "brand_rank")}
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def read(res: SimulationResult, kind: str) -> pd.DataFrame:
    path = res.files[kind]
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    return pd.read_json(path, lines=True, dtype=False, convert_dates=False)


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A mid-sized company (20k customers, 12 months, ~0.77 M interactions) read with pandas."""
    res = simulate(20_000, 12, seed=11, out_dir=tmp_path_factory.mktemp("company"))
    data: dict[str, Any] = {k: pd.read_parquet(res.files[k]) for k in KINDS}
    data["res"] = res
    data["truth"] = res.truth
    data["map"] = yaml.safe_load(res.files["map"].read_text())
    return data


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SimulationResult]:
    return {
        fmt: simulate(300, 6, seed=3, out_dir=tmp_path_factory.mktemp(fmt), fmt=fmt)
        for fmt in ("parquet", "csv", "ndjson")
    }


# -- API, files, formats ---------------------------------------------------------------------
def test_result_lists_files_counts_and_truth(small: dict[str, SimulationResult]) -> None:
    res = small["parquet"]
    assert set(res.files) == {*KINDS, "map", "truth"}
    assert all(p.exists() and p.parent == res.out_dir for p in res.files.values())
    assert res.truth == json.loads(res.files["truth"].read_text())
    for kind in KINDS:
        assert res.counts[kind] == pq.read_metadata(res.files[kind]).num_rows
    assert res.counts["interactions"] > 3_000 and res.counts["feedback"] > 300
    assert res.truth["counts"]["customers"] == 300
    assert res.truth["counts"]["prospects"] == 120


@pytest.mark.parametrize("fmt", ["parquet", "csv", "ndjson"])
def test_every_format_has_exactly_the_contract_columns(
    small: dict[str, SimulationResult], fmt: str
) -> None:
    res = small[fmt]
    assert res.files["people"].suffix == f".{fmt}"
    for kind in KINDS:
        frame = read(res, kind)
        expected = [*CONTRACT[kind].field_names, *EXTRAS.get(kind, ())]
        assert list(frame.columns) == expected, kind
        assert len(frame) == res.counts[kind]


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_text_formats_write_iso_times_with_z(small: dict[str, SimulationResult], fmt: str) -> None:
    frame = read(small[fmt], "interactions")
    assert frame["occurred_at"].map(lambda v: bool(ISO_Z.match(v))).all()
    parquet = read(small["parquet"], "interactions")
    assert (pd.to_datetime(frame["occurred_at"]) == parquet["occurred_at"]).all()


def test_parquet_column_types(small: dict[str, SimulationResult]) -> None:
    ts = pa.timestamp("us", tz="UTC")
    ix = pq.read_schema(small["parquet"].files["interactions"])
    assert ix.field("occurred_at").type == ts
    assert ix.field("interaction_id").type == pa.string()
    assert ix.field("value").type == ix.field("duration_minutes").type == pa.float64()
    fb = pq.read_schema(small["parquet"].files["feedback"])
    for col in ("expectation", "experience", "nps", "csat", "ces", "emotion", *EXTRAS["feedback"]):
        assert fb.field(col).type == pa.int8()
    ev = pq.read_schema(small["parquet"].files["operational_events"])
    assert ev.field("started_at").type == ev.field("ended_at").type == ts


def test_same_seed_same_bytes_different_seed_different(tmp_path: Path) -> None:
    for fmt in ("csv", "ndjson"):
        a = simulate(200, 4, seed=5, out_dir=tmp_path / f"a-{fmt}", fmt=fmt)
        b = simulate(200, 4, seed=5, out_dir=tmp_path / f"b-{fmt}", fmt=fmt)
        for key, path in a.files.items():
            assert path.read_bytes() == b.files[key].read_bytes(), (fmt, key)
    p1 = simulate(200, 4, seed=5, out_dir=tmp_path / "p1")
    p2 = simulate(200, 4, seed=5, out_dir=tmp_path / "p2")
    p3 = simulate(200, 4, seed=6, out_dir=tmp_path / "p3")
    for kind in KINDS:
        assert pq.read_table(p1.files[kind]).equals(pq.read_table(p2.files[kind])), kind
    assert not pq.read_table(p1.files["interactions"]).equals(
        pq.read_table(p3.files["interactions"])
    )
    assert p1.truth["partners"] != p3.truth["partners"]


def test_small_run_reports_progress(tmp_path: Path) -> None:
    seen: list[tuple[str, float]] = []
    simulate(300, 6, seed=1, out_dir=tmp_path, progress=lambda s, f: seen.append((s, f)))
    stages = [s for s, _ in seen]
    assert stages[0] == "setup" and stages[-1] == "done" and "interactions" in stages
    fractions = [f for s, f in seen if s == "interactions"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert all(0.0 <= f <= 1.0 for _, f in seen)


def test_tiny_and_odd_inputs(tmp_path: Path) -> None:
    res = simulate(1, 1, seed=0, out_dir=tmp_path / "tiny", start=date(2024, 1, 31))
    assert res.counts["people"] == 1 and res.truth["end"] == "2024-02-29"
    with pytest.raises(ValueError, match="format"):
        simulate(10, 1, seed=0, out_dir=tmp_path / "x", fmt="xml")
    with pytest.raises(ValueError, match="at least 1"):
        simulate(0, 1, seed=0, out_dir=tmp_path / "y")


# -- the map and the records -------------------------------------------------------------------
def test_corridor_map_is_valid_and_rich(company: dict[str, Any]) -> None:
    cmap = CorridorMap.from_file(company["res"].files["map"])
    doc = company["map"]
    assert doc["stages"] == list(contract.STAGES)
    assert 28 <= len(cmap.touchpoint_keys) <= 40
    assert {t["stage"] for t in doc["touchpoints"]} == set(contract.STAGES)
    promised = [t for t in doc["touchpoints"] if t.get("promises")]
    assert len(promised) >= 10
    metrics = {p["metric"] for t in promised for p in t["promises"]}
    assert metrics == {"duration_minutes", "experience"}


def test_records_use_map_touchpoints_and_channels(company: dict[str, Any]) -> None:
    channels = {t["key"]: set(t["channels"]) for t in company["map"]["touchpoints"]}
    ix, fb = company["interactions"], company["feedback"]
    assert set(ix["touchpoint"]) <= set(channels)
    assert set(fb["touchpoint"].dropna()) <= set(channels)
    valid = {f"{t}/{c}" for t, chans in channels.items() for c in chans}
    assert (ix["touchpoint"] + "/" + ix["channel"]).isin(valid).all()
    for kind in ("operational_events", "market_events"):
        keys = {k for v in company[kind]["touchpoints"].dropna() for k in v.split(";")}
        assert keys <= set(channels), kind
    owner = {t["key"]: t["department"] for t in company["map"]["touchpoints"]}
    ep = company["employee_predictions"]
    assert (ep["touchpoint"].map(owner) == ep["department"]).all()


def test_values_are_within_contract_ranges(company: dict[str, Any]) -> None:
    ix, fb, people = company["interactions"], company["feedback"], company["people"]
    for col, lo, hi in [
        ("expectation", 0, 10),
        ("experience", 0, 10),
        ("nps", 0, 10),
        ("csat", 1, 5),
        ("ces", 1, 7),
        ("emotion", -3, 3),
    ]:
        values = fb[col].dropna()
        assert len(values) > 1000 and values.between(lo, hi).all(), col
        assert (values == values.round()).all()
        assert fb[col].isna().any(), f"{col} is sometimes left empty"
    assert set(fb["source"]) == set(contract.FEEDBACK_SOURCES)
    assert set(people["kind"]) == {"customer", "prospect"}
    assert ix["interaction_id"].is_unique and fb["feedback_id"].is_unique
    assert people["person_id"].is_unique
    assert (ix["value"].dropna() > 0).all() and (ix["duration_minutes"].dropna() > 0).all()
    ids = ix[["person_id", "email", "phone", "device_id", "crm_id"]].notna()
    assert ids.any(axis=1).all() and (ids.sum(axis=1) == 1).all()
    assert ix["occurred_at"].is_monotonic_increasing
    truth = company["truth"]
    assert ix["occurred_at"].min() >= pd.Timestamp(truth["start"], tz="UTC")
    assert ix["occurred_at"].max() < pd.Timestamp(truth["end"], tz="UTC")
    assert 0.10 <= len(fb) / len(ix) <= 0.20
    rate = len(ix) / (20_000 * 12)
    assert 2.0 <= rate <= 4.5


def test_partners_agents_and_outcomes(company: dict[str, Any]) -> None:
    ix = company["interactions"]
    truth = {p["partner_id"]: p for p in company["truth"]["partners"]}
    assert 15 <= len(truth) <= 25
    assert {p["type"] for p in truth.values()} == {"dealer", "retailer", "service", "agency"}
    assert set(ix["partner_id"].dropna()) <= set(truth)
    assert ix.loc[ix["channel"] == "partner", "partner_id"].notna().all()
    assisted = ix["channel"].isin(["voice", "chat", "store", "partner"])
    assert ix.loc[assisted, "agent_id"].notna().all()
    assert ix.loc[~assisted, "agent_id"].isna().all()
    counts = company["feedback"]["partner_id"].value_counts()
    assert counts.max() > 10 * counts.min()
    assert ix.loc[ix["touchpoint"] == "invoice", "partner_id"].isna().all()
    purchases = ix[ix["outcome"] == "purchase"]
    assert set(purchases["touchpoint"]) == {"checkout", "store_purchase", "dealer_purchase"}
    assert purchases["value"].notna().all()


def test_partner_offsets_show_in_surveys(company: dict[str, Any]) -> None:
    fb = company["feedback"]
    quality = {k: v["quality"] for k, v in company["truth"]["model"]["touchpoints"].items()}
    s = fb[(fb["source"] == "survey") & fb["partner_id"].notna() & fb["experience"].notna()]
    residual = (s["experience"] - s["touchpoint"].map(quality)).groupby(s["partner_id"]).mean()
    offset = pd.Series(
        {p["partner_id"]: p["experience_offset"] for p in company["truth"]["partners"]}
    )
    assert residual.corr(offset[residual.index]) > 0.8


# -- planted effects ---------------------------------------------------------------------------
def _with_region(company: dict[str, Any]) -> pd.DataFrame:
    people = company["people"][["person_id", "region"]]
    return company["feedback"].merge(people, on="person_id", how="left")


def test_planted_ripple_is_visible(company: dict[str, Any]) -> None:
    ripple = next(r for r in company["truth"]["ripples"] if r["region"])
    assert ripple["experience_effect"] == -2.0
    fb = _with_region(company)
    s = fb[(fb["source"] == "survey") & fb["touchpoint"].isin(ripple["touchpoints"])]
    s = s.dropna(subset=["experience", "expectation"])
    during = s["occurred_at"].between(
        pd.Timestamp(ripple["start"]), pd.Timestamp(ripple["end"]), inclusive="left"
    )
    inside = s["region"] == ripple["region"]
    diff = s[during & inside]["experience"].mean() - s[during & ~inside]["experience"].mean()
    assert -2.6 < diff < -1.4
    before = s[~during & inside]["experience"].mean() - s[~during & ~inside]["experience"].mean()
    assert abs(before) < 0.4
    complaint = (s["experience"] < s["expectation"]).groupby([during & inside]).mean()
    assert complaint[True] > complaint[False] + 0.2
    ops = company["operational_events"].set_index("event_id").loc[ripple["event_id"]]
    assert (ops["department"], ops["kind"], ops["region"]) == (
        ripple["department"],
        ripple["kind"],
        ripple["region"],
    )
    assert set(ops["touchpoints"].split(";")) == set(ripple["touchpoints"])


def test_planted_drift_is_visible_and_alone(company: dict[str, Any]) -> None:
    drift = company["truth"]["drift"]
    fb = company["feedback"]
    s = fb[(fb["source"] == "survey") & fb["expectation"].notna()]
    after = s["occurred_at"] >= pd.Timestamp(drift["date"])
    means = s.groupby(["touchpoint", after])["expectation"].agg(["mean", "count"]).unstack()
    shift = means["mean"][True] - means["mean"][False]
    enough = (means["count"][True] >= 200) & (means["count"][False] >= 200)
    assert 1.0 < shift[drift["touchpoint"]] < 2.0
    others = shift[enough].drop(drift["touchpoint"])
    assert len(others) > 10 and others.abs().max() < 0.4
    market = company["market_events"].set_index("event_id").loc[drift["market_event_id"]]
    assert market["kind"] == "competitor_move" and market["touchpoints"] == drift["touchpoint"]
    assert market["occurred_at"] == pd.Timestamp(drift["date"])


def test_reviews_and_social_posts_are_more_negative_than_surveys(company: dict[str, Any]) -> None:
    fb = company["feedback"]
    both = fb.dropna(subset=["expectation", "experience"])
    negative = (both["experience"] < both["expectation"]).groupby(both["source"]).mean()
    assert negative["review"] > negative["survey"] + 0.15
    assert negative["social"] > negative["survey"] + 0.15
    emotion = fb.groupby("source")["emotion"].mean()
    assert emotion["review"] < emotion["survey"] - 0.5
    unsolicited = fb[fb["source"].isin(["review", "social"])]
    assert unsolicited["person_id"].isna().mean() > 0.5
    assert unsolicited["text"].notna().all()


def test_churned_customers_vanish_after_cancellation(company: dict[str, Any]) -> None:
    ix = _resolved(company)
    cancels = ix[(ix["touchpoint"] == "cancellation") & (ix["outcome"] == "cancel")]
    assert cancels["who"].is_unique
    assert len(cancels) == company["truth"]["counts"]["churned_customers"] > 100
    last = ix.groupby("who")["occurred_at"].max()
    assert (last[cancels["who"]].to_numpy() == cancels["occurred_at"].to_numpy()).all()
    assert set(cancels["who"]) <= set(company["people"].query("kind == 'customer'").person_id)


def test_churn_follows_gaps_at_driver_touchpoints(company: dict[str, Any]) -> None:
    drivers = {d["touchpoint"] for d in company["truth"]["churn"]["drivers"]}
    assert drivers == {"support_call", "home_delivery", "invoice"}
    ix, fb = company["interactions"], company["feedback"]
    churned = set(ix.loc[ix["outcome"] == "cancel", "person_id"].dropna())
    s = fb[fb["source"] == "survey"].dropna(subset=["expectation", "experience"])
    s = s.assign(gap=s["experience"] - s["expectation"], churned=s["person_id"].isin(churned))
    by = s.groupby(["touchpoint", "churned"])["gap"].mean().unstack()
    for tp in ("support_call", "home_delivery"):
        assert by.loc[tp, True] < by.loc[tp, False] - 0.3, tp


def _resolved(company: dict[str, Any]) -> pd.DataFrame:
    """Interactions with a ``who`` column: person_id, or the person owning the identity."""
    ix, people = company["interactions"], company["people"]
    who = ix["person_id"].copy()
    for col in ("email", "phone", "device_id", "crm_id"):
        owners = people.dropna(subset=[col]).sort_values("kind").drop_duplicates(col)
        mapped = ix[col].map(owners.set_index(col)["person_id"])
        who = who.fillna(mapped)
    assert who.notna().all()
    return ix.assign(who=who)


def test_identity_merges_and_identity_only_interactions(company: dict[str, Any]) -> None:
    truth = company["truth"]["identity"]
    people = company["people"].set_index("person_id")
    assert len(truth["merges"]) == round(0.015 * len(people[people["kind"] == "prospect"]))
    ix = company["interactions"]
    first = ix.groupby("person_id")["occurred_at"].min()
    for merge in truth["merges"]:
        prospect, customer = merge["person_ids"]
        assert people.loc[prospect, "kind"] == "prospect"
        assert people.loc[customer, "kind"] == "customer"
        assert people.loc[prospect, merge["shared"]] == people.loc[customer, merge["shared"]]
        if prospect in first.index and customer in first.index:
            assert first[prospect] < first[customer]
    for col in ("email", "phone", "device_id", "crm_id"):  # no accidental sharing
        shared = people[col].dropna().duplicated().sum()
        assert shared == sum(m["shared"] == col for m in truth["merges"])
    only = truth["identity_only_interactions"]
    assert only["count"] == ix["person_id"].isna().sum()
    assert 0.005 < only["count"] / len(ix) < 0.02
    resolved = _resolved(company).set_index("interaction_id")["who"]
    for sample in only["sample"]:
        owner = resolved[sample["interaction_id"]]
        assert (
            owner == sample["person_id"] or people.loc[owner, sample["column"]] == sample["value"]
        )


def test_new_customers_move_through_stages_in_order(company: dict[str, Any]) -> None:
    stage = {t["key"]: t["stage"] for t in company["map"]["touchpoints"]}
    people = company["people"]
    new = people[
        (people["kind"] == "customer")
        & (people["created_at"] >= pd.Timestamp(company["truth"]["start"], tz="UTC"))
    ]["person_id"]
    ix = _resolved(company)
    ix = ix[ix["who"].isin(new)].assign(stage=ix["touchpoint"].map(stage))
    bought = ix[ix["outcome"] == "purchase"].groupby("who")["occurred_at"].min()
    assert len(bought) > 0.95 * ix["who"].nunique() > 1000
    later = ix[ix["stage"].isin(["delivery", "use", "support", "renewal"])]
    assert (later["occurred_at"] > later["who"].map(bought)).all()
    opening = ix.sort_values("occurred_at").drop_duplicates("who")["stage"]
    assert opening.isin(["awareness", "research", "purchase"]).all()


def test_prospects_stay_early_in_the_corridor(company: dict[str, Any]) -> None:
    stage = {t["key"]: t["stage"] for t in company["map"]["touchpoints"]}
    people = company["people"]
    pros = set(people.loc[people["kind"] == "prospect", "person_id"])
    ix = company["interactions"]
    stages = ix.loc[ix["person_id"].isin(pros), "touchpoint"].map(stage)
    assert set(stages) <= {"awareness", "research", "purchase"}
    assert stages.isin(["awareness", "research"]).mean() > 0.9


def test_events_and_employee_predictions(company: dict[str, Any]) -> None:
    truth = company["truth"]
    ops, market = company["operational_events"], company["market_events"]
    assert 10 <= len(ops) <= 30 and ops["event_id"].is_unique
    planted = {r["event_id"] for r in truth["ripples"]}
    assert planted | set(truth["null_events"]["operational"]) == set(ops["event_id"])
    assert set(market["kind"]) <= set(contract.MARKET_EVENT_KINDS)
    assert {truth["drift"]["market_event_id"], *truth["null_events"]["market"]} == set(
        market["event_id"]
    )
    ep = company["employee_predictions"]
    assert ep["period"].str.match(r"^\d{4}-\d\d$").all() and ep["period"].nunique() == 12
    quality = {k: v["quality"] for k, v in truth["model"]["touchpoints"].items()}
    bias = (ep["predicted_experience"] - ep["touchpoint"].map(quality)).groupby(ep["department"])
    for dept, value in bias.mean().items():
        assert abs(value - truth["employee_optimism"][dept]) < 0.3, dept


def test_texts_are_varied_safe_and_sometimes_hold_pii(company: dict[str, Any]) -> None:
    for s in all_strings():
        assert '"' not in s and "\\" not in s and s.isprintable(), s
    texts = company["feedback"]["text"].dropna()
    assert texts.nunique() > 500
    pii = texts.str.contains(r"@example\.|\+1555", regex=True).mean()
    assert 0.005 < pii < 0.06
    delivery = company["feedback"].query("touchpoint == 'home_delivery' and source == 'review'")
    assert delivery["text"].str.contains("late|courier|delivery", case=False).mean() > 0.5


def test_truth_manifest_is_complete(company: dict[str, Any]) -> None:
    truth = company["truth"]
    for key in (
        "seed",
        "start",
        "end",
        "months",
        "counts",
        "base_rates",
        "model",
        "ripples",
        "drift",
        "partners",
        "churn",
        "identity",
        "null_events",
        "wallet",
    ):
        assert key in truth, key
    assert truth["seed"] == 11 and truth["months"] == 12 and truth["start"] == "2025-01-01"
    assert truth["counts"]["interactions"] == len(company["interactions"])
    assert np.isclose(
        1 / (1 + np.exp(-truth["churn"]["intercept_logit"])), truth["churn"]["base_monthly_hazard"]
    )


# -- share of wallet ---------------------------------------------------------------------------
def _wallet_answers(company: dict[str, Any]) -> pd.DataFrame:
    fb, people = company["feedback"], company["people"][["person_id", "kind", "segment"]]
    w = fb[fb["brand_rank"].notna()].merge(people, on="person_id", how="left")
    share = (1 - w["brand_rank"] / (w["brands_used"] + 1)) * 2 / w["brands_used"]
    return w.assign(share=share.astype(float))


def test_wallet_answers_ride_on_customers_nps_surveys(company: dict[str, Any]) -> None:
    """Both columns together, only on customers' surveys with an NPS, about half of those
    (binomial test, scipy.stats.binomtest), in range, brands_used fixed per person."""
    fb, w = company["feedback"], _wallet_answers(company)
    assert (fb["brand_rank"].isna() == fb["brands_used"].isna()).all()
    assert (w["source"] == "survey").all() and w["nps"].notna().all()
    assert (w["kind"] == "customer").all()
    assert (w["brand_rank"] >= 1).all() and (w["brand_rank"] <= w["brands_used"]).all()
    assert set(w["brands_used"]) == {1, 2, 3, 4, 5}
    kinds = fb["person_id"].map(company["people"].set_index("person_id")["kind"])
    eligible = (fb["source"] == "survey") & fb["nps"].notna() & (kinds == "customer")
    asked = int(fb.loc[eligible, "brand_rank"].notna().sum())
    assert stats.binomtest(asked, int(eligible.sum()), 0.5).pvalue > 0.001
    assert (w.groupby("person_id")["brands_used"].nunique() == 1).all()
    assert 0.05 < len(w) / (fb["source"] == "survey").sum() < 0.5


def test_wallet_follows_the_planted_model_per_segment(company: dict[str, Any]) -> None:
    """Per person (latest answer): brands_used per segment against the planted distribution
    (Pearson chi-square, scipy.stats.chisquare); the mean rank and share within 3.29 standard
    errors (99.9 %) of the planted values."""
    planted = company["truth"]["wallet"]["expected"]
    w = _wallet_answers(company).sort_values(["occurred_at", "feedback_id"])
    latest = w.groupby("person_id").tail(1)
    assert set(latest["segment"]) == set(planted)
    for segment, group in latest.groupby("segment"):
        p = planted[segment]
        probs = np.array([p["brands_used"][str(k)] for k in range(1, 6)])
        seen = group["brands_used"].value_counts().reindex(range(1, 6), fill_value=0)
        assert stats.chisquare(seen.to_numpy(), probs * len(group)).pvalue > 0.001, segment
        for col, key in (("brand_rank", "mean_rank"), ("share", "wallet_share")):
            se = group[col].std() / np.sqrt(len(group))
            assert abs(group[col].mean() - p[key]) < 3.29 * se, (segment, col)
    shares = [planted[s]["wallet_share"] for s in ("consumer", "small_business", "enterprise")]
    assert shares == sorted(shares, reverse=True)


def test_better_served_customers_rank_the_brand_higher(company: dict[str, Any]) -> None:
    """The ranking follows the person's experience offset, so a person's mean surveyed
    experience and their mean share of wallet go together (Spearman; measured ρ ≈ 0.10)."""
    fb, w = company["feedback"], _wallet_answers(company)
    share = w.groupby("person_id")["share"].mean()
    experience = fb[fb["source"] == "survey"].groupby("person_id")["experience"].mean()
    both = pd.concat([share, experience], axis=1, join="inner").dropna()
    rho, p = stats.spearmanr(both["share"], both["experience"])
    assert rho > 0.05 and p < 1e-6


def test_wallet_truth_matches_a_monte_carlo_of_the_stated_model(company: dict[str, Any]) -> None:
    """The exact expected values in truth.json against 400,000 draws per segment of the model
    as truth.json states it (standing = a + w·Z + τ·Z' + σ·Z'', rivals N(0, 1)); within 4 Monte
    Carlo standard errors."""
    wallet = company["truth"]["wallet"]
    w, tau, sigma = wallet["mood_weight"], wallet["person_sd"], wallet["answer_sd"]
    rng = np.random.default_rng(20150101)
    n = 400_000
    for segment, p in wallet["expected"].items():
        probs = [p["brands_used"][str(k)] for k in range(1, 6)]
        brands = rng.choice(np.arange(1, 6), n, p=probs)
        z = rng.normal(size=(n, 3)) @ np.array([w, tau, sigma])
        u = wallet["standing_by_segment"][segment] + z
        rivals = rng.normal(size=(n, 4))
        above = (rivals > u[:, None]) & (np.arange(4)[None, :] < (brands - 1)[:, None])
        rank = 1 + above.sum(axis=1)
        share = (1 - rank / (brands + 1)) * 2 / brands
        for values, key in (
            (share, "wallet_share"),
            (rank, "mean_rank"),
            (rank == 1, "first_choice"),
        ):
            se = values.std() / np.sqrt(n)
            assert abs(values.mean() - p[key]) < 4 * se, (segment, key)
        assert p["mean_brands"] == pytest.approx(float(np.dot(probs, np.arange(1, 6))))


def test_wallet_stream_leaves_everything_else_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The share-of-wallet answers draw from their own random stream: changing the wallet
    model changes those two columns and truth["wallet"] only."""
    from corridor.simulate import params

    a = simulate(400, 3, seed=5, out_dir=tmp_path / "a", fmt="csv")
    monkeypatch.setattr(params, "WALLET_ASKED_SHARE", 1.0)
    monkeypatch.setattr(params, "WALLET_STANDING", (-1.0, 0.5, 2.0))
    monkeypatch.setattr(params, "WALLET_BRANDS", ((0.2,) * 5,) * 3)
    b = simulate(400, 3, seed=5, out_dir=tmp_path / "b", fmt="csv")
    for key, path in a.files.items():
        if key not in ("feedback", "truth"):
            assert path.read_bytes() == b.files[key].read_bytes(), key
    fa, fb = read(a, "feedback"), read(b, "feedback")
    own = list(CONTRACT["feedback"].field_names)
    assert fa[own].equals(fb[own])
    assert fb["brand_rank"].notna().sum() > fa["brand_rank"].notna().sum() > 0
    assert {k: v for k, v in a.truth.items() if k != "wallet"} == {
        k: v for k, v in b.truth.items() if k != "wallet"
    }
    assert a.truth["wallet"] != b.truth["wallet"]
