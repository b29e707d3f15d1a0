"""The directory: people, the SPOC designation with delegations, the escalation policy."""

from __future__ import annotations

from services.router.directory.document import (
    InvalidDirectory,
    check_directory,
    read_directory_file,
)
from services.router.directory.flows import announce_directory_at_start, load_directory_file
from services.router.directory.use_cases import (
    announce_current_directory,
    current_directory,
    replace_directory,
)

__all__ = [
    "InvalidDirectory",
    "announce_current_directory",
    "announce_directory_at_start",
    "check_directory",
    "current_directory",
    "load_directory_file",
    "read_directory_file",
    "replace_directory",
]
