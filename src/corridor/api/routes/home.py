"""``GET /``: a small landing page (no external assets) until the dashboard arrives."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

import corridor
from corridor.api.deps import IngestorDep, StoreDep
from corridor.api.routes.health import record_counts, redact

router = APIRouter()

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Corridor</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 3rem auto;
       padding: 0 1rem; color: #1d2530; }}
h1 {{ margin-bottom: 0; }} .sub {{ color: #5b6675; margin-top: .2rem; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
td {{ padding: .2rem 1.2rem .2rem 0; border-bottom: 1px solid #e3e7ec; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
code {{ background: #f1f3f6; padding: 0 .25rem; }}
</style></head>
<body>
<h1>Corridor</h1>
<p class="sub">Open-source Customer Experience Management &middot; v{version}</p>
<p>Corridor measures the gap between what customers expected and what they experienced at every
touch point of the customer corridor, explains it, attributes it to the department or partner
that caused it, and helps close it.</p>
<p>Store: <code>{store}</code> &middot; corridor map: {map}</p>
<table>{rows}</table>
<p>Send records with <code>POST /api/v1/&lt;kind&gt;</code> (one JSON object, an array, or
NDJSON). API reference: <a href="/docs">/docs</a> &middot;
<a href="/openapi.json">/openapi.json</a> &middot; <a href="/api/v1/health">health</a>.</p>
</body></html>
"""


@router.get("/", include_in_schema=False, response_class=HTMLResponse)
def home(store: StoreDep, ingestor: IngestorDep) -> HTMLResponse:
    counts = record_counts(store)
    rows = "".join(
        f'<tr><td>{escape(name.replace("_", " "))}</td><td class="n">{n:,}</td></tr>'
        for name, n in counts.items()
    )
    cmap = ingestor.corridor_map
    map_text = f"{len(cmap.touchpoints)} touch points" if cmap else "none loaded yet"
    return HTMLResponse(
        _PAGE.format(
            version=escape(corridor.__version__),
            store=escape(redact(store.url)),
            map=escape(map_text),
            rows=rows,
        )
    )
