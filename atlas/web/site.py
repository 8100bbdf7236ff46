"""What the web pages know of the atlas server they belong to, kept on the Flask app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from flask import Response, current_app
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from atlas.commands.context import CommandContext
from atlas.jobs.queue import JobQueue
from atlas.web.auth import BasicAuth
from atlas.web.csrf import CsrfTokens
from atlas.web.live import StreamSlots

EXTENSION = "atlas.web"
"""The key of the server's `Site` in `app.extensions`."""


class WebSettings(Protocol):
    """The settings the web pages read (fields of `atlas.config.settings.Settings`)."""

    @property
    def web_username(self) -> str | None: ...

    @property
    def web_password(self) -> SecretStr | None: ...

    @property
    def job_log_retention_days(self) -> int: ...


@dataclass
class Site:
    """One server's pages: its context and queue, and the web's own secrets and limits."""

    ctx: CommandContext
    queue: JobQueue
    csrf: CsrfTokens
    metrics: CollectorRegistry
    auth: BasicAuth | None = None
    retention_days: int = 30
    streams: StreamSlots = field(default_factory=StreamSlots)

    @property
    def secure_cookies(self) -> bool:
        """Cookies only over TLS when the server's public URL is https."""
        return self.ctx.settings.atlas_url.startswith("https://")


def current_site() -> Site:
    site = current_app.extensions[EXTENSION]
    assert isinstance(site, Site), "atlas.web.init_app was not called for this app"
    return site


def require_login() -> Response | None:
    """A `before_request` hook: the 401 asking for credentials when basic auth is on and they are missing."""
    site = current_site()
    return site.auth.refusal() if site.auth is not None else None
