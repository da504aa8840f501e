"""Documentation keeps up: every command and every contract field is documented."""

from __future__ import annotations

from pathlib import Path

import typer

from corridor.cli import app
from corridor.domain.contract import KINDS

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _commands(t: typer.Typer, prefix: str = "corridor") -> list[str]:
    names = []
    for cmd in t.registered_commands:
        name = cmd.name or (cmd.callback.__name__.rstrip("_") if cmd.callback else "")
        names.append(f"{prefix} {name.replace('_', '-')}")
    for group in t.registered_groups:
        assert group.typer_instance is not None
        names.extend(_commands(group.typer_instance, f"{prefix} {group.name}"))
    return names


def test_every_cli_command_is_documented():
    text = (DOCS / "cli.md").read_text()
    commands = _commands(app)
    assert len(commands) >= 8
    missing = [c for c in commands if f"`{c}" not in text]
    assert not missing, f"undocumented commands in docs/cli.md: {missing}"


def test_every_contract_field_is_documented():
    text = (DOCS / "data-contract.md").read_text()
    for kind in KINDS.values():
        assert f"Kind: {kind.name}" in text
        for f in kind.fields:
            assert f"`{f.name}`" in text, (kind.name, f.name)
