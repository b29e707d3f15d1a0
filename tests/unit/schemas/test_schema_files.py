"""Generated JSON Schema files: in step with the models, with the agreed metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas import EVENT_MODELS
from schemas.generate import JSON_DIR, SCHEMA_ID_BASE, check, main, render_all, write


def test_checked_in_schemas_match_the_models() -> None:
    problems = check(JSON_DIR)
    assert problems == [], (
        "JSON Schema files drifted from the models; run `python -m schemas.generate`:\n"
        + "\n".join(problems)
    )


def test_every_registered_model_has_exactly_one_file() -> None:
    on_disk = sorted(path.name for path in JSON_DIR.glob("*.schema.json"))
    assert on_disk == sorted(f"{name}.schema.json" for name in EVENT_MODELS)


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
def test_schema_carries_id_title_topic_and_event_type(event_type: str) -> None:
    model = EVENT_MODELS[event_type]
    content = render_all()[f"{event_type}.schema.json"]
    schema = json.loads(content)
    assert schema["$id"] == f"{SCHEMA_ID_BASE}{event_type}.schema.json"
    assert schema["title"] == model.__name__
    assert schema["x-topic"] == model.topic
    assert schema["x-event-type"] == event_type
    assert schema["x-subject-field"] in schema["required"]
    assert schema["additionalProperties"] is False
    assert content.endswith("}\n")
    assert content == json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_check_reports_drifted_missing_and_stale_files(tmp_path: Path) -> None:
    write(tmp_path)
    assert check(tmp_path) == []
    (tmp_path / "alert.triggered.schema.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "rumor.reported.schema.json").unlink()
    (tmp_path / "notice.exploded.schema.json").write_text("{}\n", encoding="utf-8")

    problems = check(tmp_path)

    assert problems == [
        f"drifted: {tmp_path / 'alert.triggered.schema.json'}",
        f"missing: {tmp_path / 'rumor.reported.schema.json'}",
        f"stale: {tmp_path / 'notice.exploded.schema.json'}",
    ]
    assert main(["--check", "--dir", str(tmp_path)]) == 1
    assert main(["--dir", str(tmp_path)]) == 0
    assert main(["--check", "--dir", str(tmp_path)]) == 0
    assert not (tmp_path / "notice.exploded.schema.json").exists()
