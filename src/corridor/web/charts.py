"""Plotly figure specs (plain JSON-able dicts) for the pages; plotly.js draws them in the page.

Built by hand rather than through ``plotly.graph_objects``: a spec is a few lines of JSON, and
the pages stay fast. Every chart has a title and axis titles (read out by screen readers through
the figure's ``aria-label``), intervals as a shaded band, and markers labelled in words.
"""

from __future__ import annotations

import math
from typing import Any

INK = "#1d2530"
MUTED = "#5b6675"
LINE = "#2f6fb0"
BAND = "rgba(47, 111, 176, 0.18)"
MARK = "#b4531d"
FORECAST = "#6b4fa0"
FORECAST_80 = "rgba(107, 79, 160, 0.30)"
FORECAST_95 = "rgba(107, 79, 160, 0.13)"


def _clean(values: list[float | None]) -> list[float | None]:
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in values]


def _layout(title: str, height: int, compact: bool) -> dict[str, Any]:
    margin = {"l": 30, "r": 8, "t": 8, "b": 24} if compact else {"l": 56, "r": 16, "t": 40, "b": 48}
    layout: dict[str, Any] = {
        "height": height,
        "margin": margin,
        "showlegend": not compact,
        "legend": {"orientation": "h", "y": -0.25},
        "font": {"family": "system-ui, sans-serif", "size": 11 if compact else 13, "color": INK},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "xaxis": {
            "type": "category",
            "gridcolor": "#e3e7ec",
            "nticks": 4 if compact else 13,
            "tickangle": 0,
        },
        "yaxis": {"gridcolor": "#e3e7ec", "zerolinecolor": "#9aa5b1"},
    }
    if not compact:
        layout["title"] = {"text": title, "x": 0, "font": {"size": 15}}
    return layout


def band(
    x: list[str],
    y: list[float | None],
    low: list[float | None],
    high: list[float | None],
    *,
    title: str,
    height: int = 320,
    compact: bool = False,
    markers: list[dict[str, str]] | None = None,
    zero_line: bool = False,
    y_title: str | None = None,
) -> dict[str, Any]:
    """A line with its interval as a shaded band, optional labelled vertical markers."""
    traces: list[dict[str, Any]] = [
        {
            "x": x,
            "y": _clean(high),
            "mode": "lines",
            "line": {"width": 0},
            "hoverinfo": "skip",
            "showlegend": False,
            "name": "upper bound",
        },
        {
            "x": x,
            "y": _clean(low),
            "mode": "lines",
            "line": {"width": 0},
            "fill": "tonexty",
            "fillcolor": BAND,
            "name": "95% interval",
            "hoverinfo": "skip",
        },
        {
            "x": x,
            "y": _clean(y),
            "mode": "lines+markers",
            "line": {"color": LINE, "width": 2},
            "marker": {"size": 5},
            "name": "estimate",
        },
    ]
    layout = _layout(title, height, compact)
    if y_title:
        layout["yaxis"]["title"] = {"text": y_title}
    shapes: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for m in markers or []:
        shapes.append(
            {
                "type": "line",
                "x0": m["x"],
                "x1": m["x"],
                "yref": "paper",
                "y0": 0,
                "y1": 1,
                "line": {"color": MARK, "dash": "dot", "width": 2},
            }
        )
        annotations.append(
            {
                "x": m["x"],
                "yref": "paper",
                "y": 1,
                "text": m["label"],
                "showarrow": False,
                "font": {"color": MARK, "size": 11},
                "xanchor": "left",
                "yanchor": "bottom",
            }
        )
    if zero_line:
        layout["yaxis"]["zeroline"] = True
        layout["yaxis"]["zerolinewidth"] = 2
    layout["shapes"], layout["annotations"] = shapes, annotations
    return {"data": traces, "layout": layout, "title": title}


