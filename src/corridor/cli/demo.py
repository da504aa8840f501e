"""``corridor demo``: a simulated company in a new embedded store, with its themes, alert rules,
example survey and a user per role, served (:mod:`corridor.cli.serve`)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from corridor.cli.common import NewStoreOpt, console
from corridor.cli.ingest import load_dataset, simulate_company
from corridor.cli.serve import HostOpt, PortOpt, listen_socket, run_server

DEMO_PASSWORD = "corridor-demo"


#: the demo's alert rules: a detractor opens a case; a month's significant drop of a touch
#: point's gap, a new expectation drift and a new harmful ripple of an operational event too
DEMO_RULES: tuple[tuple[str, str, dict[str, Any], str], ...] = (
    ("detractors", "detractor", {}, "normal"),
    ("gap-drop", "change",
     {"analysis": "gaps", "column": "mean_gap", "alpha": 0.01, "period": "month"}, "normal"),
    ("expectation-drift", "drift", {}, "normal"),
    ("ripples", "ripple", {}, "high"),
)  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add ``corridor demo`` to ``app``."""
    app.command()(demo)


def demo(
    store: NewStoreOpt = None,
    customers: Annotated[int, typer.Option(min=1, help="customers to simulate")] = 3000,
    months: Annotated[int, typer.Option(min=1, max=120, help="months to simulate")] = 12,
    seed: Annotated[int, typer.Option(help="random seed")] = 7,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8765,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="load, then exit")] = False,
    rules: Annotated[
        bool,
        typer.Option(
            "--rules/--no-rules",
            help="add the demo's alert rules and open the cases they find in the simulated year",
        ),
    ] = True,
) -> None:
    """Create the embedded store, simulate a company, load it, fit the churn and lifetime
    models, and serve it."""
    from corridor.store import open_store

    sock = None if no_serve else listen_socket(host, port)  # a port in use: say so first
    with open_store(store) as s:
        url, existing = s.url, s.count("interactions")
    if existing:
        console.print(f"{url} already holds {existing:,} interactions; serving it as it is")
    else:
        with tempfile.TemporaryDirectory(prefix="corridor-demo-") as tmp:
            simulate_company(customers, months, seed, Path(tmp), "parquet")
            load_dataset(store, Path(tmp))
        console.print(f"demo company loaded into {url}")
        _demo_themes(store)
        if rules:
            _demo_loop(store)
        _demo_survey(store)
    _demo_users(store, host, port)
    if sock is not None:  # the models fitted first: the first customer page shows them
        run_server(store, host, port, sock=sock, fit_first=True)


def _demo_loop(store: str | None) -> None:
    """The closed loop on the demo: its rules, and the cases they open today for what they find
    in the simulated year (aggregate rules replayed over it; detractors fire from now on)."""
    from datetime import UTC, datetime

    from corridor.loop import aggregate_rules, alerts
    from corridor.loop.rules import Rule, add_rule
    from corridor.store import open_store

    with open_store(store) as s:
        added = [
            add_rule(s, Rule(rid, kind, definition, priority=prio), actor="demo")
            for rid, kind, definition, prio in DEMO_RULES
        ]
        (end,) = s.query("SELECT max(occurred_at) FROM feedback")[0]
        opened = 0
        for rule in added:
            if rule.family != "aggregate" or end is None:
                continue
            hits = aggregate_rules.dry_run(s, rule, until=end)
            with s.transaction() as tx:
                opened += len(alerts.fire(tx, hits, datetime.now(UTC)))
    console.print(
        f"{len(added)} alert rules added; {opened} alerts raised on the simulated year open the "
        "demo's cases (see /cases and /rules)"
    )


def _demo_survey(store: str | None) -> None:
    """The example delivery survey (docs/surveys.md), ready to link and answer."""
    from corridor.store import open_store
    from corridor.surveys import catalog
    from corridor.surveys.example import delivery_pulse

    with open_store(store) as s:
        survey = delivery_pulse()
        catalog.save(s, survey, by="demo")
    console.print(
        f"survey {survey.id} loaded: `corridor surveys link {survey.id} --person ID` makes a "
        "personal link to its form"
    )


def _demo_themes(store: str | None) -> None:
    """Discover the demo's themes, as an analyst would with `corridor themes discover`."""
    from corridor.store import open_store
    from corridor.text.jobs import discover_themes

    with open_store(store) as s:
        themes = discover_themes(s, k=12)
    console.print(f"{len(themes)} themes discovered in the feedback texts")


def _demo_users(store: str | None, host: str, port: int) -> None:
    """One user per role (created once), and how to sign in as each."""
    from corridor.auth import accounts
    from corridor.store import open_store

    with open_store(store) as s:
        if not accounts.list_users(s):
            depts = [r[0] for r in s.query("SELECT DISTINCT department FROM touchpoints")]
            dept = "logistics" if "logistics" in depts else (sorted(depts) or ["service"])[0]
            top = s.query(
                "SELECT partner_id FROM interactions WHERE partner_id IS NOT NULL "
                "GROUP BY partner_id ORDER BY count(*) DESC, partner_id LIMIT 1"
            )
            partner = top[0][0] if top else "partner-1"
            for name, role, extra in (
                ("admin", "admin", {}),
                ("analyst", "analyst", {}),
                (f"head-{dept}", "department_head", {"department": dept}),
                (f"manager-{partner}", "partner_manager", {"partner": partner}),
                ("agent", "agent", {}),
            ):
                accounts.add_user(s, name, DEMO_PASSWORD, role, **extra)
        users = accounts.list_users(s)
    table = Table("sign in as", "role", "sees", title="Demo users")
    for u in users:
        table.add_row(u.username, u.role.value, u.principal().label)
    console.print(table)
    console.print(
        f"Open [bold]http://{host}:{port}/[/] and sign in with one of these users; "
        f"the demo users' password is [bold]{DEMO_PASSWORD}[/] (demo only: remove them with "
        "`corridor users remove` before sharing this store)."
    )
