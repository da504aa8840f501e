"""Anticipation: forecasts of every touch point's gap, metrics and volumes, with backtests."""
