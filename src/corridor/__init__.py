"""Corridor: open-source Customer Experience Management.

Measures the gap between what customers expected and what they experienced at every touch point
of the customer corridor, explains it, attributes it, and helps close it.

The Python SDK: ``corridor.connect(url)`` runs the analyses in process over a store;
``corridor.Client(base_url, api_key)`` runs them on a running server (see :mod:`corridor.sdk`).
"""

from typing import Any

__version__ = "0.1.0"

__all__ = ["Client", "Connection", "__version__", "connect"]


def __getattr__(name: str) -> Any:
    # the SDK loads the analytics: only when asked for, so `corridor --help` stays quick
    if name in ("Client", "Connection", "connect"):
        from corridor import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'corridor' has no attribute {name!r}")
