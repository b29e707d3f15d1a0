"""Single sign-on rules without I/O: ID token checks, the identity it names, the pending
sign-in cookie, provider metadata, and the refusals of an unsafe configuration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError
from joserfc.jwk import KeySet, OctKey, RSAKey
from pydantic import SecretStr

from services.common.runtime import DevelopmentSecretsRefused
from services.console.config import ConsoleSettings
from services.console.http.oidc import _REFUSALS, oidc_client, safe_next
from services.console.i18n import LANGUAGES, catalog
from services.console.oidc import (
    PENDING_TTL,
    OidcIdentity,
    OidcRefused,
    PendingSignIn,
    PendingSignInSealer,
    ProviderMetadata,
    identity_from_claims,
    insecure_issuer,
    verify_id_token,
)

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
ISSUER = "https://idp.example.gov"
CLIENT = "aviso-console"
NONCE = "n-0123456789"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})
KEYS = KeySet([KEY]).as_dict(private=False)
METADATA = ProviderMetadata(
    issuer=ISSUER,
    authorization_endpoint=f"{ISSUER}/auth",
    token_endpoint=f"{ISSUER}/token",
    jwks_uri=f"{ISSUER}/keys",
    algorithms=("RS256",),
    token_auth_method="client_secret_basic",
)


def _claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "person-42",
        "aud": CLIENT,
        "exp": int((NOW + timedelta(minutes=5)).timestamp()),
        "iat": int(NOW.timestamp()),
        "nonce": NONCE,
        "email": "someone@example.gov",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _token(key: Any = KEY, alg: str = "RS256", kid: str = "k1", **changes: Any) -> str:
    return jwt.encode({"alg": alg, "kid": kid}, _claims(**changes), key)


def _verify(token: str, *, nonce: str = NONCE, now: datetime = NOW) -> OidcIdentity:
    return verify_id_token(
        token,
        keys=KEYS,
        metadata=METADATA,
        client_id=CLIENT,
        nonce=nonce,
        access_token=None,
        now=now,
    )


def test_a_signed_current_id_token_for_this_client_names_its_issuer_and_subject() -> None:
    assert _verify(_token()) == OidcIdentity(issuer=ISSUER, subject="person-42")
    # An audience list that holds this client is fine too.
    assert _verify(_token(aud=[CLIENT, "other"], azp=CLIENT)).subject == "person-42"


@pytest.mark.parametrize(
    ("changes", "case"),
    [
        ({"nonce": "another-sign-in"}, "nonce of another sign-in (replay)"),
        ({"nonce": None}, "no nonce"),
        ({"aud": "another-client"}, "meant for another client"),
        ({"iss": "https://evil.example"}, "another issuer"),
        ({"exp": int((NOW - timedelta(minutes=5)).timestamp())}, "expired"),
        ({"azp": "another-client"}, "authorized party is another client"),
        ({"sub": None}, "no subject"),
        ({"sub": "x" * 256}, "subject longer than OpenID allows"),
    ],
)
def test_an_id_token_failing_a_check_is_refused(changes: dict[str, Any], case: str) -> None:
    with pytest.raises(OidcRefused) as refused:
        _verify(_token(**changes))
    assert refused.value.reason == "token", case


def test_an_id_token_signed_with_another_key_or_a_symmetric_one_is_refused() -> None:
    stranger = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    with pytest.raises(OidcRefused):
        _verify(_token(key=stranger))
    # HS256 keyed with a guessable secret: never accepted, whatever the key.
    with pytest.raises(OidcRefused):
        _verify(_token(key=OctKey.import_key(b"aviso-console-secret-0123456789ab"), alg="HS256"))
    # A key id the keys do not have: the client fetches the keys once more (rotation).
    with pytest.raises(InvalidKeyIdError):
        _verify(_token(key=RSAKey.generate_key(2048, parameters={"kid": "k2"}), kid="k2"))
    # A token that is not a JWT at all.
    with pytest.raises(OidcRefused):
        _verify("not.a.token")


def test_identity_comes_from_iss_and_sub_only_never_from_the_email_claim() -> None:
    claims = {"iss": ISSUER + "/", "sub": "person-42", "email": "spoc@example.gov"}
    identity = identity_from_claims(claims, issuer=ISSUER)
    assert identity == OidcIdentity(issuer=ISSUER, subject="person-42")
    with pytest.raises(OidcRefused):
        identity_from_claims({"iss": ISSUER, "email": "spoc@example.gov"}, issuer=ISSUER)
    with pytest.raises(OidcRefused):
        identity_from_claims({"iss": ISSUER, "sub": "  "}, issuer=ISSUER)


def test_pending_sign_in_opens_only_unchanged_with_this_key_and_in_time() -> None:
    sealer = PendingSignInSealer("console-secret")
    pending = PendingSignIn.begin(next_path="/alerts/1", now=NOW)
    assert len(pending.code_verifier) >= 43  # RFC 7636 4.1
    assert pending.state != pending.nonce
    value = sealer.seal(pending)
    assert pending.state not in value
    assert pending.code_verifier not in value
    assert sealer.open(value, now=NOW + timedelta(minutes=9)) == pending
    refusals = []
    for cookie, key, at in [
        (value, "console-secret", NOW + PENDING_TTL),  # expired
        (value, "other-secret", NOW),  # another console's key
        (value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB"), "console-secret", NOW),
        ("", "console-secret", NOW),  # no cookie
        ("%%%", "console-secret", NOW),
    ]:
        with pytest.raises(OidcRefused) as refused:
            PendingSignInSealer(key).open(cookie, now=at)
        refusals.append(refused.value.reason)
    assert refusals == ["pending"] * 5


def test_the_state_must_be_the_one_this_browser_was_given() -> None:
    pending = PendingSignIn.begin(next_path="/", now=NOW)
    pending.check_state(pending.state)
    for returned in (
        None,
        "",
        pending.state + "x",
        PendingSignIn.begin(next_path="/", now=NOW).state,
    ):
        with pytest.raises(OidcRefused) as refused:
            pending.check_state(returned)
        assert refused.value.reason == "state"


def test_discovery_must_name_the_configured_issuer_and_an_asymmetric_algorithm() -> None:
    document = {
        "issuer": ISSUER + "/",
        "authorization_endpoint": f"{ISSUER}/auth",
        "token_endpoint": f"{ISSUER}/token",
        "jwks_uri": f"{ISSUER}/keys",
        "id_token_signing_alg_values_supported": ["HS256", "RS256", "none"],
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
    }
    found = ProviderMetadata.from_discovery(document, issuer=ISSUER)
    assert found.algorithms == ("RS256",)
    assert found.token_auth_method == "client_secret_post"
    assert found.issuer == ISSUER + "/"  # ID tokens must carry it exactly as published
    for broken in (
        {"issuer": "https://evil.example"},
        {"jwks_uri": None},
        {"id_token_signing_alg_values_supported": ["HS256", "none"]},
    ):
        with pytest.raises(OidcRefused) as refused:
            ProviderMetadata.from_discovery({**document, **broken}, issuer=ISSUER)
        assert refused.value.reason == "unavailable"


def test_plain_http_issuers_are_insecure_except_on_this_machine() -> None:
    assert not insecure_issuer("https://login.example.gov/realms/pd")
    assert not insecure_issuer("http://localhost:9998")
    assert not insecure_issuer("http://127.0.0.1:9998/")
    assert insecure_issuer("http://login.example.gov")
    assert insecure_issuer("http://10.0.0.5:8080")


def _settings(**values: Any) -> ConsoleSettings:
    values.setdefault("development_mode", False)  # the suite runs in development mode
    return ConsoleSettings(database_url=None, **values)


def test_single_sign_on_is_off_without_an_issuer_and_refuses_the_published_secret() -> None:
    clock = lambda: NOW  # noqa: E731
    assert oidc_client(_settings(), clock=clock) is None
    dev = _settings(console_oidc_issuer=ISSUER)
    assert "AVISO_CONSOLE_OIDC_CLIENT_SECRET" in dev.development_secrets()
    assert "AVISO_CONSOLE_OIDC_CLIENT_SECRET" not in _settings().development_secrets()
    with pytest.raises(DevelopmentSecretsRefused):
        oidc_client(dev, clock=clock)
    # On a development machine the published secret is accepted.
    assert oidc_client(_settings(console_oidc_issuer=ISSUER, development_mode=True), clock=clock)
    own = _settings(
        console_oidc_issuer=ISSUER, console_oidc_client_secret=SecretStr("the-idp-gave-us-this")
    )
    client = oidc_client(own, clock=clock)
    assert client is not None
    assert client.issuer == ISSUER
    with pytest.raises(ValueError, match="https"):
        oidc_client(
            _settings(
                console_oidc_issuer="http://login.example.gov",
                console_oidc_client_secret=SecretStr("the-idp-gave-us-this"),
            ),
            clock=clock,
        )


def test_every_refusal_has_its_page_text_in_both_languages() -> None:
    for language in LANGUAGES:
        messages = catalog(language)
        for _status, key in _REFUSALS.values():
            assert f"{key}.title" in messages, (language, key)
            assert f"{key}.text" in messages, (language, key)
        assert "{name}" in messages["signin.with"]


def test_the_page_after_sign_in_is_always_a_path_of_this_console() -> None:
    assert safe_next("/alerts/42?x=1") == "/alerts/42?x=1"
    for hostile in ("https://evil.example", "//evil.example", "/\\evil.example", "alerts", ""):
        assert safe_next(hostile) == "/", hostile
