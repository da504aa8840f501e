"""Reports a manager can send on: a CX report per scope and period, as an e-mail and a PDF.

- :mod:`corridor.reports.periods` — the report's period (the last full week, month or quarter)
  and the subject it covers (the whole corridor, a department, a partner, a touch point);
- :mod:`corridor.reports.model` — the report as typed values; :mod:`corridor.reports.content`
  builds it from the registered analyses run as the reader's
  :class:`~corridor.auth.scope.Scope` sees them; :mod:`corridor.reports.words` says its
  figures and findings in words;
- :mod:`corridor.reports.charts` — its charts (matplotlib, offline): SVG for the PDF, PNG for
  the e-mail;
- :mod:`corridor.reports.render` — HTML (for the PDF and the e-mail) and plain text from the
  same content; :mod:`corridor.reports.pdf` prints the HTML with Chromium;
- :mod:`corridor.reports.schedules` — weekly and monthly schedules delivered through the closed
  loop's outbox and scheduler to users by role and scope.

Not to be confused with :mod:`corridor.loop.reports`, the closed loop's performance table (which
the report's cases section reads).
"""
