"""The console as an OpenID Connect relying party (authorization code flow with PKCE).

authlib's protocol pieces build the authorization request (state, nonce, PKCE S256
challenge) and the token request with the client's authentication; the project's own
httpx client sends them (authlib's httpx integration now wants another HTTP library).
joserfc (authlib's JOSE library) checks the ID token's
signature against the provider's published keys (JWKS) and authlib's `CodeIDToken`
checks its claims: issuer, audience, expiry, issued-at, nonce, azp and at_hash. The
provider's metadata comes from its discovery document and is kept for `METADATA_TTL`; an
ID token signed with a key not seen yet fetches the keys once more (key rotation).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from services.console.oidc.claims import (
    OidcIdentity,
    OidcRefused,
    PendingSignIn,
    identity_from_claims,
    normalize_issuer,
)

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "METADATA_TTL",
    "OidcClient",
    "ProviderMetadata",
    "insecure_issuer",
    "verify_id_token",
]

METADATA_TTL = timedelta(hours=1)
# Clock skew allowed between the provider and the console when checking exp and iat.
LEEWAY_S = 60
# Never "none", and never an HMAC algorithm: those would take the client secret as the key.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


def insecure_issuer(issuer: str) -> bool:
    """True for an issuer reached over plain http anywhere but this machine."""
    parts = urlsplit(issuer)
    if parts.scheme == "https":
        return False
    host = parts.hostname or ""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """What the console needs from the discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: tuple[str, ...]
    token_auth_method: str

    @classmethod
    def from_discovery(cls, document: Mapping[str, Any], *, issuer: str) -> ProviderMetadata:
        """Checked metadata; the document must name the configured issuer (Discovery 4.3)."""
        found = document.get("issuer")
        if not isinstance(found, str) or normalize_issuer(found) != normalize_issuer(issuer):
            raise OidcRefused("unavailable", "discovery issuer differs")
        endpoints = {}
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = document.get(name)
            if not isinstance(value, str) or not value:
                raise OidcRefused("unavailable", f"discovery lacks {name}")
            endpoints[name] = value
        offered = document.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = tuple(a for a in offered if a in ASYMMETRIC_ALGORITHMS)
        if not algorithms:
            raise OidcRefused("unavailable", "no asymmetric ID token algorithm")
        methods = document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        method = "client_secret_basic" if "client_secret_basic" in methods else "client_secret_post"
        return cls(
            issuer=found,
            authorization_endpoint=endpoints["authorization_endpoint"],
            token_endpoint=endpoints["token_endpoint"],
            jwks_uri=endpoints["jwks_uri"],
            algorithms=algorithms,
            token_auth_method=method,
        )


def verify_id_token(
    id_token: str,
    *,
    keys: Mapping[str, Any],
    metadata: ProviderMetadata,
    client_id: str,
    nonce: str,
    access_token: str | None,
    now: datetime,
) -> OidcIdentity:
    """The identity of a signed, current ID token meant for this client and this sign-in."""
    try:
        token = jwt.decode(
            id_token,
            KeySet.import_key_set(dict(keys)),  # type: ignore[arg-type]
            registry=JWSRegistry(algorithms=list(metadata.algorithms)),
        )
    except InvalidKeyIdError:
        raise
    except (JoseError, ValueError) as error:
        raise OidcRefused("token", type(error).__name__) from None
    claims = CodeIDToken(
        token.claims,
        token.header,
        {
            "iss": {"essential": True, "value": metadata.issuer},
            "aud": {"essential": True, "value": client_id},
            "nonce": {"essential": True, "value": nonce},
        },
        {"client_id": client_id, "nonce": nonce, "access_token": access_token},
    )
    try:
        claims.validate(now=int(now.timestamp()), leeway=LEEWAY_S)
    except JoseError as error:
        raise OidcRefused("token", type(error).__name__) from None
    return identity_from_claims(claims, issuer=metadata.issuer)


@dataclass(frozen=True, slots=True)
class _Check:
    """What one ID token is verified against."""

    metadata: ProviderMetadata
    client_id: str
    nonce: str
    access_token: str | None
    now: datetime

    def verify(self, id_token: str, keys: Mapping[str, Any]) -> OidcIdentity:
        return verify_id_token(
            id_token,
            keys=keys,
            metadata=self.metadata,
            client_id=self.client_id,
            nonce=self.nonce,
            access_token=self.access_token,
            now=self.now,
        )


