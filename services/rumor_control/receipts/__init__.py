"""Use cases of receipts: confirming one, and listing deliveries with their receipts."""

from services.rumor_control.receipts.confirmation import (
    ReceiptOutcome,
    deliveries_and_receipts,
    record_receipt,
)

__all__ = ["ReceiptOutcome", "deliveries_and_receipts", "record_receipt"]
