"""Every operation of the three services x every role and anonymous (issue 12, item 11).

The expected table is written out here, not read from the code, so a permission that changes
by accident fails: anonymous gets 401, a role the table does not admit gets 403 (for its role,
before anything is looked up), and an admitted role gets past both (to a 2xx, or the 404/409/
422 of a made-up id or body). The OpenAPI documents must say the same (`x-roles`), and every
documented operation must be in the table, so a new route cannot skip it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from services.common.auth import Role
from services.intake.config import IntakeSettings
from tests.integration.api_apps import router_running
from tests.integration.intake.intake_support import KEY_K1, run_intake
from tests.integration.rumor_control.rumor_harness import rumor_app_running
from tests.support import infra
from tests.support.apps import issue_test_token

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

FO, CONTACT, VETTER, LIAISON, OPS, ADMIN = (r.value for r in Role)
PUBLIC: frozenset[str] = frozenset()  # no token needed (the link or feed is public)

# service -> (method, path) -> roles admitted
MATRIX: dict[str, dict[tuple[str, str], frozenset[str] | None]] = {
    "intake": {
        ("POST", "/v1/notices"): frozenset({FO}),
        ("GET", "/v1/notices"): frozenset({FO, CONTACT, OPS}),
        ("GET", "/v1/notices/{notice_id}"): frozenset({FO, CONTACT, OPS}),
        ("POST", "/v1/notices/{notice_id}/update"): frozenset({FO}),
        ("POST", "/v1/notices/{notice_id}/cancel"): frozenset({FO}),
        ("GET", "/v1/ops/audit"): frozenset({OPS}),
    },
    "router": {
        ("GET", "/v1/alerts"): frozenset({CONTACT, OPS, ADMIN}),
        ("GET", "/v1/alerts/{alert_id}"): frozenset({CONTACT, OPS, ADMIN}),
        ("POST", "/v1/alerts/{alert_id}/ack"): frozenset({CONTACT}),
        ("GET", "/v1/alerts/{alert_id}/timeline"): frozenset({CONTACT, OPS, ADMIN}),
        ("GET", "/v1/directory"): frozenset({ADMIN}),
        ("PUT", "/v1/directory"): frozenset({ADMIN}),
        ("GET", "/v1/ops/dead-letters"): frozenset({OPS}),
        ("POST", "/v1/ops/dead-letters/replay"): frozenset({OPS}),
        ("GET", "/ack"): PUBLIC,
        ("POST", "/ack"): PUBLIC,
        # The SMS gateway's callbacks: a signed report URL, a shared secret in the URL.
        ("GET", "/sms/reports"): PUBLIC,
        ("GET", "/sms/replies"): PUBLIC,
    },
    "rumor_control": {
        ("GET", "/v1/rumors"): frozenset({VETTER, OPS}),
        ("POST", "/v1/rumors"): frozenset({VETTER, LIAISON}),
        ("GET", "/v1/rumors/{rumor_id}"): frozenset({VETTER, OPS}),
        ("POST", "/v1/rumors/{rumor_id}/assess"): frozenset({VETTER}),
        ("GET", "/v1/rumors/{rumor_id}/timeline"): frozenset({VETTER, OPS}),
        ("GET", "/v1/bulletins"): frozenset({VETTER, LIAISON, OPS}),
        ("GET", "/v1/bulletins/{bulletin_id}"): frozenset({VETTER, LIAISON, OPS}),
        ("GET", "/v1/bulletins/{bulletin_id}/timeline"): frozenset({VETTER, OPS}),
        ("GET", "/v1/bulletins/{bulletin_id}/radio"): frozenset({VETTER, LIAISON, OPS}),
        ("PUT", "/v1/bulletins/{bulletin_id}/texts/{language}"): frozenset({VETTER}),
        ("POST", "/v1/bulletins/{bulletin_id}/signoff"): frozenset({VETTER}),
        ("POST", "/v1/bulletins/{bulletin_id}/approve"): frozenset({VETTER}),
        ("POST", "/v1/bulletins/{bulletin_id}/reject"): frozenset({VETTER}),
        ("POST", "/v1/bulletins/{bulletin_id}/retract"): frozenset({VETTER}),
        ("GET", "/v1/bulletins/{bulletin_id}/deliveries"): frozenset({VETTER, OPS}),
        ("GET", "/v1/receipts"): PUBLIC,
        ("GET", "/feeds/bulletins.atom"): PUBLIC,
        ("GET", "/feeds/cap.xml"): PUBLIC,
        ("GET", "/feeds/cap/{bulletin_id}/{version}.xml"): PUBLIC,
        ("GET", "/sms/keywords"): PUBLIC,  # the SMS gateway, with a shared secret in the URL
        ("GET", "/sms/reports"): PUBLIC,  # a signed report URL
    },
}
IDENTITIES = [*(r.value for r in Role), None]  # None: no token at all


@dataclass
class Api:
    client: httpx.AsyncClient
    tokens: dict[str, str]  # role -> token
    spec: dict[str, Any]


async def _tokens(settings: Any) -> dict[str, str]:
    return {r.value: await issue_test_token(settings, r, f"matrix {r.value}") for r in Role}


@pytest.fixture(scope="module")
async def apis(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, kafka_bootstrap: str
) -> AsyncIterator[dict[str, Api]]:
    tmp = tmp_path_factory.mktemp("matrix")
    databases = [await infra.fresh_database_async(postgres_url) for _ in range(3)]
    settings = IntakeSettings(
        var_dir=tmp / "intake",
        database_url=databases[0],
        kafka_bootstrap_servers=kafka_bootstrap,
        intake_encryption_keys=SecretStr(f"k1:{KEY_K1}"),
        intake_sweep_interval_s=3600.0,
        log_format="json",
    )
    try:
        kafka = kafka_bootstrap
        async with (
            run_intake(settings) as intake,
            router_running(tmp / "r", database_url=databases[1], kafka_bootstrap=kafka) as router,
            rumor_app_running(tmp / "rc", database_url=databases[2], kafka_bootstrap=kafka) as rc,
        ):
            rc_tokens = await _tokens(rc.settings)
            yield {
                "intake": Api(intake.client, await _tokens(settings), intake.app.openapi()),
                "router": Api(router.client, router.tokens, router.client._transport.app.openapi()),  # type: ignore[attr-defined]
                "rumor_control": Api(rc.client, rc_tokens, rc.client._transport.app.openapi()),  # type: ignore[attr-defined]
            }
    finally:
        for database in databases:
            await infra.drop_database_async(database)


def _url(path: str) -> str:
    return (
        path.replace("{language}", "en")
        .replace("{version}", "1")
        .replace("{notice_id}", str(uuid.uuid4()))
        .replace("{alert_id}", str(uuid.uuid4()))
        .replace("{rumor_id}", str(uuid.uuid4()))
        .replace("{bulletin_id}", str(uuid.uuid4()))
    )


def _is_role_refusal(response: httpx.Response) -> bool:
    return response.status_code == 403 and "role may not" in response.json().get("detail", "")


@pytest.mark.parametrize("service", sorted(MATRIX))
def test_the_matrix_covers_every_operation_and_matches_the_document(
    apis: dict[str, Api], service: str
) -> None:
    documented: dict[tuple[str, str], frozenset[str] | None] = {}
    for path, operations in apis[service].spec["paths"].items():
        for method, operation in operations.items():
            if "internal" in operation.get("tags", ()) or path == "/metrics":
                continue
            documented[(method.upper(), path)] = frozenset(operation.get("x-roles", ()))
    assert documented == MATRIX[service]


@pytest.mark.parametrize(
    ("service", "method", "path"),
    [(s, m, p) for s, ops in MATRIX.items() for (m, p) in ops],
    ids=[f"{s} {m} {p}" for s, ops in MATRIX.items() for (m, p) in ops],
)
async def test_every_role_and_anonymous_on_every_operation(
    apis: dict[str, Api], service: str, method: str, path: str
) -> None:
    api = apis[service]
    admitted = MATRIX[service][(method, path)]
    outcomes: dict[str | None, int] = {}
    for identity in IDENTITIES:
        headers = {} if identity is None else {"Authorization": f"Bearer {api.tokens[identity]}"}
        body = {"json": {}} if method in ("POST", "PUT") else {}
        response = await api.client.request(method, _url(path), headers=headers, **body)
        outcomes[identity] = response.status_code
        assert response.status_code < 500, (identity, response.text)
        if admitted == PUBLIC:
            assert response.status_code != 401, identity
            continue
        if identity is None:
            assert response.status_code == 401, response.text
            assert response.headers["www-authenticate"].startswith("Bearer")
        elif identity in admitted:
            assert response.status_code != 401, response.text
            assert not _is_role_refusal(response), (identity, response.text)
        else:
            assert _is_role_refusal(response), (identity, response.status_code, response.text)
    assert outcomes
