"""`aviso` subcommands of the router service."""

from __future__ import annotations

import typer

__all__ = ["commands"]

# Each entry is mounted on the main CLI as `aviso <name> ...`.
commands: dict[str, typer.Typer] = {}
