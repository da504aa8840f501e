"""Errors raised by the analytics layer."""

from __future__ import annotations

from corridor.errors import ContractError


class AnalyticsQueryError(ContractError):
    """An analytics request that cannot be answered as asked: an unknown grouping, filter or
    period, an empty filter, a bad time range or confidence level. The message lists the
    allowed values, so the caller can fix the request."""

    status_code = 422


__all__ = ["AnalyticsQueryError"]
