"""The ``corridor`` command: Typer + Rich. Parses, calls down, renders; no logic of its own.

:mod:`.main` holds the app and the store commands; :mod:`.common` the shared options and
consoles; :mod:`.render` the one way results are shown (table, json, csv); one module per family
of commands (:mod:`.analyses`, :mod:`.churn`, :mod:`.drivers`, :mod:`.attribution`, :mod:`.text`,
:mod:`.auth`).
"""

from corridor.cli.main import app, main

__all__ = ["app", "main"]
