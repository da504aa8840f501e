"""The report rendered from its content: HTML for print (charts inline as vector SVG), HTML for
e-mail (charts as PNG images referenced by ``cid:``, inline styles only), and plain text (the
e-mail's alternative part). One template serves both HTML forms, so they say the same."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from functools import cache
from typing import Any

import jinja2
import orjson
from markupsafe import Markup

from corridor.reports import words
from corridor.reports.charts import Chart, charts
from corridor.reports.content import TREND_PERIODS, as_dict
from corridor.reports.model import THEMES_HEADING, Report, format_p, is_real, plain_quote

#: the width of the e-mail's body (px): what common clients show without scrolling
MAIL_WIDTH = 640


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("corridor.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
    )


def _render(report: Report, drawn: dict[str, Chart], *, for_print: bool) -> str:
    def img(chart: Chart) -> Markup:
        if for_print:
            svg = chart.svg.replace("<svg ", '<svg style="width:100%;height:auto" role="img" ', 1)
            # matplotlib's own drawing of our numbers: markup, not text to escape
            return Markup(f'<figure style="margin:0">{svg}</figure>')
        return Markup(
            f'<img src="cid:{chart.name}@corridor" width="{MAIL_WIDTH}" alt="{{}}" '
            'style="display:block;width:100%;max-width:{w}px;height:auto;border:0">'
        ).format(chart.title + ": " + chart.alt, w=MAIL_WIDTH)

    return (
        _env()
        .get_template("report.html.j2")
        .render(
            report=report,
            summary=words.summary(report),
            words=words,
            charts=drawn,
            img=img,
            fmt_p=format_p,
            real=is_real,
            for_print=for_print,
            width=720 if for_print else MAIL_WIDTH,
            trend_periods=TREND_PERIODS,
        )
    )


def html(report: Report) -> str:
    """The report as one self-contained HTML page with vector charts (what the PDF prints)."""
    return _render(report, charts(report), for_print=True)


def as_file(report: Report, fmt: str, *, indent: bool = False) -> bytes:
    """The report as a file of ``fmt``: json (indented with ``indent``), text, html or pdf (the
    HTML printed by Chromium)."""
    if fmt == "json":
        return orjson.dumps(
            as_dict(report), default=str, option=orjson.OPT_INDENT_2 if indent else None
        )
    if fmt == "text":
        return text(report).encode()
    page = html(report)
    if fmt == "html":
        return page.encode()
    from corridor.reports.pdf import to_pdf

    return to_pdf(page)


def text(report: Report) -> str:
    """The report as plain text (the e-mail's alternative part)."""
    wrap = textwrap.TextWrapper(width=78)
    lines = [report.title, "=" * min(len(report.title), 78), ""]
    lines += [f"Prepared for {report.reader}; intervals are {report.confidence:.0%}.", ""]
    lines += [*report.notes]
    for para in words.summary(report):
        lines += [*wrap.wrap(para), ""]
    lines += ["Headline figures", "----------------"]
    for fig in report.headline:
        lines.append(f"{fig.label}: {words.value(fig)} ({words.interval(fig, report.confidence)})")
        lines += ["  " + x for x in wrap.wrap(words.change(fig))]
    if report.movers:
        lines += ["", "Touch points that moved most", "----------------------------"]
        for m in report.movers:
            p = f", {format_p(m.p_value)}" if m.p_value is not None else ""
            lines.append(
                f"{m.touchpoint}: gap {m.gap:+.2f} ({m.low:+.2f} to {m.high:+.2f}; n = {m.n:,}), "
                f"change {m.delta:+.2f}{p}"
            )
    if report.forecast:
        lines += ["", f"Forecast of the gap ({report.forecast.model})", "-------------------"]
        for f in report.forecast.points:
            lines.append(
                f"{f.label}: {f.value:+.2f} (80 % {f.low_80:+.2f} to {f.high_80:+.2f}; "
                f"95 % {f.low_95:+.2f} to {f.high_95:+.2f})"
            )
    if report.themes:
        lines += ["", THEMES_HEADING, "-" * len(THEMES_HEADING)]
        for t in report.themes:
            lines.append(f"{t.label}: {t.share:.0%} of {t.group_n:,} texts (n = {t.n})")
            lines += [f"  {plain_quote(q)}" for q in t.quotes]
    c = report.cases
    lines += ["", "The closed loop", "---------------"]
    lines.append(f"{c.opened} cases opened, {c.open_now} still open, {c.breached} past their SLA")
    if c.verified_share is not None:
        lines.append(
            f"fix verified in {c.verified_share:.0%} ({c.verified_low:.0%}–"
            f"{c.verified_high:.0%}; {c.verified} of n = {c.decided})"
        )
    lines += ["", "The attached PDF holds the charts and every table."]
    return "\n".join(lines).replace("−", "-") + "\n"


@dataclass(frozen=True)
class MailParts:
    """What a report's e-mail holds: subject, plain text, HTML and its PNG charts by
    Content-ID (without the angle brackets)."""

    subject: str
    text: str
    html: str
    images: dict[str, bytes]

    def as_payload(self) -> dict[str, Any]:
        """JSON-friendly, for an outbox row (images base64)."""
        import base64

        return {
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "images": {k: base64.b64encode(v).decode() for k, v in self.images.items()},
        }


def mail(report: Report) -> MailParts:
    """The report as an e-mail: subject, plain text and HTML with ``cid:`` chart images."""
    drawn = charts(report)
    body = _render(report, drawn, for_print=False)
    images = {f"{c.name}@corridor": c.png for c in drawn.values()}
    subject = f"CX report: {report.subject.label}, {report.period.label}"
    gap = report.gap
    if gap.value is not None:
        subject += f" — gap {words.value(gap)}, {gap.direction or 'no comparison'}"
    return MailParts(subject, text(report), body, images)


__all__ = ["MAIL_WIDTH", "MailParts", "html", "mail", "text"]
