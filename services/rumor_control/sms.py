"""SMS segment counting, now shared: see `services.common.sms_segments`."""

from services.common.sms_segments import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    SmsCount,
    count_segments,
    encoding_of,
)

__all__ = ["GSM7_BASIC", "GSM7_EXTENSION", "SmsCount", "count_segments", "encoding_of"]
