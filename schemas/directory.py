"""The directory event on ``aviso.directory.v1``, emitted by router.

Router keeps the directory (people, the SPOC designation, the escalation policy); intake needs
to know only who is in it, to decide which ``contact`` tokens may read restricted detail. So the
event carries person ids and nothing else: no names, roles, phone numbers or addresses.
"""

from __future__ import annotations

from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import AwareDatetime, Field

from schemas.base import EventData, SortedUnique
from schemas.topics import DIRECTORY

__all__ = ["DIRECTORY_ID", "DirectoryPublished"]

# uuid5(NAMESPACE_URL, "https://aviso.local/directory"): a UUID like every other subject.
DIRECTORY_ID = UUID("d05ac7ac-0012-51ab-9094-147d6c5e60a4")
"""The one aggregate of the topic: every directory version shares its key and partition."""


class DirectoryPublished(EventData):
    """A directory version became the one in force; these are the people in it.

    No restricted detail and no contact detail: person ids only.
    """

    event_type: ClassVar[str] = "directory.published"
    topic: ClassVar[str] = DIRECTORY
    subject_field: ClassVar[str] = "directory_id"

    directory_id: UUID = Field(
        description="Always DIRECTORY_ID: there is one directory, so one key keeps its "
        "versions in order on one partition."
    )
    version: int = Field(ge=1, description="The directory version now in force.")
    person_ids: Annotated[tuple[UUID, ...], SortedUnique] = Field(
        description="Ids of every person in that version, sorted and unique."
    )
    published_at: AwareDatetime = Field(description="When the version became the one in force.")
