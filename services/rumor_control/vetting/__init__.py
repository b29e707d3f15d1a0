"""Use cases of vetting: drafts, edits, sign-offs, approval and rejection, guardrail checks."""

from services.rumor_control.vetting.decisions import approve, reject
from services.rumor_control.vetting.drafts import create_draft
from services.rumor_control.vetting.editing import edit_bulletin, sign_off
from services.rumor_control.vetting.queries import get_bulletin, list_bulletins

__all__ = [
    "approve",
    "create_draft",
    "edit_bulletin",
    "get_bulletin",
    "list_bulletins",
    "reject",
    "sign_off",
]
