"""A small store for the privacy tests: a dozen other people and one subject merged from two
sender ids, with every kind of personal data (identities, interactions, feedback with a text
and its kept original, an alert and a case with a note, a personal survey link, a
notification mail)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from corridor.ingest.pipeline import Ingestor
from corridor.loop import cases, outbox
from corridor.loop.rules import Rule, add_rule
from corridor.store import Store

EMAIL = "zelda.quux@example.org"
PHONE = "+15550199887"
CRM = "CRM-7731-QX"
PHRASE = "purple walrus tangerine"
#: the subject's two sender ids, merged by their shared e-mail (web-77 seen first)
SUBJECT = "web-77"
MERGED = "crm-77"
OTHERS = [f"o-{i:02d}" for i in range(12)]


def _ts(days_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()


def build(store: Store, ingestor: Ingestor) -> None:
    add_rule(store, Rule("detractors", "detractor"), actor="ana")
    ingestor.ingest(
        "people",
        pa.table(
            {
                "person_id": [*OTHERS, SUBJECT],
                "kind": ["customer"] * len(OTHERS) + ["prospect"],
                "segment": ["smb", "enterprise"] * (len(OTHERS) // 2) + ["smb"],
                "region": ["north"] * len(OTHERS) + ["north"],
                "email": [f"{p}@example.com" for p in OTHERS] + [EMAIL],
            }
        ),
    )
    ingestor.ingest(
        "people",
        pa.table(
            {
                "person_id": [MERGED],
                "kind": ["customer"],
                "email": [EMAIL],
                "crm_id": [CRM],
                "phone": [PHONE],
                "segment": ["smb"],
                "region": ["north"],
            }
        ),
    )
    persons = [*OTHERS, SUBJECT, MERGED]
    n = len(persons)
    ingestor.ingest(
        "interactions",
        pa.table(
            {
                "interaction_id": [f"i-{p}" for p in persons],
                "person_id": persons,
                "occurred_at": [_ts(3 + i % 4) for i in range(n)],
                "touchpoint": ["checkout"] * n,
                "channel": ["web"] * n,
            }
        ),
    )
    texts = [f"fine service number {i}" for i in range(len(OTHERS))] + [
        f"The {PHRASE} parcel was late, call me on {PHONE} or {EMAIL}",
        f"Again the {PHRASE} story; my CRM number is {CRM}",
    ]
    ingestor.ingest(
        "feedback",
        pa.table(
            {
                "feedback_id": [f"f-{p}" for p in persons],
                "person_id": persons,
                "interaction_id": [f"i-{p}" for p in persons],
                "occurred_at": [_ts(1 + i % 3) for i in range(n)],
                "touchpoint": ["checkout"] * n,
                "source": ["survey"] * n,
                "expectation": [float(6 + i % 3) for i in range(n)],
                "experience": [float(4 + i % 5) for i in range(n)],
                "nps": [8 - i % 6 for i in range(n - 2)] + [1, 2],
                "text": texts,
            }
        ),
    )
    case_id = store.query("SELECT case_id FROM cases WHERE person_id = ?", (MERGED,))
    case_id = case_id or store.query("SELECT case_id FROM cases WHERE person_id = ?", (SUBJECT,))
    cases.add_note(store, None, case_id[0][0], f"called {PHONE}, {PHRASE} again", actor="ana")
    # someone else's case quotes the subject's CRM id and e-mail in a note
    other = store.query(
        "SELECT case_id FROM cases WHERE person_id NOT IN (?, ?) LIMIT 1", (SUBJECT, MERGED)
    )[0][0]
    cases.add_note(store, None, other, f"same issue as {CRM} ({EMAIL})", actor="ana")
    with store.transaction() as tx:
        outbox.enqueue(
            tx,
            "survey.invitation",
            {"person_id": SUBJECT, "email": EMAIL, "subject": "How was your delivery?"},
            key="inv-web-77",
            emails=[EMAIL],
        )
        outbox.enqueue(
            tx,
            "survey.invitation",
            {"person_id": "o-01"},
            key="inv-o-01",
            emails=["o-01@example.com"],
        )
