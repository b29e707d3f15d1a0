"""Fresh ids (a submission's notice, audit entry and event; a request's; an event's)
are random UUIDs' text, as `str(uuid.uuid4())` wrote them, though no `uuid.UUID` is
built for them."""

from __future__ import annotations

import uuid

from services.common.ids import new_id


def test_an_id_is_a_version_4_uuid_written_as_uuid_writes_it() -> None:
    for _ in range(200):
        text = new_id()
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text  # lower case, dashed: the form stored and compared


def test_ids_do_not_repeat() -> None:
    ids = {new_id() for _ in range(10_000)}
    assert len(ids) == 10_000
