"""The public feeds: Atom and CAP 1.2 of published, real bulletins."""

from services.rumor_control.feeds.public import (
    PublicVersion,
    latest_per_bulletin,
    public_entries,
    public_version,
)
from services.rumor_control.feeds.render import (
    ATOM_NS,
    CAP_LANGUAGES,
    CAP_NS,
    atom_feed,
    cap_alert,
    cap_document,
    cap_feed,
    cap_identifier,
)

__all__ = [
    "ATOM_NS",
    "CAP_LANGUAGES",
    "CAP_NS",
    "PublicVersion",
    "atom_feed",
    "cap_alert",
    "cap_document",
    "cap_feed",
    "cap_identifier",
    "latest_per_bulletin",
    "public_entries",
    "public_version",
]