class OidcClient:
    """One configured provider: discovery, authorization request, code exchange, ID token."""

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        client_secret: str,
        http: httpx.AsyncClient,
        clock: Callable[[], datetime],
    ) -> None:
        self.issuer = normalize_issuer(issuer)
        self.client_id = client_id
        self._secret = client_secret
        self._http = http
        self._clock = clock
        self._metadata: tuple[datetime, ProviderMetadata] | None = None
        self._keys: dict[str, Any] | None = None

    async def aclose(self) -> None:
        """Close the HTTP client (discovery and keys)."""
        await self._http.aclose()

    async def metadata(self) -> ProviderMetadata:
        """The provider's metadata, discovered at most once per METADATA_TTL."""
        now = self._clock()
        if self._metadata is not None and self._metadata[0] > now:
            return self._metadata[1]
        document = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
        found = ProviderMetadata.from_discovery(document, issuer=self.issuer)
        self._metadata = (now + METADATA_TTL, found)
        self._keys = None
        return found

    async def authorization_url(self, *, pending: PendingSignIn, redirect_uri: str) -> str:
        """Where to send the browser: code flow, scope openid, state, nonce, PKCE S256."""
        metadata = await self.metadata()
        return str(
            prepare_grant_uri(
                metadata.authorization_endpoint,
                self.client_id,
                "code",
                redirect_uri=redirect_uri,
                scope="openid",
                state=pending.state,
                nonce=pending.nonce,
                code_challenge=create_s256_code_challenge(pending.code_verifier),
                code_challenge_method="S256",
            )
        )

    async def identity(
        self, *, code: str, pending: PendingSignIn, redirect_uri: str
    ) -> OidcIdentity:
        """Exchange the code (with the PKCE verifier) and verify the ID token it brings."""
        metadata = await self.metadata()
        token = await self._exchange(
            metadata, code=code, pending=pending, redirect_uri=redirect_uri
        )
        id_token = token.get("id_token")
        access_token = token.get("access_token")
        if not isinstance(id_token, str):
            raise OidcRefused("token", "no id_token")
        check = _Check(
            metadata=metadata,
            client_id=self.client_id,
            nonce=pending.nonce,
            access_token=access_token if isinstance(access_token, str) else None,
            now=self._clock(),
        )
        try:
            return check.verify(id_token, await self._jwks(metadata))
        except InvalidKeyIdError:
            # A key the provider added since the keys were fetched (rotation): fetch once more.
            keys = await self._jwks(metadata, force=True)
            try:
                return check.verify(id_token, keys)
            except InvalidKeyIdError:
                raise OidcRefused("token", "unknown key") from None

    async def _exchange(
        self, metadata: ProviderMetadata, *, code: str, pending: PendingSignIn, redirect_uri: str
    ) -> dict[str, Any]:
        """The token endpoint's answer to the code, the verifier and the client's credentials."""
        body = prepare_token_request(
            "authorization_code",
            redirect_uri=redirect_uri,
            code=code,
            code_verifier=pending.code_verifier,
        )
        auth = ClientAuth(self.client_id, self._secret, metadata.token_auth_method)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        url, headers, body = auth.prepare("POST", metadata.token_endpoint, headers, body)
        try:
            response = await self._http.post(url, content=body, headers=headers)
            answer = response.json()
        except (httpx.HTTPError, ValueError):
            raise OidcRefused("unavailable", "token endpoint") from None
        if response.status_code != 200 or not isinstance(answer, dict) or "error" in answer:
            raise OidcRefused("token", f"token endpoint answered {response.status_code}")
        return answer

    async def _jwks(self, metadata: ProviderMetadata, *, force: bool = False) -> dict[str, Any]:
        if self._keys is None or force:
            self._keys = await self._get_json(metadata.jwks_uri)
        return self._keys

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url)
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError):
            raise OidcRefused("unavailable", "provider unreachable") from None
        if not isinstance(body, dict):
            raise OidcRefused("unavailable", "not a JSON object")
        return body
