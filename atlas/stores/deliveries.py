"""Webhook deliveries atlas has taken on: a redelivery of one of them is acknowledged and dropped."""

from __future__ import annotations

from typing import Protocol


class DeliveryStore(Protocol):
    def claim_delivery(self, delivery_id: str, event: str) -> bool:
        """Record a delivery id; False when it was already claimed (a redelivery)."""
        ...

    def release_delivery(self, delivery_id: str) -> None:
        """Forget a claimed delivery whose work could not be queued, so a redelivery runs it."""
        ...
