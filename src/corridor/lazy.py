"""Heavy modules imported on first use instead of on import.

Every command of the CLI imports every analysis module (each declares its analysis beside its
function, and the commands are made from the declarations), and most of them never compute:
``corridor users list``, ``corridor --help``. SciPy's ``stats`` alone took 0.8 s of the CLI's
2.0 s of imports; the analyses reach SciPy through a :class:`LazyModule` instead, which imports
it when an attribute is first read.

Not :class:`importlib.util.LazyLoader` (nor the ``lazy_loader`` package built on it): a module
it loads is not safe to touch from several threads at once before Python 3.12 (CPython
gh-114763), and the server's reads run in threads. Here the first attribute read calls
:func:`importlib.import_module`, which the import system's own locks make safe; the module is
the real one, in ``sys.modules`` like any other.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """A stand-in for the module ``name``, imported when one of its attributes is first read."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        # only called for names the instance lacks: every attribute of the module
        if attr in ("_name", "_module"):  # before __init__ (a copy): not the module's
            raise AttributeError(attr)
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<lazy module {self._name!r} ({state})>"


def lazy(name: str) -> Any:
    """The module ``name``, imported on first use (typed ``Any``, as SciPy has no types)."""
    return LazyModule(name)
