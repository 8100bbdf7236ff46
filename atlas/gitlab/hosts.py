"""Where a GitLab lives and how git authenticates to it: pure functions of the settings.

`--gitlab-hostname` is a bare host (`gitlab.com`, `gitlab.example.com:8443`, meaning https) or a
URL with its scheme (and port, and a relative URL root), taken as it is (`http://127.0.0.1:8080`).
The REST API is at `<base>/api/v4`. Git clones over https with the token in an
`Authorization` header for that one command (user `oauth2`, as GitLab documents for tokens),
never in a URL that git would store in `.git/config`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

DEFAULT_HOSTNAME = "gitlab.com"
API_PATH = "/api/v4"
GIT_USER = "oauth2"
"""The basic-auth user GitLab takes with an OAuth or personal/project/group access token."""


class HostnameError(ValueError):
    """`--gitlab-hostname` is not a host or an http(s) URL; the message says why."""


def gitlab_base_url(hostname: str = DEFAULT_HOSTNAME) -> str:
    """The web root of the GitLab `hostname` names: `https://gitlab.com`, `http://127.0.0.1:8080`."""
    text = hostname.strip()
    if not text:
        raise HostnameError("the GitLab hostname is empty (use e.g. gitlab.com or https://gitlab.example.com)")
    candidate = text if "://" in text else f"https://{text}"
    try:
        parts = urlsplit(candidate)
        port = parts.port
    except ValueError as error:
        raise HostnameError(f"the GitLab hostname {text!r} is not a host or URL: {error}") from None
    if parts.scheme not in ("http", "https"):
        raise HostnameError(f"the GitLab hostname {text!r} must use http:// or https://, not {parts.scheme}://")
    if not parts.hostname:
        raise HostnameError(f"the GitLab hostname {text!r} names no host")
    if parts.username is not None or parts.password is not None:
        raise HostnameError("the GitLab hostname must not carry credentials; give the token with --gitlab-token")
    if parts.query or parts.fragment:
        raise HostnameError(f"the GitLab hostname {text!r} must not have a query or fragment")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = f"{host}:{port}" if port is not None else host
    path = parts.path.rstrip("/")
    if path.endswith(API_PATH):
        raise HostnameError(f"give the GitLab hostname without {API_PATH} (atlas adds it): {text!r}")
    return f"{parts.scheme}://{netloc}{path}"


def gitlab_api_url(hostname: str = DEFAULT_HOSTNAME) -> str:
    """The REST API v4 root: `<base>/api/v4`."""
    return gitlab_base_url(hostname) + API_PATH


def gitlab_host(hostname: str = DEFAULT_HOSTNAME) -> str:
    """The host name alone, as the repository allowlist names it (`gitlab.example.com/group/project`)."""
    return urlsplit(gitlab_base_url(hostname)).hostname or ""


def project_clone_url(base_url: str, full_path: str) -> str:
    """The https clone URL of `group/subgroup/project`: no credentials, safe to keep in `.git/config`."""
    segments = [segment for segment in full_path.strip("/").split("/") if segment]
    if len(segments) < 2 or any(segment in (".", "..") for segment in segments):
        raise ValueError(f"GitLab project paths are group[/subgroup…]/project, not {full_path!r}")
    return f"{base_url.rstrip('/')}/{'/'.join(quote(s, safe='') for s in segments)}.git"


@dataclass(frozen=True)
class GitAuth:
    """The token as git sends it to GitLab, for one command's environment only."""

    header: str
    secrets: tuple[str, ...]
    """What must never be printed: the token and its base64 form (for the command's redaction)."""

    @property
    def config(self) -> dict[str, str]:
        """Git configuration to pass through `GIT_CONFIG_COUNT`/`KEY_n`/`VALUE_n`, never argv."""
        return {"http.extraHeader": self.header}

    def environment(self, extra_config: dict[str, str] | None = None) -> dict[str, str]:
        """`GIT_CONFIG_*` variables for one git command: the header plus `extra_config`."""
        config = {**(extra_config or {}), **self.config}
        env = {"GIT_CONFIG_COUNT": str(len(config))}
        for index, (key, value) in enumerate(config.items()):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        return env


def git_http_auth(token: str) -> GitAuth:
    """HTTP basic auth `oauth2:<token>` as an extra header, the way GitLab takes tokens for git."""
    if not token:
        raise ValueError("a GitLab token is needed to authenticate git")
    credentials = base64.b64encode(f"{GIT_USER}:{token}".encode()).decode()
    return GitAuth(header=f"Authorization: Basic {credentials}", secrets=(token, credentials))
