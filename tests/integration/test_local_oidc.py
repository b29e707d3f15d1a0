"""The local OpenID Provider (deploy/local/oidc.py): built once, then served from the cache;
started on 127.0.0.1 with its discovery document, keys and the console's client; stopped."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from deploy.local import oidc as local_oidc
from deploy.local.common import InfraError
from deploy.local.oidc import OidcUser


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as response:
        loaded = json.loads(response.read())
    assert isinstance(loaded, dict)
    return loaded


def test_a_second_build_reuses_the_cached_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    built = local_oidc.build()
    assert built.is_file()

    def no_go() -> str:
        raise InfraError("go must not run: the binary is cached")

    monkeypatch.setattr(local_oidc, "_go", no_go)
    assert local_oidc.build() == built


def test_the_provider_serves_discovery_and_keys_on_loopback_then_stops(tmp_path: Path) -> None:
    person = OidcUser("idp-test", "test@pd.test", "a-password-for-tests")
    data_dir = tmp_path / "oidc"
    endpoints = local_oidc.start(
        data_dir=data_dir,
        redirect_uris=["http://127.0.0.1:8000/signin/oidc/callback"],
        users=(person,),
    )
    try:
        assert endpoints.issuer.startswith("http://localhost:")
        assert len(endpoints.client_secret) >= 24
        assert "change-me" not in endpoints.client_secret
        # Asked again with the same clients and users: the running provider is kept.
        assert (
            local_oidc.start(
                data_dir=data_dir,
                redirect_uris=["http://127.0.0.1:8000/signin/oidc/callback"],
                users=(person,),
            )
            == endpoints
        )
        base = f"http://127.0.0.1:{endpoints.port}"
        document = _get(f"{base}/.well-known/openid-configuration")
        assert str(document["issuer"]).rstrip("/") == endpoints.issuer
        assert "S256" in document["code_challenge_methods_supported"]  # type: ignore[operator]
        keys = _get(f"{base}/keys")
        assert keys["keys"]
        assert local_oidc.status(data_dir=data_dir) == endpoints
        assert endpoints.env()["AVISO_CONSOLE_OIDC_ISSUER"] == endpoints.issuer
    finally:
        assert local_oidc.stop(data_dir=data_dir)
    assert local_oidc.status(data_dir=data_dir) is None
