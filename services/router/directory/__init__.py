"""The directory: people, the SPOC designation with delegations, the escalation policy."""

from __future__ import annotations

from services.router.directory.document import (
    InvalidDirectory,
    check_directory,
    read_directory_file,
)
from services.router.directory.flows import load_directory_file
from services.router.directory.use_cases import current_directory, replace_directory

__all__ = [
    "InvalidDirectory",
    "check_directory",
    "current_directory",
    "load_directory_file",
    "read_directory_file",
    "replace_directory",
]
