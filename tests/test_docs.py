"""Documentation keeps up: every command and every contract field is documented."""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any

import typer
import typer.main

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


# -- every command line the docs print parses -----------------------------------------------


def _code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced block, fences paired in order (indented ones too)."""
    blocks, lang, body = [], None, []
    for line in text.splitlines():
        fence = re.match(r"^ *```(\w*)\s*$", line)
        if fence and lang is None:
            lang, body = fence.group(1), []
        elif fence:
            blocks.append((lang, "\n".join(body)))
            lang = None
        elif lang is not None:
            body.append(line)
    return blocks


def _doc_commands() -> list[tuple[str, str]]:
    """(doc, command line) for every ``corridor …`` line in the docs' shell blocks, also inside
    ``$( … )``, continuation lines joined, each pipeline and ``&&`` part separately."""
    found = []
    for doc in sorted(DOCS.glob("*.md")):
        for lang, body in _code_blocks(doc.read_text()):
            if lang not in ("bash", "sh", "console", ""):
                continue
            for line in body.replace("\\\n", " ").splitlines():
                line = line.strip().removeprefix("$ ")
                if "corridor " not in line:
                    continue
                for inner in re.findall(r"\$\((corridor [^)]*)\)", line):
                    found.extend((doc.name, part) for part in _parts(inner))
                line = re.sub(r"\$\([^)]*\)", "VALUE", line)
                found.extend((doc.name, part) for part in _parts(line))
    return found


def _parts(line: str) -> list[str]:
    lex = shlex.shlex(line, posix=True, punctuation_chars="|&;<>")
    lex.whitespace_split = True
    lex.commenters = "#"
    parts, current = [], []
    for token in lex:
        if token and set(token) <= set("|&;<>"):
            parts.append(current)
            current = [] if token != ">" else ["<redirect>"]
            continue
        current.append(token)
    parts.append(current)
    return [shlex.join(p) for p in parts if p and p[0] == "corridor"]


@cache
def _click_app() -> Any:
    """The CLI as Click's command tree (made once: ~0.09 s, and the docs hold ~190 lines)."""
    return typer.main.get_command(app)


def _parse(words: list[str]) -> None:
    """Click's own parsing of ``corridor WORDS`` down to the command, running nothing."""
    cmd: Any = _click_app()
    path = ["corridor"]
    while True:
        ctx = cmd.make_context(" ".join(path), list(words))
        if not hasattr(cmd, "resolve_command"):  # a command, not a group
            return
        rest = [*ctx._protected_args, *ctx.args]
        name, sub, words = cmd.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        cmd, path = sub, [*path, name]


def test_every_command_line_in_the_docs_parses(monkeypatch):
    """Each ``corridor …`` line the docs print names a real command with options it takes, so
    a copied line fails for the user's data, never for the docs (the store need not exist)."""
    import getpass

    import corridor.store

    monkeypatch.setattr(corridor.store, "require_store", lambda *a, **k: None)
    monkeypatch.setattr(getpass, "getpass", lambda *a, **k: "typed-when-asked")  # users add
    lines = _doc_commands()
    assert len(lines) >= 60
    wrong = []
    for doc, line in lines:
        try:
            _parse(shlex.split(line)[1:])
        except (typer.TyperException, typer.Exit) as e:  # Click's usage errors, as Typer has them
            wrong.append(f"{doc}: {line}\n    {getattr(e, 'message', e)}")
    assert not wrong, "command lines in the docs that do not parse:\n" + "\n".join(wrong)
