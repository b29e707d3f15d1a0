"""No field of any event could hold restricted detail, and every model says what it carries."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from schemas import EVENT_MODELS, ContractModel

# Words in a field name that suggest restricted detail (BRIEF: names, addresses, vehicles, exact
# targets; issue 3: agent contact). Matched per snake_case word, so "template_id" is fine.
RESTRICTED_WORDS = {
    "name", "names", "fullname", "address", "addresses", "addr", "street", "vehicle", "vehicles",
    "plate", "plates", "agent", "agents", "phone", "email", "location", "locations", "gps",
    "latitude", "longitude", "lat", "lon", "lng", "coordinates", "target", "targets",
    "office", "claim", "comment", "notes", "details", "restricted",
}  # fmt: skip
# The one field allowed to name restricted data: it holds keyed fingerprints, never plaintext.
ALLOWED_FIELDS = {"restricted_fingerprints"}


def property_names(schema: dict[str, Any]) -> Iterator[str]:
    """Every property name in a JSON Schema, nested definitions included."""
    for name, sub in schema.get("properties", {}).items():
        yield name
        yield from property_names(sub)
    for definition in schema.get("$defs", {}).values():
        yield from property_names(definition)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from property_names(schema[key])
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for sub in schema.get(key, []):
            yield from property_names(sub)


def restricted_looking(model: type[ContractModel]) -> list[str]:
    return sorted(
        {
            name
            for name in property_names(model.model_json_schema())
            if name not in ALLOWED_FIELDS
            and RESTRICTED_WORDS & set(re.split(r"[_\W]+", name.lower()))
        }
    )


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
def test_no_field_name_suggests_restricted_detail(event_type: str) -> None:
    assert restricted_looking(EVENT_MODELS[event_type]) == []


def test_the_check_catches_a_restricted_field_in_a_nested_model() -> None:
    class Vehicle(ContractModel):
        plate_number: str

    class Leaky(ContractModel):
        agent_phone: str
        template_id: str
        seen: Vehicle

    assert restricted_looking(Leaky) == ["agent_phone", "plate_number"]


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
def test_every_model_documents_itself_and_its_lack_of_restricted_detail(event_type: str) -> None:
    schema = EVENT_MODELS[event_type].model_json_schema()
    documented = [schema, *schema.get("$defs", {}).values()]
    for model_schema in documented:
        summary, _, rest = model_schema["description"].partition("\n")
        assert summary.endswith("."), model_schema["title"]
        assert "No restricted detail" in rest, model_schema["title"]
