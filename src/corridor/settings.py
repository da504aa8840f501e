"""Settings for a running Corridor (server and CLI). Built once, passed in; never a global."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, Field


class Settings(BaseModel):
    """What a Corridor process needs to know. Environment variables prefixed ``CORRIDOR_``."""

    store_url: str | None = Field(
        default=None,
        description="store URL: duckdb:///path/file.duckdb or postgresql://user@host/db; "
        "default ./corridor-data/corridor.duckdb",
    )
    max_body_bytes: int = Field(
        default=64 * 1024 * 1024, description="largest accepted request body, in bytes"
    )
    max_batch_records: int = Field(
        default=200_000, description="most records accepted in one request"
    )
    max_errors_reported: int = Field(
        default=1000, description="most rejection details listed in one ingest reply"
    )
    auth: Literal["on", "off"] = Field(
        default="on",
        description="on: every page and API route needs a signed-in user or an API key; off: "
        "everyone is an admin (a single-user machine only; never on a shared network)",
    )
    secure_cookies: bool = Field(
        default=False, description="mark the session cookie Secure (set it behind HTTPS)"
    )
    keep_original_text: bool = Field(
        default=False,
        description="keep feedback texts as received, before PII redaction, in a table only "
        "administrators may read (off: only the redacted text is stored)",
    )
    text_analysis: Literal["background", "inline", "off"] = Field(
        default="background",
        description="when feedback texts are scored (sentiment, intent, emotions, theme) with "
        "the default lexicon model: background = right after each batch commits (the server's "
        "worker; `corridor import` afterwards, with a progress bar), inline = inside the ingest "
        "transaction (slower ingest), off = only by `corridor text analyze`",
    )
    rollup_upkeep: Literal["background", "inline"] = Field(
        default="background",
        description="how the server keeps the feedback rollup current as new feedback arrives: "
        "background = each batch queues its records and a worker folds them into the rollup "
        "right after the commit (answers count queued records from the base tables meanwhile, "
        "so they are exact), inline = each batch adds its rollup rows inside its own "
        "transaction (slower ingest)",
    )
    model_refresh: Literal["background", "on_request"] = Field(
        default="background",
        description="churn-risk and lifetime models on customer pages: fitted by a background "
        "thread (pages show the latest fit, never wait), or on the request that finds the store "
        "changed (small stores, tests)",
    )
    answer_max_stale_s: float = Field(
        default=10.0,
        ge=0,
        description="seconds a kept analysis answer (API or dashboard page) may lag the latest "
        "write and still be served, while one background recomputation replaces it; the "
        "Corridor-Data-Behind header says by how much (0: every write makes the next answer "
        "fresh; an erasure or any other removal always does)",
    )
    trusted_origins: str = Field(
        default="",
        description="comma-separated origins (https://cx.example.com) besides the server's own "
        "address whose pages may send changes with a session cookie: a reverse proxy's public "
        "address",
    )
    scheduler: Literal["on", "off"] = Field(
        default="on",
        description="on: the server runs the scheduled jobs (webhook and e-mail delivery, "
        "digests, SLA escalation, aggregate rules; `corridor jobs list`), one process at a time "
        "per job; off: this process runs none (tests, or a server that only answers requests)",
    )
    lake_sync: str | None = Field(
        default=None,
        description="a lake folder (see `corridor lake sync`): the server's scheduler brings it up "
        "to date with the store every lake_sync_every_s seconds (job lake.sync, one process at a "
        "time; on a lake store, its ops= store is synced); unset: no scheduled sync",
    )
    lake_sync_every_s: float = Field(
        default=900.0,
        gt=0,
        description="seconds between two scheduled lake syncs (a sync that finds nothing new "
        "still reads every record of the store: about 12 s for 1.5 M records)",
    )
    webhook_timeout_s: float = Field(
        default=10.0, gt=0, description="seconds a webhook receiver has to answer one attempt"
    )
    outbox_max_attempts: int = Field(
        default=8,
        ge=1,
        description="attempts to deliver one notification before it is marked failed "
        "(`corridor webhooks redeliver` sends a failed one again)",
    )
    outbox_retry_base_s: float = Field(
        default=10.0,
        gt=0,
        description="delay before the first retry; each next one waits three times longer (with "
        "jitter, at most 6 hours): 10 s, 30 s, 90 s, 4.5 min, 13.5 min, 40 min, 2 h",
    )
    smtp_host: str | None = Field(
        default=None, description="SMTP server for e-mail notifications (unset: e-mail is off)"
    )
    smtp_port: int = Field(default=25, description="SMTP port (587 with smtp_starttls)")
    smtp_from: str = Field(
        default="corridor@localhost", description="the From address of notification mails"
    )
    smtp_starttls: bool = Field(
        default=False, description="upgrade the SMTP connection with STARTTLS before sending"
    )
    smtp_user: str | None = Field(default=None, description="SMTP login (unset: no login)")
    smtp_password: str | None = Field(default=None, description="SMTP password")
    smtp_timeout_s: float = Field(default=30.0, gt=0, description="SMTP connection timeout")
    public_url: str | None = Field(
        default=None,
        description="the address customers reach this server at, for the survey links in "
        "invitation mails (e.g. https://feedback.example.com; unset: http://host:port)",
    )
    host: str = "127.0.0.1"
    port: int = 8765

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env: dict[str, object] = {}
        for name in cls.model_fields:
            value = os.environ.get(f"CORRIDOR_{name.upper()}")
            if value is not None:
                env[name] = value
        if "store_url" not in env and os.environ.get("CORRIDOR_STORE"):
            env["store_url"] = os.environ["CORRIDOR_STORE"]
        env.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(env)
