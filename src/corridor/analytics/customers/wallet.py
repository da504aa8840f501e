"""Share of wallet from brand rankings: the Wallet Allocation Rule.

Customers say how many brands of the category they use (``brands_used``, N ≥ 1) and where
ours ranks among them (``brand_rank``, 1 = the one they prefer), as two extra feedback columns
(kept in ``feedback.attributes``; see docs/data-contract.md). The Wallet Allocation Rule
(Keiningham, Aksoy, Buoye, Cooil et al.) turns the rank into the share of the customer's
category spending our brand gets::

    share = (1 − rank / (N + 1)) · 2 / N

The shares of all N brands of one customer sum to 1; a sole brand gets 1; with N = 3 the
first, second and third brands get 1/2, 1/3 and 1/6.

Each person counts once per group, with their most recent answer in the time range (an
anonymous answer counts as its own respondent). Per group: the mean share with a Student-t
interval, the share of respondents who rank us first (Wilson interval), the mean number of
brands used and the mean rank. Answers that do not make sense (a rank above N, N or rank
below 1, not a whole number) are left out and counted in ``summary["invalid"]``.

References
----------
* Keiningham, T. L., Aksoy, L., Buoye, A. & Cooil, B. (2011), "Customer loyalty isn't
  enough. Grow your share of wallet", *Harvard Business Review* 89(10).
* Keiningham, T. L., Cooil, B., Malthouse, E. C., Larivière, B., Buoye, A., Aksoy, L. &
  De Keyser, A. (2015), "Perceptions are relative: an examination of the relationship between
  relative satisfaction metrics and share of wallet", *Journal of Service Management* 26(1) —
  the rule tested against reported shares of wallet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from corridor.analytics.core import dimensions as dims
from corridor.analytics.core.counting import count_where
from corridor.analytics.core.dimensions import Filters, Query, Source, TimeLike
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.persons import canonical
from corridor.analytics.core.registry import DIMENSION_NAMES, Analysis, by_param, register
from corridor.analytics.core.result import AnalyticsResult, put_interval
from corridor.analytics.core.result_columns import described
from corridor.analytics.estimators import stats

RANK_FIELD = "brand_rank"
BRANDS_FIELD = "brands_used"
_WHOLE = r"^[0-9]+(\.0*)?$"

METHOD = (
    "Wallet Allocation Rule share = (1 − rank/(N + 1)) · 2/N from each person's latest "
    "brand_rank and brands_used (Keiningham et al. 2011, 2015); mean share with a Student-t "
    "interval (clipped to [0, 1]); share ranking the brand first with a Wilson score interval"
)


def wallet_share(rank: Any, brands: Any) -> Any:
    """The Wallet Allocation Rule: ``(1 − rank/(N + 1)) · 2/N`` (numbers or arrays)."""
    return (1.0 - rank / (brands + 1.0)) * 2.0 / brands


@dataclass(frozen=True, eq=False)
class WalletResult(AnalyticsResult):
    """Share of wallet per group.

    ``frame`` columns: the ``by`` dimensions; ``n`` (respondents); ``wallet_share`` with
    ``wallet_share_low``/``wallet_share_high`` (t interval) and ``sd_wallet_share``;
    ``first_choice`` (share ranking the brand first) with ``first_choice_low``/
    ``first_choice_high`` (Wilson); ``mean_brands`` (N); ``mean_rank``.
    """

    totals: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "summary": self.totals}


def _number(value: ir.Value) -> ir.FloatingValue:
    """A JSON attribute as a whole number (a JSON number or a numeric string), else null."""
    text = value.cast("string").re_replace('"', "").strip()
    return ibis.ifelse(text.re_search(_WHOLE), text.cast("float64"), ibis.null("float64"))


def wallet_rows(source: Source, query: Query) -> ir.Table:
    """One row per answer with both fields: the query's dimensions, ``person``,
    ``occurred_at``, ``rank``, ``brands`` (null when not a whole number)."""
    facts = dims.apply_query(dims.feedback_facts(source, query.dimensions), query)
    fb = dims.get_table(source, "feedback")
    fb = fb.select(
        _fb_id=fb.feedback_id,
        _who=ibis.coalesce(fb.person_id, "anonymous:" + fb.feedback_id),
        _rank=fb.attributes[RANK_FIELD],
        _brands=fb.attributes[BRANDS_FIELD],
    )
    rows = facts.inner_join(fb, facts.feedback_id == fb._fb_id)
    rows = rows.filter(rows._rank.notnull(), rows._brands.notnull())
    rows = canonical(rows, source, "_who")
    return rows.select(
        *query.by,
        "person",
        "occurred_at",
        "feedback_id",
        rank=_number(rows._rank),
        brands=_number(rows._brands),
    )


def wallet_table(
    source: Source,
    by: Sequence[str] | str | None = ("segment",),
    filters: Filters | None = None,
    since: TimeLike = None,
    until: TimeLike = None,
    confidence: float = 0.95,
    period: str | None = None,
) -> WalletResult:
    """Share of wallet per group (default: per segment); see the module docstring."""
    if period is not None:
        raise AnalyticsQueryError("share of wallet has no period; narrow with since/until")
    conf = dims.check_confidence(confidence)
    query = Query.build(by, None, filters, since, until)
    rows = wallet_rows(source, query)
    valid = (
        rows.rank.notnull()
        & rows.brands.notnull()
        & (rows.brands >= 1)
        & (rows.rank >= 1)
        & (rows.rank <= rows.brands)
    )
    counts = rows.aggregate(total=rows.count(), invalid=count_where(rows, ~valid))
    counted = counts.to_pyarrow().to_pylist()[0]
    ok = rows.filter(valid)
    w = ibis.window(
        group_by=[ok.person, *(ok[b] for b in query.by)],
        order_by=[ibis.desc(ok.occurred_at), ibis.desc(ok.feedback_id)],
    )
    ok = ok.mutate(_n=ibis.row_number().over(w))
    latest = ok.filter(ok._n == 0)
    latest = latest.mutate(share=wallet_share(latest.rank, latest.brands))
    sums = dims.aggregate(
        latest,
        list(query.by),
        {
            "n": latest.count(),
            "sum_share": latest.share.sum(),
            "sumsq_share": (latest.share * latest.share).sum(),
            "n_first": count_where(latest, latest.rank == 1),
            "sum_brands": latest.brands.sum(),
            "sum_rank": latest.rank.sum(),
        },
    )
    sums = sums[sums["n"] > 0] if query.by else sums
    frame = summarise_wallet(sums, list(query.by), conf)
    totals = {
        "answers": int(counted["total"] or 0),
        "invalid": int(counted["invalid"] or 0),
        "respondents": int(sums["n"].sum()),
    }
    return WalletResult.from_sums(frame, sums, conf, METHOD, query.describe(), totals=totals)


def summarise_wallet(sums: pd.DataFrame, by: list[str], conf: float) -> pd.DataFrame:
    """Estimates and intervals from the per-group sums (pure)."""
    out = sums[by].copy()
    n = sums["n"].to_numpy(dtype=float)
    est = stats.mean_interval(n, sums["sum_share"], sums["sumsq_share"], conf)
    first = stats.proportion(sums["n_first"], n, conf)
    out["n"] = sums["n"].astype("int64")
    out["wallet_share"] = est.mean
    # a share lies in [0, 1]: so does its interval
    out["wallet_share_low"] = np.clip(est.low, 0.0, 1.0)
    out["wallet_share_high"] = np.clip(est.high, 0.0, 1.0)
    out["sd_wallet_share"] = est.sd
    put_interval(out, "first_choice", first.share, first.low, first.high)
    # a group without respondents (the whole, on an empty store) has no mean: 0/0 is NaN
    with np.errstate(all="ignore"):
        out["mean_brands"] = sums["sum_brands"].to_numpy(dtype=float) / n
        out["mean_rank"] = sums["sum_rank"].to_numpy(dtype=float) / n
    return out.reset_index(drop=True)


WALLET = register(
    Analysis(
        "wallet",
        "Share of wallet",
        wallet_table,
        path="/wallet",
        command=("wallet",),
        tag="drivers and journeys",
        description="Share of wallet by the Wallet Allocation Rule from customers' brand "
        f"rankings (`{RANK_FIELD}`, `{BRANDS_FIELD}` feedback columns), per segment unless "
        "`by` says otherwise: the mean share with its interval, the share ranking us first, "
        "the mean number of brands and the mean rank; answers counted and left out in "
        "`summary`. Filter by any dimension (`region=north`; an empty value selects records "
        "without one).",
        by=by_param(("segment",)),
        filters=DIMENSION_NAMES,
        columns=described(
            "n:int respondents (each person's latest answer)",
            "wallet_share± mean share of the category's spending",
            "sd_wallet_share standard deviation of the shares",
            "first_choice± share of respondents ranking us first",
            "mean_brands mean number of brands used",
            "mean_rank mean rank of ours among them",
        ),
        extras=("summary",),
        brief=("n", "wallet_share±", "first_choice±", "mean_brands", "mean_rank"),
    )
)  # fmt: skip

__all__ = [
    "BRANDS_FIELD",
    "RANK_FIELD",
    "WalletResult",
    "summarise_wallet",
    "wallet_rows",
    "wallet_share",
    "wallet_table",
]
