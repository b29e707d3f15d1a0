"""Use cases of the rumor ledger: report, list, get, assess."""

from services.rumor_control.rumors.assessment import assess_rumor
from services.rumor_control.rumors.ledger import RumorView, get_rumor, list_rumors, timeline
from services.rumor_control.rumors.reporting import NewReport, ReportOutcome, report_rumor

__all__ = [
    "NewReport",
    "ReportOutcome",
    "RumorView",
    "assess_rumor",
    "get_rumor",
    "list_rumors",
    "report_rumor",
    "timeline",
]
