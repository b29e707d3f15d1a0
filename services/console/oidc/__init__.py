"""Single sign-on through the department's OpenID Provider (optional; see docs/operations.md).

`claims` holds the rules without I/O (the pending sign-in cookie, the identity of an ID
token, the refusal reasons); `client` talks to the provider. Which console account an
identity opens is decided in services/console/accounts/identities.py.
"""

from services.console.oidc.claims import (
    PENDING_TTL,
    OidcIdentity,
    OidcRefused,
    PendingSignIn,
    PendingSignInSealer,
    RefusalReason,
    identity_from_claims,
    normalize_issuer,
)
from services.console.oidc.client import (
    OidcClient,
    ProviderMetadata,
    insecure_issuer,
    verify_id_token,
)

__all__ = [
    "PENDING_TTL",
    "OidcClient",
    "OidcIdentity",
    "OidcRefused",
    "PendingSignIn",
    "PendingSignInSealer",
    "ProviderMetadata",
    "RefusalReason",
    "identity_from_claims",
    "insecure_issuer",
    "normalize_issuer",
    "verify_id_token",
]
