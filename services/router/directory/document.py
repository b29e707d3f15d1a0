"""Reading and checking a directory document (from YAML, JSON or a request body).

Schema errors (pydantic) and rule errors (`domain.validate_directory`) come back
together as one `InvalidDirectory`, each with the path of what is wrong, so an admin
fixes a file in one pass instead of one error per try.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# No stubs are pinned for PyYAML; `unused-ignore` keeps this quiet once they are.
import yaml  # type: ignore[import-untyped, unused-ignore]
from pydantic import ValidationError

from services.router.domain import (
    DirectoryDocument,
    DirectoryError,
    parse_directory,
    validate_directory,
)

__all__ = ["InvalidDirectory", "check_directory", "read_directory_file"]

_MAX_FILE_BYTES = 1024 * 1024


class InvalidDirectory(ValueError):
    """A directory that must not be stored; `errors` says where and why."""

    def __init__(self, errors: list[DirectoryError]) -> None:
        super().__init__("; ".join(f"{e.path}: {e.message}" for e in errors))
        self.errors = errors


def _path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "$"


def check_directory(data: Any) -> DirectoryDocument:
    """Parse and validate raw data; raises InvalidDirectory listing every problem."""
    try:
        document = parse_directory(data)
    except ValidationError as exc:
        details = exc.errors()
        locations = [tuple(err["loc"]) for err in details]
        # Where and why only (the input may hold addresses). A list whose items failed is
        # also reported "too short" by pydantic; the item errors say it better.
        raise InvalidDirectory(
            [
                DirectoryError(_path(loc), err["msg"])
                for err, loc in zip(details, locations, strict=True)
                if not (
                    err["type"] == "too_short"
                    and any(other[: len(loc)] == loc and other != loc for other in locations)
                )
            ]
        ) from None
    errors = validate_directory(document)
    if errors:
        raise InvalidDirectory(errors)
    return document


def read_directory_file(path: Path) -> DirectoryDocument:
    """Load a YAML (or JSON, a subset of YAML) directory file and validate it."""
    if path.stat().st_size > _MAX_FILE_BYTES:
        raise InvalidDirectory([DirectoryError("$", "the file is larger than 1 MiB")])
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "$"
        raise InvalidDirectory([DirectoryError(where, "not valid YAML")]) from None
    return check_directory(data)
