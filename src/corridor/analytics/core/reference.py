"""The analyses' reference (``docs/reference.md``), written from the registry.

``python -m corridor.analytics.core.reference > docs/reference.md`` (or ``scripts/reference-docs``)
writes it; a test fails when the file and the registry disagree, so the reference cannot drift.
"""

from __future__ import annotations

from corridor.analytics.core import registry
from corridor.analytics.core.registry import Analysis

HEADER = """# Analyses reference

Every analysis, as declared once in the registry (`corridor.analytics.core.registry`): its API
route, its `corridor` command, its Python SDK method, its parameters and result columns. This
file is generated (`scripts/reference-docs`); do not edit it by hand.

Common to all: lists take comma-separated values or the parameter repeated (`by=touchpoint,region`
or `by=touchpoint&by=region`; `--by touchpoint,region` or `--by touchpoint --by region`); a
filter is a query parameter named after its dimension (`region=north`), or `--where
region=north` on the command line, and an empty value selects records without one; `by=` given
empty means no grouping, left out the default. Every reply carries `n`, `confidence`, `method`,
`query` and `rows`. How to add an analysis: docs/python.md#adding-an-analysis.
"""


def _words(a: Analysis) -> str:
    return " ".join(a.command or (a.name,))


def entry(a: Analysis) -> str:
    """The reference entry of one analysis."""
    lines = [
        f"## {a.name}: {a.title}",
        "",
        a.description,
        "",
        f"- API: `GET /api/v1{a.path}`",
    ]
    if not a.person:
        lines += [f"- CLI: `corridor {_words(a)}`", f"- SDK: `connection.{a.name}(...)`"]
    rule = a.scope
    if rule is not None:
        lines.append(f"- Scoped roles: {rule.note}")
    if a.audience == "everyone":
        lines.append("- Who: every signed-in role (scoped roles within their scope)")
    params = [*a.parameters(), *a.filter_params()]
    if params:
        lines += ["", "| parameter | type | meaning |", "|---|---|---|"]
        for p in a.parameters():
            lines.append(f"| `{p.name}` | {p.kind} | {p.describe()} |")
        if a.filters:
            lines.append(
                f"| a dimension | list | filter by {', '.join(a.filters)} (empty value: none) |"
            )
    if a.columns:
        lines += ["", "| column | type | meaning |", "|---|---|---|"]
        for c in a.columns:
            lines.append(f"| `{c.name}` | {c.type} | {c.help} |")
    if a.extras:
        lines += ["", f"Also in the reply: {', '.join(f'`{e}`' for e in a.extras)}."]
    return "\n".join(lines)


def markdown() -> str:
    """The whole reference, in registry order, grouped by tag."""
    found = registry.analyses().values()
    tags = list(dict.fromkeys(a.tag for a in found))
    parts = [HEADER]
    for tag in tags:
        parts.append(f"# {tag.capitalize()}\n")
        parts.extend(entry(a) + "\n" for a in found if a.tag == tag)
    return "\n".join(parts)


if __name__ == "__main__":  # pragma: no cover
    print(markdown(), end="")
