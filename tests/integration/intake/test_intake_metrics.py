"""`/metrics` on its own address (issue 12, item 4): served there, absent from the API port."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from services.intake.config import IntakeSettings
from tests.integration.intake.intake_support import run_intake


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_metrics_are_served_on_the_metrics_address_only(
    intake_settings: Callable[..., IntakeSettings],
) -> None:
    async with run_intake(intake_settings(metrics_address="127.0.0.1:0")) as intake:
        assert (await intake.client.get("/metrics")).status_code == 404
        port = intake.app.state.metrics_port
        async with httpx.AsyncClient() as scraper:
            response = await scraper.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert response.status_code == 200
        assert 'route="/metrics",service="intake"' not in response.text
        assert "aviso_outbox_pending" in response.text
