"""The report printed to PDF by Chromium (Playwright's ``page.pdf()``), with its vector charts.

Why Chromium: the test set-up already installs Debian's Chromium for the browser tests, it
prints inline SVG as vector paths and its text as text (``pdftotext`` reads it back), and it
lays out the same HTML the e-mail is made from. WeasyPrint would spare the browser but needs
Pango and its own CSS subset, so the two outputs would drift apart (``docs/reports.md``).

Chromium is needed at run time for PDFs only (the HTML and e-mail need nothing); it is found at
``CORRIDOR_CHROMIUM`` or ``/usr/bin/chromium`` (``chromium-browser``, ``google-chrome`` on the
PATH), driven by the ``playwright`` Python package (the ``pdf`` extra); missing either, the
error says what to install. The page is loaded from a string with every network request
refused: a report never reaches out.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from corridor.errors import CorridorError

FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class PdfUnavailableError(CorridorError, RuntimeError):
    """The PDF cannot be made here: no Chromium, or no Playwright."""

    status_code = 503


def chromium_path() -> str:
    """The Chromium binary to print with, or a :class:`PdfUnavailableError` saying how to get
    one."""
    named = os.environ.get("CORRIDOR_CHROMIUM")
    if named:
        if not Path(named).exists():
            raise PdfUnavailableError(
                f"CORRIDOR_CHROMIUM={named} does not exist: point it at a Chromium binary or "
                "unset it to use /usr/bin/chromium"
            )
        return named
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise PdfUnavailableError(
        "a PDF report needs Chromium, which is not installed here: install it (Debian/Ubuntu: "
        "apt-get install chromium) or set CORRIDOR_CHROMIUM to its path; the HTML report "
        "(--format html) needs nothing"
    )


class Printer:
    """One Chromium kept open to print several reports (the scheduler's run, a test). Not
    shared across threads: each thread makes its own."""

    def __init__(self) -> None:
        executable = chromium_path()
        try:
            from playwright.sync_api import sync_playwright
        except ImportError as e:
            raise PdfUnavailableError(
                "a PDF report needs the playwright package: pip install 'corridor[pdf]'"
            ) from e
        self._pw = sync_playwright().start()
        try:
            self._browser = self._pw.chromium.launch(executable_path=executable, args=FLAGS)
        except Exception as e:
            self._pw.stop()
            raise PdfUnavailableError(f"Chromium at {executable} did not start: {e}") from e

    def pdf(self, html: str) -> bytes:
        """The page ``html`` printed on A4 (its own ``@page`` margins)."""
        context = self._browser.new_context(offline=True)
        try:
            page = context.new_page()
            page.route("**/*", lambda route: route.abort())
            page.set_content(html, wait_until="load")
            data: bytes = page.pdf(
                format="A4", print_background=True, prefer_css_page_size=True,
                display_header_footer=True, header_template="<span></span>",
                footer_template=(
                    '<div style="font-size:8px;color:#5f6b7a;width:100%;text-align:center">'
                    'page <span class="pageNumber"></span> of <span class="totalPages"></span>'
                    "</div>"
                ),
            )  # fmt: skip
            return data
        finally:
            context.close()

    def close(self) -> None:
        try:
            self._browser.close()
        finally:
            self._pw.stop()

    def __enter__(self) -> Printer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_local = threading.local()


@contextmanager
def printer() -> Iterator[Printer]:
    """A Chromium for this thread: the one already open in an enclosing ``printer()``, or a new
    one closed on the way out."""
    held: Printer | None = getattr(_local, "printer", None)
    if held is not None:
        yield held
        return
    made = Printer()
    _local.printer = made
    try:
        yield made
    finally:
        _local.printer = None
        made.close()


def to_pdf(html: str) -> bytes:
    """``html`` printed to PDF (see the module notes)."""
    with printer() as p:
        return p.pdf(html)


__all__ = ["PdfUnavailableError", "Printer", "chromium_path", "printer", "to_pdf"]
