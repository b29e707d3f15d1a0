"""Use cases of a notice: submission, revision (update, cancel) and reading.

Each runs inside the unit of work its caller opened and never commits it; the caller
(an HTTP route) commits, and only then do the use case's log lines run.
"""

from __future__ import annotations

from services.intake.notices.guards import NoticePageResult, NoticeResult
from services.intake.notices.reading import list_notices, read_notice
from services.intake.notices.revision import cancel_notice, revise_notice
from services.intake.notices.submission import submit_notice

__all__ = [
    "NoticePageResult",
    "NoticeResult",
    "cancel_notice",
    "list_notices",
    "read_notice",
    "revise_notice",
    "submit_notice",
]