def forecast_band(
    spec: dict[str, Any],
    x: list[str],
    y: list[float | None],
    bands: dict[int, tuple[list[float | None], list[float | None]]],
    *,
    start: tuple[str, float] | None = None,
) -> dict[str, Any]:
    """``spec`` (a :func:`band` chart) continued by a forecast: the 95 % and 80 % prediction
    intervals as two shaded bands (``bands``: level → (low, high)), the point forecast dashed,
    drawn from ``start`` (the last observed period and value), and a label where it begins."""
    if not x:
        return spec
    traces: list[dict[str, Any]] = []
    for level, colour in ((95, FORECAST_95), (80, FORECAST_80)):
        low, high = bands[level]
        traces += [
            {"x": x, "y": _clean(high), "mode": "lines", "line": {"width": 0},
             "hoverinfo": "skip", "showlegend": False, "name": f"{level} % upper",
             "legendgroup": f"fc{level}"},
            {"x": x, "y": _clean(low), "mode": "lines", "line": {"width": 0}, "fill": "tonexty",
             "fillcolor": colour, "name": f"{level} % forecast interval",
             "legendgroup": f"fc{level}", "hoverinfo": "skip"},
        ]  # fmt: skip
    line_x, line_y = ([start[0], *x], [start[1], *_clean(y)]) if start else (x, _clean(y))
    traces.append(
        {
            "x": line_x,
            "y": line_y,
            "mode": "lines+markers",
            "line": {"color": FORECAST, "width": 2, "dash": "dash"},
            "marker": {"size": 5, "symbol": "diamond"},
            "name": "forecast",
        }
    )
    layout = dict(spec["layout"])
    layout["annotations"] = [
        *layout.get("annotations", []),
        {"x": x[0], "yref": "paper", "y": 0, "text": "forecast →", "showarrow": False,
         "font": {"color": FORECAST, "size": 11}, "xanchor": "left", "yanchor": "bottom"},
    ]  # fmt: skip
    return {**spec, "data": [*spec["data"], *traces], "layout": layout}


def spans(
    x: list[str],
    y: list[float | None],
    events: list[dict[str, Any]],
    *,
    title: str,
    height: int = 320,
    y_title: str | None = None,
) -> dict[str, Any]:
    """A line with shaded time spans (operational events) labelled by kind."""
    layout = _layout(title, height, False)
    layout["xaxis"] = {"type": "date", "gridcolor": "#e3e7ec"}
    if y_title:
        layout["yaxis"]["title"] = {"text": y_title}
    layout["shapes"] = [
        {
            "type": "rect",
            "xref": "x",
            "yref": "paper",
            "x0": e["start"],
            "x1": e["end"],
            "y0": 0,
            "y1": 1,
            "fillcolor": "rgba(180, 83, 29, 0.15)",
            "line": {"width": 0},
        }
        for e in events
    ]
    layout["annotations"] = [
        {
            "x": e["start"],
            "yref": "paper",
            "y": 1,
            "text": e["label"],
            "showarrow": False,
            "textangle": -90,
            "font": {"color": MARK, "size": 10},
            "xanchor": "left",
            "yanchor": "top",
        }
        for e in events[:20]
    ]
    data = [
        {
            "x": x,
            "y": _clean(y),
            "mode": "lines+markers",
            "line": {"color": LINE, "width": 2},
            "name": y_title or "value",
        }
    ]
    return {"data": data, "layout": layout, "title": title}


def timeline(points: list[dict[str, Any]], *, title: str, height: int = 260) -> dict[str, Any]:
    """One marker per interaction or feedback, one row per channel (or feedback source)."""
    kinds: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        kinds.setdefault(p["kind"], []).append(p)
    symbols = {"interaction": "circle", "feedback": "diamond"}
    data = [
        {
            "x": [p["at"] for p in items],
            "y": [p["row"] for p in items],
            "text": [p["label"] for p in items],
            "mode": "markers",
            "name": kind,
            "marker": {"size": 10, "symbol": symbols.get(kind, "circle")},
            "hovertemplate": "%{x}<br>%{text}<extra></extra>",
        }
        for kind, items in kinds.items()
    ]
    layout = _layout(title, height, False)
    layout["xaxis"] = {"type": "date", "gridcolor": "#e3e7ec"}
    layout["yaxis"] = {"type": "category", "gridcolor": "#e3e7ec"}
    return {"data": data, "layout": layout, "title": title}


def bars(
    labels: list[str],
    series: dict[str, tuple[list[float | None], list[float | None], list[float | None]]],
    *,
    title: str,
    height: int = 340,
    x_title: str | None = None,
) -> dict[str, Any]:
    """Horizontal bars with error bars: several series side by side (e.g. partner vs brand)."""
    data = []
    for name, (v, lo, hi) in series.items():
        vals = _clean(v)
        data.append(
            {
                "type": "bar",
                "orientation": "h",
                "y": labels,
                "x": vals,
                "name": name,
                "error_x": {
                    "type": "data",
                    "symmetric": False,
                    "array": [
                        (h - x) if h is not None and x is not None else None
                        for h, x in zip(_clean(hi), vals, strict=True)
                    ],
                    "arrayminus": [
                        (x - lo_) if lo_ is not None and x is not None else None
                        for lo_, x in zip(_clean(lo), vals, strict=True)
                    ],
                },
            }
        )
    layout = _layout(title, height, False)
    layout["barmode"] = "group"
    layout["xaxis"] = {"gridcolor": "#e3e7ec", "zeroline": True, "zerolinewidth": 2}
    layout["yaxis"] = {"type": "category", "automargin": True}
    if x_title:
        layout["xaxis"]["title"] = {"text": x_title}
    return {"data": data, "layout": layout, "title": title}
