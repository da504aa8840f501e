"""The ``corridor`` command: Typer + Rich. Parses, calls down, renders; no logic of its own.

:mod:`.main` holds the app and its entry point; :mod:`.common` the shared options and
consoles; :mod:`.render` the one way results are shown (table, json, csv); one module per family
of commands (:mod:`.ingest`, :mod:`.serve`, :mod:`.demo`, :mod:`.store`, :mod:`.analyses`,
:mod:`.churn`, :mod:`.text`, :mod:`.auth`, ...), each adding its commands with ``register``.
"""

from corridor.cli.main import app, main

__all__ = ["app", "main"]
