"""Text analysis: PII redaction (and, later, sentiment, emotion, themes). Pure; no surfaces.

Every text is redacted with :func:`redact` / :func:`redact_many` before it is analysed or shown.
"""

from corridor.text.redact import KINDS, Finding, Kind, Redaction, redact, redact_many

__all__ = ["KINDS", "Finding", "Kind", "Redaction", "redact", "redact_many"]
