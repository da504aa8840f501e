"""YAML written by people (survey definitions, corridor maps, SLA policy files), read safely.

:func:`load` is ``yaml.safe_load`` that refuses aliases (``*name``, a reference to an anchored
node): a few hundred bytes of nested aliases expand to gigabytes once built (the "billion
laughs"), which ``safe_load`` builds all the same. A hand-written document needs none.
"""

from __future__ import annotations

from typing import Any

import yaml


class _NoAliases(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None,
                None,
                f"aliases (*{event.anchor}) are not accepted: write the value out where it is used",
                event.start_mark,
            )
        return super().compose_node(parent, index)


def load(text: str | bytes) -> Any:
    """The document in ``text`` (``yaml.YAMLError`` if it is not YAML, or uses an alias)."""
    return yaml.load(text, Loader=_NoAliases)


__all__ = ["load"]
