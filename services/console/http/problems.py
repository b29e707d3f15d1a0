"""A service's RFC 9457 refusal as messages per field, so a form shows each next to its input.

Two shapes come back: router's rule errors (`errors: [{path, message}]`) and the schema
errors every service answers (`errors: [{loc, msg, type}]`, `loc` starting with "body").
Both become `{"people[0].channels": "...", ...}`.
"""

from __future__ import annotations

from typing import Any

from services.console.api import ApiProblem

__all__ = ["field_errors", "path_of"]


def path_of(loc: list[Any]) -> str:
    """`["body", "people", 0, "id"]` -> `people[0].id` (the body itself is "")."""
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    path = ""
    for part in parts:
        path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
    return path


def field_errors(problem: ApiProblem) -> dict[str, str]:
    """Every error of the problem by the path of the field it is about ("" for the whole)."""
    found: dict[str, str] = {}
    for error in problem.body.get("errors") or []:
        if not isinstance(error, dict):
            continue
        if "path" in error:
            path = str(error["path"])
            message = str(error.get("message", ""))
        else:
            path = path_of(list(error.get("loc") or []))
            message = str(error.get("msg", ""))
        found[path] = f"{found[path]}; {message}" if path in found else message
    if not found:
        found[""] = problem.detail or problem.title
    return found
