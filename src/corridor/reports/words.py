"""The report's figures and findings in words: one place that formats a value with its interval
and n, and writes the summary an analyst would, for the HTML and the plain text alike."""

from __future__ import annotations

from corridor.reports.model import Figure, Report, format_p, is_real


def signed(x: float, digits: int = 2) -> str:
    """``x`` with its sign and a true minus (``+0.13``, ``−1.08``)."""
    return f"{x:+.{digits}f}".replace("-", "−")


def _plain(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}".replace("-", "−")


def value(fig: Figure) -> str:
    """The figure alone (``−1.08``, ``25 %``)."""
    if fig.value is None:
        return "–"
    if fig.unit == "share":
        return f"{fig.value:.0%}"
    if fig.unit == "points":
        return signed(fig.value)
    if fig.key == "nps":
        return signed(fig.value, 1)
    return _plain(fig.value)


def interval(fig: Figure, confidence: float) -> str:
    """The interval and n (``95 % CI −2.19 to +0.04; n = 13``)."""
    if fig.value is None or fig.low is None or fig.high is None:
        return f"n = {fig.n:,}"
    if fig.unit == "share":
        lo, hi = f"{fig.low:.0%}", f"{fig.high:.0%}"
    elif fig.unit == "points" or fig.key == "nps":
        digits = 1 if fig.key == "nps" else 2
        lo, hi = signed(fig.low, digits), signed(fig.high, digits)
    else:
        lo, hi = _plain(fig.low), _plain(fig.high)
    return f"{confidence:.0%} CI {lo} to {hi}; n = {fig.n:,}"


def delta(fig: Figure) -> str:
    """The change against the previous period as a number (``+0.13 points``), or ''."""
    if fig.delta is None:
        return ""
    if fig.unit == "share":
        return f"{signed(fig.delta * 100, 1)} percentage points"
    if fig.unit == "points" or fig.key == "nps":
        return f"{signed(fig.delta, 1 if fig.key == 'nps' else 2)} points"
    return signed(fig.delta, 1 if fig.key == "nps" else 2)


def change(fig: Figure) -> str:
    """The change in words with its size and the previous period's n."""
    said = fig.change_words()
    if fig.delta is None:
        return said
    return f"{said} ({delta(fig)} against the period before, n = {fig.previous_n:,} then)"


def summary(report: Report) -> list[str]:
    """A few sentences on what changed, whether it is real, what moved and what is being
    done."""
    out: list[str] = []
    gap = report.gap
    who = report.subject.label
    if gap.value is None:
        out.append(f"No rated feedback reached {who} in {report.period.label}.")
    else:
        side = "below" if gap.value < 0 else "above"
        out.append(
            f"In {report.period.label}, customers of {who} rated their experience "
            f"{abs(gap.value):.2f} points {side} what they expected "
            f"({interval(gap, report.confidence)}). Against the period before it is "
            f"{gap.change_words()}."
        )
    real = [f for f in report.headline[1:] if is_real(f.p_value)]
    if real:
        said = [f"{f.label} {f.direction} ({delta(f)}, {format_p(f.p_value or 0)})" for f in real]
        out.append("Changes that are unlikely to be chance: " + "; ".join(said) + ".")
    elif gap.value is not None:
        out.append("None of NPS, CSAT and CES changed by more than chance would explain.")
    if report.movers:
        m = report.movers[0]
        sure = "a real change" if is_real(m.p_value) else "within what chance would explain"
        if m.p_value is not None:
            sure += f" ({format_p(m.p_value)})"
        out.append(
            f"The touch point that moved most is {m.touchpoint}: its gap changed by "
            f"{signed(m.delta)} points to {signed(m.gap)} (n = {m.n:,}), {sure}."
        )
    steps = [d for d in report.drift if is_real(d.p_value)]
    if steps:
        d = steps[0]
        out.append(
            f"What customers expect moved at {d.touchpoint} in {d.period_label}: from "
            f"{d.mean_before:.2f} to {d.mean_after:.2f} ({format_p(d.p_value or 0)})."
        )
    if report.ripple:
        hits = [r for r in report.ripple if r.significant]
        if hits:
            r = hits[0]
            out.append(
                f"Operational event {r.event_id} ({r.kind}, from {r.started}) moved the gap by "
                f"{signed(r.effect)} points where it reached customers."
            )
    c = report.cases
    if c.opened:
        verified = (
            f"; of {c.decided} decided verifications {c.verified} confirmed the fix"
            if c.decided
            else ""
        )
        out.append(
            f"{c.opened} cases were opened in the period, {c.open_now} still open and "
            f"{c.breached} past their SLA{verified}."
        )
    if report.forecast and report.forecast.points:
        f = report.forecast.points[0]
        out.append(
            f"The gap is forecast at {signed(f.value)} for {f.label} (80 % interval "
            f"{signed(f.low_80)} to {signed(f.high_80)})."
        )
    return out


__all__ = ["change", "delta", "interval", "signed", "summary", "value"]
