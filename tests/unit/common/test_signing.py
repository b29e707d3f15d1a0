"""Request signatures (`Aviso-Signature`) and signed link tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.signing import (
    LinkTokenError,
    SignatureError,
    make_link_token,
    read_link_token,
    sign_payload,
    signature_fingerprint,
    signature_header,
    verify_signature,
)

NOW = 1_750_000_000
OLD_SECRET = b"old-secret-0123456789abcdef"
NEW_SECRET = b"new-secret-fedcba9876543210"
BODY = b'{"reference":"FO-2025-0042","window":{"start":"2025-06-15T05:00:00Z"}}'

secrets_st = st.binary(min_size=1, max_size=64)
bodies_st = st.binary(max_size=512)


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(NEW_SECRET, f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign_payload(NEW_SECRET, BODY, timestamp=NOW) == expected
    assert signature_header([NEW_SECRET], BODY, timestamp=NOW) == f"t={NOW},v1={expected}"


def test_valid_signature_returns_its_timestamp() -> None:
    header = signature_header([NEW_SECRET], BODY, timestamp=NOW - 10)
    assert verify_signature(header, BODY, [NEW_SECRET], now=NOW) == NOW - 10


@given(secret=secrets_st, body=bodies_st, offset=st.integers(-30, 300))
def test_round_trip_within_the_window(secret: bytes, body: bytes, offset: int) -> None:
    header = signature_header([secret], body, timestamp=NOW - offset)
    assert verify_signature(header, body, [secret], now=NOW) == NOW - offset


@given(body=bodies_st.filter(bool), data=st.data())
def test_any_tampered_body_byte_is_a_mismatch(body: bytes, data: st.DataObject) -> None:
    header = signature_header([NEW_SECRET], body, timestamp=NOW)
    index = data.draw(st.integers(0, len(body) - 1))
    flip = data.draw(st.integers(1, 255))
    tampered = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
    with pytest.raises(SignatureError) as caught:
        verify_signature(header, tampered, [NEW_SECRET], now=NOW)
    assert caught.value.reason == "mismatch"


def test_tampered_signature_or_timestamp_is_a_mismatch() -> None:
    header = signature_header([NEW_SECRET], BODY, timestamp=NOW)
    digest = header.split("v1=")[1]
    flipped = header.replace(digest, ("0" if digest[0] != "0" else "1") + digest[1:])
    shifted = header.replace(f"t={NOW}", f"t={NOW - 1}")
    for forged in (flipped, shifted):
        with pytest.raises(SignatureError) as caught:
            verify_signature(forged, BODY, [NEW_SECRET], now=NOW)
        assert caught.value.reason == "mismatch"


def test_wrong_secret_is_a_mismatch() -> None:
    header = signature_header([b"someone-else"], BODY, timestamp=NOW)
    with pytest.raises(SignatureError) as caught:
        verify_signature(header, BODY, [NEW_SECRET], now=NOW)
    assert caught.value.reason == "mismatch"


def test_stale_and_future_timestamps_are_refused() -> None:
    stale = signature_header([NEW_SECRET], BODY, timestamp=NOW - 301)
    edge = signature_header([NEW_SECRET], BODY, timestamp=NOW - 300)
    future = signature_header([NEW_SECRET], BODY, timestamp=NOW + 31)
    skewed = signature_header([NEW_SECRET], BODY, timestamp=NOW + 30)
    with pytest.raises(SignatureError) as too_old:
        verify_signature(stale, BODY, [NEW_SECRET], now=NOW)
    with pytest.raises(SignatureError) as too_new:
        verify_signature(future, BODY, [NEW_SECRET], now=NOW)
    assert too_old.value.reason == "stale"
    assert too_new.value.reason == "future"
    assert verify_signature(edge, BODY, [NEW_SECRET], now=NOW) == NOW - 300
    assert verify_signature(skewed, BODY, [NEW_SECRET], now=NOW) == NOW + 30
    assert verify_signature(stale, BODY, [NEW_SECRET], now=NOW, tolerance_s=600) == NOW - 301


def test_rotation_any_active_secret_matches_any_v1() -> None:
    # During a rotation the sender signs with both; the receiver may hold either.
    both = signature_header([OLD_SECRET, NEW_SECRET], BODY, timestamp=NOW)
    assert both.count("v1=") == 2
    assert verify_signature(both, BODY, [NEW_SECRET], now=NOW) == NOW
    assert verify_signature(both, BODY, [OLD_SECRET], now=NOW) == NOW
    # A sender still on the old secret is accepted while the receiver keeps it active.
    old_only = signature_header([OLD_SECRET], BODY, timestamp=NOW)
    assert verify_signature(old_only, BODY, [NEW_SECRET, OLD_SECRET], now=NOW) == NOW
    with pytest.raises(SignatureError):
        verify_signature(old_only, BODY, [NEW_SECRET], now=NOW)  # retired


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        f"t={NOW}",
        "v1=" + "a" * 64,
        f"t={NOW},t={NOW},v1=" + "a" * 64,
        f"t=-{NOW},v1=" + "a" * 64,
        f"t={NOW}.5,v1=" + "a" * 64,
        f"t={NOW},v1=" + "A" * 64,
        f"t={NOW},v1=" + "a" * 63,
        f"t={NOW},v1",
        f"t={NOW}," + ",".join(["v1=" + "a" * 64] * 9),
        f"t={NOW},v1=" + "a" * 64 + "x" * 3000,
    ],
)
def test_malformed_headers(header: str) -> None:
    with pytest.raises(SignatureError) as caught:
        verify_signature(header, BODY, [NEW_SECRET], now=NOW)
    assert caught.value.reason == "malformed"


def test_unknown_schemes_and_spacing_are_tolerated() -> None:
    digest = sign_payload(NEW_SECRET, BODY, timestamp=NOW)
    header = f" t={NOW} , v0=legacy, v1={digest} "
    assert verify_signature(header, BODY, [NEW_SECRET], now=NOW) == NOW


def test_no_active_secret_is_a_configuration_error() -> None:
    header = signature_header([NEW_SECRET], BODY, timestamp=NOW)
    with pytest.raises(ValueError, match="secret"):
        verify_signature(header, BODY, [], now=NOW)
    with pytest.raises(ValueError, match="secret"):
        verify_signature(header, BODY, [b""], now=NOW)


def test_fingerprint_ignores_how_the_header_is_spelt() -> None:
    both = signature_header([OLD_SECRET, NEW_SECRET], BODY, timestamp=NOW)
    t_part, old_v1, new_v1 = both.split(",")
    respellings = [both, f"{t_part},{new_v1}", f"{new_v1}, {old_v1},{t_part}", f"{t_part},{old_v1}"]
    # A replayer who strips or reorders v1 entries still hits the same replay key.
    assert len({signature_fingerprint(h, BODY) for h in respellings}) == 1
    other_body = signature_fingerprint(signature_header([NEW_SECRET], b"{}", timestamp=NOW), b"{}")
    other_time = signature_fingerprint(
        signature_header([NEW_SECRET], BODY, timestamp=NOW + 1), BODY
    )
    assert len({signature_fingerprint(both, BODY), other_body, other_time}) == 3
    with pytest.raises(SignatureError):
        signature_fingerprint("garbage", BODY)


# --- link tokens ------------------------------------------------------------------

claims_st = st.dictionaries(
    st.text(min_size=1, max_size=12).filter(lambda key: key != "exp"),
    st.one_of(st.text(max_size=40), st.integers(-(2**53), 2**53)),
    max_size=5,
)


def test_link_token_round_trip_and_shape() -> None:
    token = make_link_token(NEW_SECRET, {"alert_id": "a-1", "step": 2}, expires_at=NOW + 900)
    payload, mac = token.split(".")
    assert "=" not in token
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert decoded == {"alert_id": "a-1", "exp": NOW + 900, "step": 2}
    assert len(base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))) == 32
    assert read_link_token(NEW_SECRET, token, now=NOW) == decoded


@given(claims=claims_st, secret=secrets_st)
def test_link_token_round_trip_any_claims(claims: dict[str, str | int], secret: bytes) -> None:
    token = make_link_token(secret, claims, expires_at=NOW + 1)
    assert read_link_token(secret, token, now=NOW) == {**claims, "exp": NOW + 1}


@given(claims=claims_st, data=st.data())
def test_any_single_byte_change_to_a_link_token_is_rejected(
    claims: dict[str, str | int], data: st.DataObject
) -> None:
    token = make_link_token(NEW_SECRET, claims, expires_at=NOW + 600)
    index = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.characters(codec="ascii").filter(lambda c: c != token[index]))
    tampered = token[:index] + replacement + token[index + 1 :]
    with pytest.raises(LinkTokenError) as caught:
        read_link_token(NEW_SECRET, tampered, now=NOW)
    assert caught.value.reason in {"malformed", "mismatch"}


@given(claims=claims_st, data=st.data())
def test_truncated_or_extended_link_tokens_are_rejected(
    claims: dict[str, str | int], data: st.DataObject
) -> None:
    token = make_link_token(NEW_SECRET, claims, expires_at=NOW + 600)
    cut = data.draw(st.integers(0, len(token) - 1))
    suffix = data.draw(st.text(alphabet="AQgw_-.=", min_size=1, max_size=4))
    for forged in (token[:cut], token + suffix):
        with pytest.raises(LinkTokenError):
            read_link_token(NEW_SECRET, forged, now=NOW)


def test_link_token_expiry_and_rotation() -> None:
    token = make_link_token(OLD_SECRET, {"alert_id": "a-2"}, expires_at=NOW + 60)
    assert read_link_token([NEW_SECRET, OLD_SECRET], token, now=NOW + 59)["alert_id"] == "a-2"
    with pytest.raises(LinkTokenError) as expired:
        read_link_token([NEW_SECRET, OLD_SECRET], token, now=NOW + 60)
    with pytest.raises(LinkTokenError) as retired:
        read_link_token(NEW_SECRET, token, now=NOW)
    assert expired.value.reason == "expired"
    assert retired.value.reason == "mismatch"


def test_forged_claims_with_a_valid_looking_mac_are_a_mismatch() -> None:
    token = make_link_token(NEW_SECRET, {"alert_id": "a-3"}, expires_at=NOW + 60)
    _, mac = token.split(".")
    forged_payload = base64.urlsafe_b64encode(b'{"alert_id":"a-4","exp":9999999999}')
    forged = forged_payload.rstrip(b"=").decode() + "." + mac
    with pytest.raises(LinkTokenError) as caught:
        read_link_token(NEW_SECRET, forged, now=NOW)
    assert caught.value.reason == "mismatch"


def test_request_signature_cannot_be_replayed_as_a_link() -> None:
    # Same secret, same bytes: the link MAC's context prefix keeps them apart.
    payload = base64.urlsafe_b64encode(b'{"exp":9999999999}').rstrip(b"=").decode()
    request_mac = hmac.new(NEW_SECRET, payload.encode(), hashlib.sha256).digest()
    forged = payload + "." + base64.urlsafe_b64encode(request_mac).rstrip(b"=").decode()
    with pytest.raises(LinkTokenError) as caught:
        read_link_token(NEW_SECRET, forged, now=NOW)
    assert caught.value.reason == "mismatch"


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "!!!.???", "a" * 5000, "YQ.YQ="])
def test_malformed_link_tokens(token: str) -> None:
    with pytest.raises(LinkTokenError) as caught:
        read_link_token(NEW_SECRET, token, now=NOW)
    assert caught.value.reason == "malformed"


def test_link_claims_are_validated_when_made() -> None:
    with pytest.raises(ValueError, match="exp"):
        make_link_token(NEW_SECRET, {"exp": 1}, expires_at=NOW)
    with pytest.raises(ValueError, match="claim"):
        make_link_token(NEW_SECRET, {"ok": True}, expires_at=NOW)
    with pytest.raises(ValueError, match="secret"):
        make_link_token(b"", {}, expires_at=NOW)
