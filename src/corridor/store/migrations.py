"""Versioned schema. Migrations are append-only: never edit one that has shipped; add the next.

Each migration is SQL written once for both engines, with ``{json}``, ``{double}`` and ``{ts}``
standing for the engine's type names. ``schema_migrations`` records what has been applied, so a
store made by an older Corridor is upgraded in place and keeps every row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

TYPES = {
    "duckdb": {"json": "JSON", "double": "DOUBLE", "ts": "TIMESTAMPTZ"},
    "postgres": {"json": "JSONB", "double": "DOUBLE PRECISION", "ts": "TIMESTAMPTZ"},
}


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]
    #: statements for one engine only, run after the shared ones (indexes, extensions)
    engine_statements: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def sql(self, dialect: str) -> list[str]:
        both = (*self.statements, *self.engine_statements.get(dialect, ()))
        return [s.format(**TYPES[dialect]) for s in both]


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

#: a stored phone as its digits: the customer search's expression (corridor.store.people_search)
_PHONE_DIGITS = "regexp_replace(id_value, '[^0-9]', '', 'g')"


def _trigram(name: str, table: str, expression: str, where: str = "") -> str:
    """A trigram index, made only where ``pg_trgm`` is installed: without it the search scans,
    and the migration still succeeds."""
    where = f" WHERE {where}" if where else ""
    sql = f"CREATE INDEX {name} ON {table} USING gin (({expression}) gin_trgm_ops){where}"
    return f"""DO $$ BEGIN
        IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
            EXECUTE '{sql.replace("'", "''")}';
        END IF;
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'customer search index {name} not made (%); searches scan', SQLERRM;
    END $$"""


V7 = Migration(
    7,
    "customer search: a person's records and identities by index; trigram indexes on PostgreSQL",
    (
        # A person's timeline, and the last activity and counts of the people a search finds,
        # read their records by person: without these, each read scans every interaction
        # (~0.5 s at 10 M on DuckDB, more on PostgreSQL).
        "CREATE INDEX interactions_person ON interactions (person_id)",
        "CREATE INDEX feedback_person ON feedback (person_id)",
        "CREATE INDEX identities_person ON identities (person_id)",
    ),
    {
        # PostgreSQL also finds the members of a person group by index, and parts of ids,
        # e-mails and phones with pg_trgm where it may be installed (a superuser, or a
        # database owner where the extension is trusted); else the search scans. DuckDB
        # scans people and identities (tens of milliseconds at 364,000 people).
        "postgres": (
            "CREATE INDEX people_canonical ON people (canonical_id)",
            """DO $$ BEGIN
                CREATE EXTENSION IF NOT EXISTS pg_trgm;
            EXCEPTION WHEN OTHERS THEN
                RAISE NOTICE 'pg_trgm not installed (%); customer searches scan', SQLERRM;
            END $$""",
            _trigram("people_id_trgm", "people", "lower(person_id)"),
            _trigram("identities_value_trgm", "identities", "lower(id_value)"),
            _trigram("identities_phone_trgm", "identities", _PHONE_DIGITS, "id_type = 'phone'"),
        ),
    },
)

V8 = Migration(
    8,
    "closed loop plumbing: the outbox, webhook endpoints, delivery log, jobs, notification prefs",
    (
        "CREATE SEQUENCE outbox_ids START 1",
        "CREATE SEQUENCE webhook_endpoint_ids START 1",
        # Webhook receivers. secret: whsec_<base64>, used to sign (so kept as is); event_types:
        # comma-separated types or prefixes ending in '*' ('' for every event); allow_private:
        # an admin let this endpoint reach private, loopback or link-local addresses.
        """CREATE TABLE webhook_endpoints (
            id BIGINT PRIMARY KEY DEFAULT nextval('webhook_endpoint_ids'), url VARCHAR NOT NULL,
            secret VARCHAR NOT NULL, event_types VARCHAR NOT NULL, enabled BOOLEAN NOT NULL,
            allow_private BOOLEAN NOT NULL, description VARCHAR, created_at {ts} NOT NULL)""",
        # One row per notification and target, written in the transaction of the change that
        # caused it. target_kind: webhook (target = endpoint id), email (an address) or digest
        # (a username; collected into one mail per period). state: pending, delivered, failed,
        # digested (folded into a digest mail), cancelled (its endpoint was removed). A claim
        # (lease_owner, lease_until) keeps other senders off a row while it is being sent.
        """CREATE TABLE outbox (
            id BIGINT PRIMARY KEY DEFAULT nextval('outbox_ids'),
            idempotency_key VARCHAR NOT NULL, event_type VARCHAR NOT NULL,
            payload {json} NOT NULL, created_at {ts} NOT NULL, target_kind VARCHAR NOT NULL,
            target VARCHAR NOT NULL, state VARCHAR NOT NULL, attempts INTEGER NOT NULL,
            next_attempt_at {ts} NOT NULL, lease_owner VARCHAR, lease_until {ts},
            last_error VARCHAR, delivered_at {ts},
            UNIQUE (idempotency_key, target_kind, target))""",
        # Every attempt to deliver an outbox row: HTTP status (or SMTP reply code), how long it
        # took, and the error in words when it failed.
        """CREATE TABLE deliveries (
            outbox_id BIGINT NOT NULL, attempt INTEGER NOT NULL, attempted_at {ts} NOT NULL,
            status_code INTEGER, duration_ms {double} NOT NULL, error VARCHAR,
            PRIMARY KEY (outbox_id, attempt))""",
        # The scheduler's jobs: when each ran and runs next (kept across restarts), and the
        # lease of the process running it now (one at a time across every server process).
        """CREATE TABLE jobs (
            name VARCHAR PRIMARY KEY, every_s {double} NOT NULL, last_started_at {ts},
            last_finished_at {ts}, next_run_at {ts} NOT NULL, lease_owner VARCHAR,
            lease_until {ts}, last_status VARCHAR, last_message VARCHAR, runs BIGINT NOT NULL)""",
        # How a user wants notifications: mode immediate (one mail each), digest (one mail per
        # digest period: hourly or daily) or off.
        """CREATE TABLE notification_prefs (
            username VARCHAR PRIMARY KEY, email VARCHAR NOT NULL, mode VARCHAR NOT NULL,
            digest VARCHAR NOT NULL, last_digest_at {ts})""",
    ),
    # the due rows are found by an index on PostgreSQL; DuckDB scans (an index there would
    # turn each state change into a delete and an insert)
    {"postgres": ("CREATE INDEX outbox_due ON outbox (state, next_attempt_at)",)},
)

V9 = Migration(
    9,
    "closed loop: alert rules, alerts, cases with SLA clocks, case history, root causes",
    (
        # A rule: family 'record' (evaluated on each committed batch) or 'aggregate' (on a
        # schedule over an analysis); kind and definition say what it watches; scope narrows it
        # (touchpoint, department, partner, segment, region: lists of values); cooldown_s: the
        # same subject is not alerted twice for the rule within it.
        """CREATE TABLE alert_rules (
            rule_id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, family VARCHAR NOT NULL,
            kind VARCHAR NOT NULL, definition {json} NOT NULL, scope {json} NOT NULL,
            cooldown_s BIGINT NOT NULL, priority VARCHAR NOT NULL, team VARCHAR,
            sla_policy VARCHAR, reopen_unverified BOOLEAN NOT NULL, enabled BOOLEAN NOT NULL,
            created_at {ts} NOT NULL, created_by VARCHAR, disabled_at {ts}, disabled_by VARCHAR,
            evaluated_at {ts})""",
        # One row per alert a rule fired; subject is what de-duplication keys on (a customer, a
        # touch point, a group of an analysis); occurred_at the time of what fired it.
        """CREATE TABLE alerts (
            alert_id VARCHAR PRIMARY KEY, rule_id VARCHAR NOT NULL, subject VARCHAR NOT NULL,
            occurred_at {ts} NOT NULL, fired_at {ts} NOT NULL, record_kind VARCHAR,
            record_id VARCHAR, person_id VARCHAR, touchpoint VARCHAR, department VARCHAR,
            partner_id VARCHAR, region VARCHAR, segment VARCHAR, summary VARCHAR NOT NULL,
            evidence {json}, case_id VARCHAR)""",
        "CREATE INDEX alerts_rule_subject ON alerts (rule_id, subject)",
        # A case: cause (rule and subject) lets later alerts join the open one; the SLA clocks
        # are due times in business hours, moved on by the business minutes spent paused
        # (paused_minutes; paused_at is set while a clock is stopped).
        """CREATE TABLE cases (
            case_id VARCHAR PRIMARY KEY, title VARCHAR NOT NULL, rule_id VARCHAR,
            cause VARCHAR, state VARCHAR NOT NULL, priority VARCHAR NOT NULL, assignee VARCHAR,
            department VARCHAR, partner_id VARCHAR, team VARCHAR, touchpoint VARCHAR,
            person_id VARCHAR, region VARCHAR, segment VARCHAR, opened_at {ts} NOT NULL,
            updated_at {ts} NOT NULL, last_alert_at {ts}, alerts INTEGER NOT NULL,
            sla_policy VARCHAR NOT NULL, first_response_due {ts}, resolution_due {ts},
            first_response_at {ts}, resolved_at {ts}, closed_at {ts}, paused_at {ts},
            paused_minutes {double} NOT NULL, first_response_breached_at {ts},
            resolution_breached_at {ts}, escalation_level INTEGER NOT NULL,
            root_cause VARCHAR, root_cause_event VARCHAR, verification VARCHAR,
            verify_after {ts}, verified_at {ts}, verification_detail {json})""",
        # Who changed what, when: every change of a case, notes included (action 'note').
        """CREATE TABLE case_events (
            event_id VARCHAR PRIMARY KEY, case_id VARCHAR NOT NULL, seq INTEGER NOT NULL,
            changed_at {ts} NOT NULL, actor VARCHAR NOT NULL, action VARCHAR NOT NULL,
            field VARCHAR, old_value VARCHAR, new_value VARCHAR, note VARCHAR)""",
        "CREATE INDEX case_events_case ON case_events (case_id)",
        # The root causes a case may be given (configurable; these are the defaults).
        """CREATE TABLE case_root_causes (
            key VARCHAR PRIMARY KEY, label VARCHAR NOT NULL, position INTEGER NOT NULL)""",
        """INSERT INTO case_root_causes (key, label, position) VALUES
            ('process', 'A process or policy of ours', 1),
            ('staff', 'Staff behaviour or skill', 2),
            ('partner', 'A partner acting for us', 3),
            ('product', 'The product itself', 4),
            ('system', 'A system or tool failed', 5),
            ('communication', 'What we said or promised', 6),
            ('operational_event', 'An operational event (linked)', 7),
            ('expectation', 'The customer expected something we do not offer', 8),
            ('external', 'Outside our control', 9),
            ('unknown', 'Not found', 10)""",
        # SLA policies by name: business-hours calendar and targets per priority (JSON).
        """CREATE TABLE sla_policies (
            name VARCHAR PRIMARY KEY, definition {json} NOT NULL, updated_at {ts} NOT NULL)""",
    ),
)

V10 = Migration(
    10,
    "churn-risk scores per person, the baseline of churn_jump rules",
    (
        # Each person's churn risk at the latest scoring (after each refit of the churn model):
        # a churn_jump rule compares the next scoring with it.
        """CREATE TABLE churn_scores (
            person_id VARCHAR PRIMARY KEY, risk {double}, scored_at {ts} NOT NULL)""",
    ),
)

V11 = Migration(
    11,
    "hosted surveys: definitions and their versions, personal and anonymous links, responses",
    (
        # A survey and its latest version; every version's document is kept in survey_versions
        # (a response keeps the version it answered). touchpoints: ';'-separated keys.
        """CREATE TABLE surveys (
            survey_id VARCHAR PRIMARY KEY, title VARCHAR NOT NULL, version INTEGER NOT NULL,
            touchpoints VARCHAR NOT NULL, languages VARCHAR NOT NULL,
            fallback_language VARCHAR NOT NULL, created_at {ts} NOT NULL,
            updated_at {ts} NOT NULL)""",
        """CREATE TABLE survey_versions (
            survey_id VARCHAR NOT NULL, version INTEGER NOT NULL, digest VARCHAR NOT NULL,
            document {json} NOT NULL, loaded_at {ts} NOT NULL, loaded_by VARCHAR,
            PRIMARY KEY (survey_id, version))""",
        # A link: kind personal (one person, optionally the interaction it asks about; one
        # completed response) or anonymous (a touch point; many responses). Only the SHA-256 of
        # its token is kept. version: the survey's version when the link was made; channel: how
        # it reaches people (email, sms, qr, web, ...). used_at: a personal link's response was
        # submitted.
        """CREATE TABLE survey_links (
            link_id VARCHAR PRIMARY KEY, token_hash VARCHAR NOT NULL UNIQUE,
            kind VARCHAR NOT NULL, survey_id VARCHAR NOT NULL, version INTEGER NOT NULL,
            person_id VARCHAR, interaction_id VARCHAR, touchpoint VARCHAR NOT NULL,
            channel VARCHAR, language VARCHAR, created_at {ts} NOT NULL, created_by VARCHAR,
            expires_at {ts}, revoked_at {ts}, used_at {ts})""",
        "CREATE INDEX survey_links_survey ON survey_links (survey_id)",
        # A response: opened (created_at) on the first visit, started at the first saved
        # answer, saved_at at each save, submitted_at when sent. state: open, submitting (the
        # answer is acknowledged and its feedback record is being written; finished by the next
        # visit or by the server's start), submitted, rejected (the ingest refused the record;
        # error says why). form_hash: SHA-256 of the form's token (the hidden field against
        # forged posts; the resume cookie of an anonymous response). record: the feedback
        # record as acknowledged, written again as is after a crash; feedback_id is derived
        # from response_id, so it is stored once.
        """CREATE TABLE survey_responses (
            response_id VARCHAR PRIMARY KEY, link_id VARCHAR NOT NULL,
            survey_id VARCHAR NOT NULL, version INTEGER NOT NULL, kind VARCHAR NOT NULL,
            person_id VARCHAR, interaction_id VARCHAR, touchpoint VARCHAR NOT NULL,
            channel VARCHAR, language VARCHAR NOT NULL, form_hash VARCHAR NOT NULL UNIQUE,
            state VARCHAR NOT NULL, page INTEGER NOT NULL, answers {json} NOT NULL,
            created_at {ts} NOT NULL, started_at {ts}, saved_at {ts}, submitted_at {ts},
            feedback_id VARCHAR, record {json}, error VARCHAR)""",
        "CREATE INDEX survey_responses_link ON survey_responses (link_id)",
    ),
)

V12 = Migration(
    12,
    "survey invitations: triggers, invitations with reminders, contact-frequency rules",
    (
        # What invites people to a survey: kind interaction (each interaction at touchpoint, after
        # delay_s) or case_resolved (the customer of each resolved case: the recovery survey);
        # remind_s: one reminder that long after the invitation when not answered (NULL: none).
        """CREATE TABLE survey_triggers (
            trigger_id VARCHAR PRIMARY KEY, survey_id VARCHAR NOT NULL, kind VARCHAR NOT NULL,
            touchpoint VARCHAR, delay_s BIGINT NOT NULL, remind_s BIGINT, channel VARCHAR NOT NULL,
            enabled BOOLEAN NOT NULL, created_at {ts} NOT NULL, created_by VARCHAR)""",
        # One invitation of one person to one survey. source_key makes each cause invite once
        # (a trigger and its interaction or case; a list and the person). state: scheduled
        # (until due_at), held (a contact rule stopped it: held_rule, held_reason), sent (a
        # personal link made, the mail queued in the outbox), answered, failed (no address).
        # remind_s: one reminder that long after it is sent (remind_at, once sent).
        """CREATE TABLE survey_invitations (
            invitation_id VARCHAR PRIMARY KEY, source_key VARCHAR NOT NULL UNIQUE,
            survey_id VARCHAR NOT NULL, trigger_id VARCHAR, person_id VARCHAR NOT NULL,
            interaction_id VARCHAR, case_id VARCHAR, touchpoint VARCHAR, channel VARCHAR NOT NULL,
            created_at {ts} NOT NULL, due_at {ts} NOT NULL, state VARCHAR NOT NULL,
            held_rule VARCHAR, held_reason VARCHAR, link_id VARCHAR, sent_at {ts},
            remind_s BIGINT, remind_at {ts}, reminded_at {ts}, answered_at {ts},
            error VARCHAR)""",
        "CREATE INDEX survey_invitations_person ON survey_invitations (person_id)",
        # Contact-frequency rules, across every survey and channel: kind max_per_period
        # (count, period_s), min_gap (period_s), exclude (field: segment, region, attributes.X;
        # values), open_case, recent_complaint (period_s).
        """CREATE TABLE contact_rules (
            rule_id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, definition {json} NOT NULL,
            enabled BOOLEAN NOT NULL, created_at {ts} NOT NULL, created_by VARCHAR)""",
    ),
)

V13 = Migration(
    13,
    "privacy: settings, the erasure ledger, privacy requests, the audit log",
    (
        # Privacy settings by key (corridor.privacy.settings): the salt of the identity hashes,
        # what a record naming an erased identity meets (resurrection: refuse or accept), and
        # the retention periods per record kind.
        """CREATE TABLE privacy_settings (
            key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL, updated_at {ts} NOT NULL,
            updated_by VARCHAR)""",
        # One row per identity (and person id) of an erased person: only a salted SHA-256 of
        # "type:value", so a later record naming it is recognised without the value being kept.
        """CREATE TABLE erased_identities (
            id_hash VARCHAR PRIMARY KEY, request_id VARCHAR NOT NULL, erased_at {ts} NOT NULL)""",
        # An erasure or anonymisation and its progress: each step is idempotent, and a request
        # left running (a crash) is carried on from its step. persons: the person group's ids
        # while it runs (NULL once done); subject: the salted hash of the canonical person id;
        # summary: rows removed or changed per table.
        """CREATE TABLE privacy_requests (
            request_id VARCHAR PRIMARY KEY, action VARCHAR NOT NULL, subject VARCHAR NOT NULL,
            state VARCHAR NOT NULL, step VARCHAR NOT NULL, persons {json},
            requested_by VARCHAR NOT NULL, requested_at {ts} NOT NULL, finished_at {ts},
            summary {json})""",
        # Append-only: who did what, when, from where. target: what it was done to (a person
        # only as a salted hash, never an identity or a name); detail: counts, kinds, ids of
        # rules, cases and keys, never personal data.
        "CREATE SEQUENCE audit_ids START 1",
        """CREATE TABLE audit_log (
            seq BIGINT PRIMARY KEY DEFAULT nextval('audit_ids'), logged_at {ts} NOT NULL,
            actor VARCHAR NOT NULL, actor_kind VARCHAR NOT NULL, action VARCHAR NOT NULL,
            target_kind VARCHAR, target VARCHAR, address VARCHAR, detail {json})""",
    ),
)

V14 = Migration(
    14,
    "reports: schedules of the CX report and the deliveries made (one per period and user)",
    (
        # A scheduled report: cadence weekly (Monday) or monthly (the 1st) at hour o'clock in
        # each recipient's time zone (notification_prefs.time_zone, else time_zone here); the
        # recipients are the users of role (and department or partner, when given) with an
        # e-mail address; subject: what the report is about (department=X, partner=Y,
        # touchpoint=Z, corridor), NULL for each recipient's own scope.
        """CREATE TABLE report_schedules (
            schedule_id VARCHAR PRIMARY KEY, cadence VARCHAR NOT NULL, subject VARCHAR,
            role VARCHAR NOT NULL, department VARCHAR, partner VARCHAR,
            time_zone VARCHAR NOT NULL, hour INTEGER NOT NULL, enabled BOOLEAN NOT NULL,
            created_at {ts} NOT NULL, created_by VARCHAR)""",
        # One row per report queued in the outbox, written in the same transaction as the
        # outbox row: a period's report reaches a user once, across restarts.
        """CREATE TABLE report_deliveries (
            schedule_id VARCHAR NOT NULL, period_key VARCHAR NOT NULL, username VARCHAR NOT NULL,
            outbox_key VARCHAR NOT NULL, queued_at {ts} NOT NULL,
            PRIMARY KEY (schedule_id, period_key, username))""",
        # the time zone a user's scheduled reports follow (IANA name; NULL: the schedule's)
        "ALTER TABLE notification_prefs ADD COLUMN time_zone VARCHAR",
    ),
)

V15 = Migration(
    15,
    "webhook batches: an endpoint may take several events in one request",
    (
        # the most events one request to the endpoint carries (NULL: one, the usual webhook)
        "ALTER TABLE webhook_endpoints ADD COLUMN batch_max INTEGER",
        # the batch an outbox row was first sent in: its webhook-id, and the rows sent with it,
        # are the same on every retry (NULL: the row is sent alone, under its own key)
        "ALTER TABLE outbox ADD COLUMN batch_key VARCHAR",
    ),
)

V16 = Migration(
    16,
    "work after the commit: new feedback waits in rollup_pending for its rollup rows and rules",
    (
        # New feedback records whose rollup rows and record rules wait for the work after the
        # commit (a server's ingest leaves them to corridor.ingest.after_commit). Reads add the
        # rows of those not `rolled` from the base tables in the same query, so answers stay
        # exact meanwhile. rolled: a refresh rebuilt the record's day (its rows are in the
        # rollup); only its rules wait.
        """CREATE TABLE rollup_pending (feedback_id VARCHAR PRIMARY KEY, day DATE NOT NULL,
            rolled BOOLEAN NOT NULL DEFAULT FALSE)""",
    ),
)

MIGRATIONS: tuple[Migration, ...] = (
    V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12, V13, V14, V15, V16,
)  # fmt: skip
LATEST = MIGRATIONS[-1].version

BOOKKEEPING = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at {ts} NOT NULL)"""

Executor = Callable[[str], None]


def pending(current: int, target: int = LATEST) -> list[Migration]:
    return [m for m in MIGRATIONS if current < m.version <= target]
