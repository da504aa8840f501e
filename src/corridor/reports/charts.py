"""The report's charts, drawn offline by matplotlib: SVG (vector, its words kept as text) for the
PDF, PNG for the e-mail (mail clients block SVG). No network, no JavaScript in the output.

Matplotlib is used through its object API (:class:`matplotlib.figure.Figure`), never pyplot, so
charts drawn in several threads at once (the server's scheduler and its requests) do not share
state.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from corridor.reports.model import Report, is_real

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: colours: the gap's line, its intervals, the forecast, worse and better
INK, BAND, FORECAST, WORSE, BETTER = "#1f3b57", "#9fb6cc", "#c06a00", "#b3261e", "#1e7b34"
_RC: dict[str, Any] = {
    "svg.fonttype": "none",  # words stay words in the SVG (and in the PDF's text)
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "corridor",  # the same ids on every run
}


@dataclass(frozen=True)
class Chart:
    """One chart: a name (the e-mail's Content-ID), its title and alt text, and its two
    drawings."""

    name: str
    title: str
    alt: str
    svg: str
    png: bytes


Paint = Callable[["Axes"], None]


def _draw(name: str, title: str, alt: str, paint: Paint, size: tuple[float, float]) -> Chart:
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_RC):  # type: ignore[arg-type]
        fig = Figure(figsize=size, layout="constrained")
        ax = fig.add_subplot()
        paint(ax)
        svg = io.StringIO()
        fig.savefig(svg, format="svg", metadata={"Date": None})
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=144)
    text = svg.getvalue()
    return Chart(name, title, alt, text[text.index("<svg") :], png.getvalue())


def trend_chart(report: Report) -> Chart | None:
    """The mean gap per period with its interval, continued by the forecast's 80 % and 95 %
    bands."""
    points = report.trend
    if not points:
        return None
    fc = report.forecast.points if report.forecast else ()
    labels = [p.label for p in points] + [f.label for f in fc]
    conf = f"{report.confidence:.0%}"

    def paint(ax: Axes) -> None:
        xs = list(range(len(points)))
        ys = [p.value for p in points]
        err = [[p.value - p.low for p in points], [p.high - p.value for p in points]]
        ax.axhline(0, color="#888", linewidth=0.8)
        ax.errorbar(
            xs, ys, yerr=err, color=INK, ecolor=BAND, capsize=3, marker="o",
            label=f"mean gap, {conf} interval",
        )  # fmt: skip
        if fc:
            fx = [len(points) - 1 + i for i in range(len(fc) + 1)]
            last = points[-1].value
            ax.fill_between(
                fx, [last] + [f.low_95 for f in fc], [last] + [f.high_95 for f in fc],
                color=FORECAST, alpha=0.12, linewidth=0, label="forecast, 95 %",
            )  # fmt: skip
            ax.fill_between(
                fx, [last] + [f.low_80 for f in fc], [last] + [f.high_80 for f in fc],
                color=FORECAST, alpha=0.25, linewidth=0, label="forecast, 80 %",
            )  # fmt: skip
            ax.plot(
                fx, [last] + [f.value for f in fc], color=FORECAST, linestyle="--",
                label="forecast",
            )  # fmt: skip
        ax.set_xticks(range(len(labels)), labels)
        ax.set_ylabel("experience − expectation (points)")
        ax.legend(loc="best", fontsize=7, frameon=False)

    alt = "; ".join(f"{p.label}: {p.value:+.2f} (n = {p.n})" for p in points)
    return _draw("trend", "The gap over time, and the forecast", alt, paint, (6.4, 2.6))


def movers_chart(report: Report) -> Chart | None:
    """The touch points that moved most: this period's mean gap with its interval, coloured by
    the direction of the change where it is real (p < 0.05), dark where it could be chance."""
    movers = [m for m in report.movers if m.low == m.low and m.high == m.high]  # no NaN
    if not movers:
        return None

    def paint(ax: Axes) -> None:
        ys = list(range(len(movers)))[::-1]
        for y, m in zip(ys, movers, strict=True):
            real = is_real(m.p_value)
            colour = (BETTER if m.delta > 0 else WORSE) if real else INK
            ax.errorbar(
                [m.gap], [y], xerr=[[m.gap - m.low], [m.high - m.gap]], color=colour,
                capsize=3, marker="o",
            )  # fmt: skip
            ax.annotate(
                f"{m.delta:+.2f} vs before (n = {m.n})", (m.high, y), xytext=(6, -3),
                textcoords="offset points", fontsize=7, color=colour,
            )  # fmt: skip
        ax.axvline(0, color="#888", linewidth=0.8)
        ax.set_yticks(ys, [m.touchpoint for m in movers])
        ax.set_xlabel("mean gap this period (points)")
        ax.margins(x=0.25)

    alt = "; ".join(f"{m.touchpoint}: {m.gap:+.2f}, change {m.delta:+.2f}" for m in movers)
    height = 0.9 + 0.35 * len(movers)
    return _draw("movers", "Touch points that moved most", alt, paint, (6.4, height))


def charts(report: Report) -> dict[str, Chart]:
    """Every chart the report has data for, by name."""
    made = (trend_chart(report), movers_chart(report))
    return {c.name: c for c in made if c is not None}


__all__ = ["Chart", "charts", "movers_chart", "trend_chart"]
