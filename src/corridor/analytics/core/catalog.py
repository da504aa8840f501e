"""The analyses a user can ask for by name, with the parameters every surface passes alike.

The API (``GET /api/v1/<name>``) and the CLI (``corridor <name>``) both look analyses up here, so
a grouping, filter or period means the same thing at every door and unknown ones are refused
with the same message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from corridor.analytics.core.dimensions import DIMENSIONS, PERIODS, Filters, Source, TimeLike
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.result import AnalyticsResult
from corridor.analytics.feedback.drift import expectation_drift
from corridor.analytics.feedback.facets import facet_table, source_facets
from corridor.analytics.feedback.gaps import gap_table
from corridor.analytics.feedback.metrics import metric_table
from corridor.analytics.feedback.promises import promise_table

_KEYS = ("period", "period_label", "n")


@dataclass(frozen=True)
class Analysis:
    name: str
    title: str
    run: Callable[..., AnalyticsResult]
    #: prefixes of the measure columns shown (with their changes); None shows every column
    columns: tuple[str, ...] | None = None
    #: the few columns a terminal table shows
    brief: tuple[str, ...] = ()
    default_by: tuple[str, ...] = ()
    #: a period used when none is asked for (analyses that follow a series over time)
    default_period: str | None = None

    def __call__(
        self,
        source: Source,
        *,
        by: Sequence[str] | None = None,
        period: str | None = None,
        filters: Filters | None = None,
        since: TimeLike = None,
        until: TimeLike = None,
        confidence: float = 0.95,
    ) -> AnalyticsResult:
        result = self.run(
            source,
            by=list(by) if by else list(self.default_by),
            period=period or self.default_period,
            filters=filters,
            since=since,
            until=until,
            confidence=confidence,
        )
        if self.columns is None:
            return result
        prefixes = tuple(
            f"{change}{p}" for p in self.columns for change in ("", "delta_", "p_value_")
        )
        keep = [
            c
            for c in result.frame.columns
            if c in DIMENSIONS or c in _KEYS or c.startswith(prefixes)
        ]
        return type(result)(
            frame=result.frame[keep],
            n=result.n,
            confidence=result.confidence,
            method=result.method,
            query=result.query,
        )


ANALYSES: dict[str, Analysis] = {
    a.name: a
    for a in (
        Analysis(
            "gaps",
            "Experience minus expectation",
            gap_table,
            brief=(
                "n",
                "mean_expectation",
                "mean_experience",
                "mean_gap",
                "mean_gap_low",
                "mean_gap_high",
                "share_below",
                "delta_mean_gap",
                "p_value_mean_gap",
            ),
            default_by=("touchpoint",),
        ),
        Analysis(
            "nps",
            "Net Promoter Score",
            metric_table,
            columns=("nps", "promoters", "passives", "detractors"),
            brief=(
                "nps_n",
                "nps",
                "nps_low",
                "nps_high",
                "promoters",
                "detractors",
                "delta_nps",
                "p_value_nps",
            ),
        ),
        Analysis(
            "csat",
            "Customer satisfaction, top-2-box",
            metric_table,
            columns=("csat",),
            brief=(
                "csat_n",
                "csat_top2_share",
                "csat_top2_share_low",
                "csat_top2_share_high",
                "delta_csat_top2_share",
                "p_value_csat_top2_share",
            ),
        ),
        Analysis(
            "ces",
            "Customer effort score",
            metric_table,
            columns=("ces",),
            brief=(
                "ces_n",
                "ces_mean",
                "ces_mean_low",
                "ces_mean_high",
                "ces_easy_share",
                "delta_ces_mean",
                "p_value_ces_mean",
            ),
        ),
        Analysis(
            "promises",
            "Promises kept against their targets",
            promise_table,
            brief=(
                "promise",
                "target",
                "n",
                "kept_rate",
                "kept_rate_low",
                "kept_rate_high",
                "mean_gap_kept",
                "mean_gap_broken",
                "delta_gap",
                "p_value_gap",
            ),
        ),
        Analysis(
            "drift",
            "Expectation drift: change points in mean expectation",
            expectation_drift,
            brief=(
                "date",
                "size",
                "size_low",
                "size_high",
                "p_value_adjusted",
                "mean_before",
                "mean_after",
                "n_before",
                "n_after",
                "market_events",
            ),
            default_by=("touchpoint",),
            default_period="month",
        ),
        Analysis(
            "facets",
            "Functional (experience) and emotional (emotion) facets",
            facet_table,
            brief=(
                "n",
                "mean_experience",
                "mean_experience_low",
                "mean_experience_high",
                "mean_emotion",
                "mean_emotion_low",
                "mean_emotion_high",
                "correlation",
            ),
        ),
        Analysis(
            "sources",
            "Solicited (survey) against unsolicited (review, social) feedback",
            source_facets,
            brief=(
                "solicited_n",
                "solicited_mean",
                "unsolicited_n",
                "unsolicited_mean",
                "negativity_skew",
                "negativity_skew_low",
                "negativity_skew_high",
                "p_value_skew",
            ),
            default_by=("touchpoint",),
        ),
    )
}


def get_analysis(name: str) -> Analysis:
    try:
        return ANALYSES[name]
    except KeyError:
        raise AnalyticsQueryError(
            f"unknown analysis {name!r}; allowed: {', '.join(ANALYSES)}"
        ) from None


def parse_filters(pairs: Sequence[str]) -> dict[str, list[Any]]:
    """``["region=north", "channel=web,app"]`` → ``{"region": ["north"], "channel": [...]}``.

    An empty value (``partner=``) selects records without one.
    """
    out: dict[str, list[Any]] = {}
    for pair in pairs:
        name, sep, values = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise AnalyticsQueryError(
                f"cannot read filter {pair!r}; write DIMENSION=VALUE[,VALUE...], e.g. "
                f"region=north; dimensions: {', '.join(DIMENSIONS)}"
            )
        out.setdefault(name, []).extend(
            [v.strip() or None for v in values.split(",")] if values else [None]
        )
    return out


__all__ = ["ANALYSES", "PERIODS", "Analysis", "get_analysis", "parse_filters"]
