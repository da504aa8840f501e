"""Transparency and privacy: a person's data exported (:mod:`~corridor.privacy.export`),
erased or anonymised on request (:mod:`~corridor.privacy.requests`) with an erasure ledger
against resurrection (:mod:`~corridor.privacy.ledger`), the audit log
(:mod:`~corridor.privacy.audit`), retention (:mod:`~corridor.privacy.retention`) and the
settings behind them (:mod:`~corridor.privacy.settings`). Where a person's data lies:
:mod:`~corridor.privacy.subject`. See docs/privacy.md.

The package is kept import-light (the ingest path imports :mod:`~corridor.privacy.ledger`).
"""
