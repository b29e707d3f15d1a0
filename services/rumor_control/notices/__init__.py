"""Use cases fed by intake's notices and router's acknowledgements (Kafka)."""

from services.rumor_control.notices.cancellation import apply_notice_cancelled
from services.rumor_control.notices.projection import (
    acknowledge_alert,
    apply_notice,
    finish_projected,
    project_notice_claiming,
    project_notices,
)

__all__ = [
    "acknowledge_alert",
    "apply_notice",
    "apply_notice_cancelled",
    "finish_projected",
    "project_notice_claiming",
    "project_notices",
]
