"""Segment counting lives in services/common and rumor_control still reads it from its old place."""

from __future__ import annotations

import services.rumor_control.sms as rumor_sms
from services.common.sms_segments import count_segments, encoding_of


def test_rumor_control_reexports_the_shared_counter() -> None:
    assert rumor_sms.count_segments is count_segments
    assert rumor_sms.encoding_of is encoding_of


def test_spanish_acute_vowels_force_ucs2_but_e_acute_and_n_tilde_do_not() -> None:
    assert encoding_of("él, ñandú") == "UCS-2"  # ú
    assert encoding_of("él, niño, pingüino, à") == "GSM-7"
    for letter in "áíóú":
        assert count_segments(letter * 70).encoding == "UCS-2"
