"""Versioned schema. Migrations are append-only: never edit one that has shipped; add the next.

Each migration is SQL written once for both engines, with ``{json}``, ``{double}`` and ``{ts}``
standing for the engine's type names. ``schema_migrations`` records what has been applied, so a
store made by an older Corridor is upgraded in place and keeps every row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

TYPES = {
    "duckdb": {"json": "JSON", "double": "DOUBLE", "ts": "TIMESTAMPTZ"},
    "postgres": {"json": "JSONB", "double": "DOUBLE PRECISION", "ts": "TIMESTAMPTZ"},
}


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]

    def sql(self, dialect: str) -> list[str]:
        return [s.format(**TYPES[dialect]) for s in self.statements]


V1 = Migration(
    1,
    "core tables: corridor map, people, identities, records",
    (
        """CREATE TABLE corridor_maps (
            version INTEGER PRIMARY KEY, loaded_at {ts} NOT NULL, document {json} NOT NULL)""",
        """CREATE TABLE stages (position INTEGER PRIMARY KEY, key VARCHAR NOT NULL UNIQUE)""",
        """CREATE TABLE touchpoints (
            key VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, stage VARCHAR NOT NULL,
            stage_position INTEGER NOT NULL, position INTEGER NOT NULL,
            channels VARCHAR NOT NULL, department VARCHAR NOT NULL, description VARCHAR)""",
        """CREATE TABLE promises (
            key VARCHAR PRIMARY KEY, touchpoint VARCHAR NOT NULL, metric VARCHAR NOT NULL,
            operator VARCHAR NOT NULL, threshold {double} NOT NULL, target VARCHAR NOT NULL,
            source VARCHAR NOT NULL, description VARCHAR)""",
        """CREATE TABLE people (
            person_id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, created_at {ts},
            segment VARCHAR, region VARCHAR, attributes {json}, first_seen_at {ts} NOT NULL)""",
        """CREATE TABLE identities (
            id_type VARCHAR NOT NULL, id_value VARCHAR NOT NULL, person_id VARCHAR NOT NULL,
            first_seen_at {ts} NOT NULL, PRIMARY KEY (id_type, id_value))""",
        """CREATE TABLE interactions (
            interaction_id VARCHAR PRIMARY KEY, person_id VARCHAR NOT NULL,
            occurred_at {ts} NOT NULL, touchpoint VARCHAR NOT NULL, channel VARCHAR NOT NULL,
            partner_id VARCHAR, agent_id VARCHAR, outcome VARCHAR, value {double},
            duration_minutes {double}, attributes {json})""",
        """CREATE TABLE feedback (
            feedback_id VARCHAR PRIMARY KEY, person_id VARCHAR, occurred_at {ts} NOT NULL,
            touchpoint VARCHAR, interaction_id VARCHAR, partner_id VARCHAR,
            source VARCHAR NOT NULL, expectation {double}, experience {double}, nps INTEGER,
            csat INTEGER, ces INTEGER, emotion INTEGER, text VARCHAR, attributes {json})""",
        """CREATE TABLE operational_events (
            event_id VARCHAR PRIMARY KEY, department VARCHAR NOT NULL, kind VARCHAR NOT NULL,
            started_at {ts} NOT NULL, ended_at {ts}, touchpoints VARCHAR, region VARCHAR,
            description VARCHAR, attributes {json})""",
        """CREATE TABLE market_events (
            event_id VARCHAR PRIMARY KEY, occurred_at {ts} NOT NULL, kind VARCHAR NOT NULL,
            touchpoints VARCHAR, description VARCHAR, attributes {json})""",
        """CREATE TABLE employee_predictions (
            prediction_id VARCHAR PRIMARY KEY, department VARCHAR NOT NULL,
            touchpoint VARCHAR NOT NULL, period VARCHAR NOT NULL,
            predicted_experience {double} NOT NULL, attributes {json})""",
    ),
)

V2 = Migration(
    2,
    "identity merges made visible; ingest batch log",
    (
        # Which person a merged person now belongs to. Backfilled: every person is its own.
        "ALTER TABLE people ADD COLUMN canonical_id VARCHAR",
        "ALTER TABLE people ADD COLUMN merged_at {ts}",
        "UPDATE people SET canonical_id = person_id",
        """CREATE TABLE person_merges (
            merge_id VARCHAR PRIMARY KEY, from_person VARCHAR NOT NULL,
            into_person VARCHAR NOT NULL, id_type VARCHAR, id_value VARCHAR,
            merged_at {ts} NOT NULL, record_kind VARCHAR, record_id VARCHAR)""",
        """CREATE TABLE ingest_batches (
            batch_id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, source VARCHAR NOT NULL,
            received_at {ts} NOT NULL, accepted INTEGER NOT NULL, duplicates INTEGER NOT NULL,
            rejected INTEGER NOT NULL)""",
    ),
)

V3 = Migration(
    3,
    "feedback rollup: additive sums per UTC day and dimensions, kept fresh on ingest",
    (
        # One or more rows per (day, dimensions): the columns are additive (counts, sums, sums of
        # squares), so any number of rows per key sums to the same answer. Gap sums count the
        # records with both ratings, metric sums those with any of NPS, CSAT, CES.
        """CREATE TABLE feedback_rollup (
            day DATE NOT NULL, touchpoint VARCHAR, channel VARCHAR, partner VARCHAR,
            segment VARCHAR, region VARCHAR, source VARCHAR,
            gap_n BIGINT NOT NULL, gap_n_below BIGINT NOT NULL,
            gap_sum_expectation {double} NOT NULL, gap_sumsq_expectation {double} NOT NULL,
            gap_sum_experience {double} NOT NULL, gap_sumsq_experience {double} NOT NULL,
            gap_sum_gap {double} NOT NULL, gap_sumsq_gap {double} NOT NULL,
            metric_n BIGINT NOT NULL, metric_nps_n BIGINT NOT NULL,
            metric_promoters BIGINT NOT NULL, metric_detractors BIGINT NOT NULL,
            metric_csat_n BIGINT NOT NULL, metric_csat_top2 BIGINT NOT NULL,
            metric_ces_n BIGINT NOT NULL, metric_ces_easy BIGINT NOT NULL,
            metric_sum_ces {double} NOT NULL, metric_sumsq_ces {double} NOT NULL)""",
        # UTC days whose rollup rows are stale; the next read (or rollup.refresh) rebuilds them.
        "CREATE TABLE rollup_dirty (day DATE PRIMARY KEY)",
        # Backfill: every day with feedback is stale. Sessions run in UTC on both engines, so
        # CAST(... AS DATE) is the UTC day.
        "INSERT INTO rollup_dirty (day) SELECT DISTINCT CAST(occurred_at AS DATE) FROM feedback",
    ),
)

V4 = Migration(
    4,
    "users, roles, API keys and web sessions",
    (
        # role: admin, analyst, department_head, partner_manager, agent. department / partner
        # name what a department head or partner manager may see. Password hashes are argon2id.
        """CREATE TABLE users (
            username VARCHAR PRIMARY KEY, role VARCHAR NOT NULL, department VARCHAR,
            partner VARCHAR, password_hash VARCHAR NOT NULL, created_at {ts} NOT NULL)""",
        # Only a hash of each key is kept; key_id is the key's public prefix, shown in lists.
        """CREATE TABLE api_keys (
            key_id VARCHAR PRIMARY KEY, username VARCHAR NOT NULL, name VARCHAR,
            key_hash VARCHAR NOT NULL, created_at {ts} NOT NULL, revoked_at {ts})""",
        # Web sessions: the cookie holds a random token; the store keeps its SHA-256 only.
        """CREATE TABLE web_sessions (
            token_hash VARCHAR PRIMARY KEY, username VARCHAR NOT NULL,
            created_at {ts} NOT NULL, expires_at {ts} NOT NULL)""",
    ),
)

V5 = Migration(
    5,
    "voice of the customer: text analysis per feedback, themes, original texts",
    (
        # One row per analysed feedback text (the stored text is already redacted). emotions is
        # a comma-separated list of facet names ('' for none); theme_id names text_themes.
        """CREATE TABLE text_analysis (
            feedback_id VARCHAR PRIMARY KEY, sentiment {double} NOT NULL,
            sentiment_label VARCHAR NOT NULL, intent VARCHAR NOT NULL, emotions VARCHAR NOT NULL,
            theme_id VARCHAR, model VARCHAR NOT NULL, analyzed_at {ts} NOT NULL)""",
        # Themes found in a body of texts. model_data: what assigning new texts needs (term
        # weights, or an embedding centroid). An analyst's rename sets renamed; a merge sets
        # merged_into; a later discovery retires the themes it replaces.
        """CREATE TABLE text_themes (
            theme_id VARCHAR PRIMARY KEY, label VARCHAR NOT NULL, keywords {json} NOT NULL,
            model VARCHAR NOT NULL, model_data {json}, renamed BOOLEAN NOT NULL,
            merged_into VARCHAR, created_at {ts} NOT NULL, retired_at {ts})""",
        # Feedback texts as received, before redaction: only with keep_original_text on, only
        # for texts redaction changed, for administrators only.
        """CREATE TABLE feedback_text_original (
            feedback_id VARCHAR PRIMARY KEY, text VARCHAR NOT NULL, stored_at {ts} NOT NULL)""",
    ),
)

V6 = Migration(
    6,
    "sign-in throttle per account and client address",
    (
        # Failed sign-ins per (username, client address) pair; cleared by a successful sign-in.
        # locked_until: when this pair may try again (backoff doubles with each failure past the
        # limit). Kept in the store so every server process on it shares the throttle.
        """CREATE TABLE login_failures (
            username VARCHAR NOT NULL, address VARCHAR NOT NULL, failures INTEGER NOT NULL,
            last_failed_at {ts} NOT NULL, locked_until {ts}, PRIMARY KEY (username, address))""",
    ),
)

MIGRATIONS: tuple[Migration, ...] = (V1, V2, V3, V4, V5, V6)
LATEST = MIGRATIONS[-1].version

BOOKKEEPING = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at {ts} NOT NULL)"""

Executor = Callable[[str], None]


def pending(current: int, target: int = LATEST) -> list[Migration]:
    return [m for m in MIGRATIONS if current < m.version <= target]
