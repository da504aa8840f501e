"""Analyses of the hosted surveys themselves: response rates and non-response bias
(:mod:`~corridor.analytics.surveys.response_rates`)."""
