"""Router's channel adapters: deliver a requested notification on one channel, once."""

from __future__ import annotations

from services.router.delivery.adapters import ChannelAdapters, Channels, DeliveryError
from services.router.delivery.deliver import compose, deliver

__all__ = ["ChannelAdapters", "Channels", "DeliveryError", "compose", "deliver"]
