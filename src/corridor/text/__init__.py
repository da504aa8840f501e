"""Text analysis: the voice of the customer. Pure logic; no surfaces.

Every text is redacted with :func:`redact` / :func:`redact_many` before it is analysed or shown
(at ingest, :mod:`corridor.text.intake`). Then: sentiment (:mod:`~corridor.text.sentiment`, the
default lexicon model; :mod:`~corridor.text.embed`, the optional MiniLM model), intent and
emotion facets (:mod:`~corridor.text.affect`), themes (:mod:`~corridor.text.themes`,
:mod:`~corridor.text.themestore`), batch jobs (:mod:`~corridor.text.jobs`) and reads with n and
intervals (:mod:`~corridor.analytics.feedback.text`). Methods and validation:
docs/voice-of-customer.md.
"""

from corridor.text.redact import KINDS, Finding, Kind, Redaction, redact, redact_many

__all__ = ["KINDS", "Finding", "Kind", "Redaction", "redact", "redact_many"]
