"""`StateStore`: every role of the state store at once, as `SQLiteStateStore` and `RedisStateStore` implement it.

Code that needs one role depends on that role's protocol (`DeliveryStore`, `JobStore`, `PullStore`,
`PlanStore`, `PolicyStore`, `DriftStore`, `AuditLog`); the command context carries the whole store.
"""

from __future__ import annotations

from typing import Protocol

from atlas.stores.audit import AuditLog
from atlas.stores.deliveries import DeliveryStore
from atlas.stores.drift import DriftStore
from atlas.stores.jobs import JobStore
from atlas.stores.plans import PlanStore
from atlas.stores.policy import PolicyStore
from atlas.stores.pulls import PullStore


class StateStore(DeliveryStore, JobStore, PullStore, PlanStore, PolicyStore, DriftStore, AuditLog, Protocol):
    """Deliveries, jobs and their output, pull requests, plans, policy checks, drift checks and the audit log."""
