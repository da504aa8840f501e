"""Hosted surveys: definitions (versioned), personal and anonymous links, and responses that
become feedback records through the one ingest path (:mod:`corridor.ingest.pipeline`).

Modules, each one concept: :mod:`~corridor.surveys.model` (a survey, its questions, skip logic
and translations), :mod:`~corridor.surveys.definition` (reading and validating a definition),
:mod:`~corridor.surveys.catalog` (definitions in the store, versioned),
:mod:`~corridor.surveys.links` (tokens, expiry, revocation), :mod:`~corridor.surveys.answers`
(a page of answers from a form post), :mod:`~corridor.surveys.responses` (save, resume, submit
exactly once), :mod:`~corridor.surveys.upkeep` (the job that finishes and sends responses).
The public form pages live in :mod:`corridor.web.survey_pages`.
"""
