"""Write or check the JSON Schema file of every registered event model.

``python -m schemas.generate`` rewrites ``schemas/json/<event_type>.schema.json`` and removes
files no model produces; ``python -m schemas.generate --check`` changes nothing and exits 1,
listing every drifted, missing or stale file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from schemas.base import EVENT_MODELS, EventData

__all__ = ["JSON_DIR", "SCHEMA_ID_BASE", "check", "main", "render", "render_all", "write"]

JSON_DIR = Path(__file__).resolve().parent / "json"
SCHEMA_ID_BASE = "https://aviso.local/schemas/"
_SUFFIX = ".schema.json"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _file_name(event_type: str) -> str:
    return f"{event_type}{_SUFFIX}"


def render(model: type[EventData]) -> str:
    """The JSON Schema document of one event model, as written to disk."""
    schema: dict[str, Any] = model.model_json_schema()
    schema.update(
        {
            "$schema": _DIALECT,
            "$id": f"{SCHEMA_ID_BASE}{_file_name(model.event_type)}",
            "title": model.__name__,
            "x-event-type": model.event_type,
            "x-topic": model.topic,
            "x-subject-field": model.subject_field,
        }
    )
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_all() -> dict[str, str]:
    """Every schema file's name and content, for every registered event model."""
    # Importing the package imports every event module, so the registry is complete.
    import schemas  # noqa: F401

    return {_file_name(name): render(model) for name, model in sorted(EVENT_MODELS.items())}


def check(directory: Path = JSON_DIR) -> list[str]:
    """Problems between the models and the files in ``directory``; empty when they agree."""
    expected = render_all()
    problems: list[str] = []
    for name, content in expected.items():
        path = directory / name
        if not path.exists():
            problems.append(f"missing: {path}")
        elif path.read_text(encoding="utf-8") != content:
            problems.append(f"drifted: {path}")
    for path in sorted(directory.glob(f"*{_SUFFIX}")):
        if path.name not in expected:
            problems.append(f"stale: {path}")
    return problems


def write(directory: Path = JSON_DIR) -> list[Path]:
    """Write every schema file into ``directory``, remove stale ones, return what changed."""
    expected = render_all()
    directory.mkdir(parents=True, exist_ok=True)
    changed: list[Path] = []
    for name, content in expected.items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
            changed.append(path)
    for path in sorted(directory.glob(f"*{_SUFFIX}")):
        if path.name not in expected:
            path.unlink()
            changed.append(path)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m schemas.generate", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if any file would change")
    parser.add_argument("--dir", type=Path, default=JSON_DIR, help="output directory")
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.dir)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run `python -m schemas.generate` and commit the result", file=sys.stderr)
            return 1
        return 0
    for path in write(args.dir):
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
