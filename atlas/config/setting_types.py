"""What settings are declared with: `setting()`, their groups and value types, and secret files.

The pieces `Settings` (in `settings_model`) and the loader (in `settings`) both use, kept apart so
that neither imports the other for them.
"""

from __future__ import annotations

import json
import types
import typing
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse, urlsplit

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
)
from pydantic.fields import FieldInfo

# Re-exported: the loader and the model take them from here with the rest.
from atlas.config.setting_names import ALIASES as ALIASES
from atlas.config.setting_names import CONFIG_ENV as CONFIG_ENV
from atlas.config.setting_names import ENV_PREFIX as ENV_PREFIX
from atlas.config.setting_names import SettingsError as SettingsError


class Group(StrEnum):
    """The sections settings are listed under in `--help` and in the example config file."""

    GITHUB = "GitHub"
    GITLAB = "GitLab"
    SERVER = "Server"
    COMMANDS = "Commands and locks"
    DRIFT = "Drift detection"
    TERRAFORM = "Terraform"
    SANDBOX = "Sandbox"
    LOGGING = "Logging"


def setting(
    default: Any,
    description: str,
    group: Group,
    *,
    metavar: str | None = None,
    example: object = None,
    default_text: str | None = None,
    **constraints: Any,
) -> Any:
    """Declare a setting: its default, its help text and where it is listed.

    `example` is shown, commented out, in the example config file for settings without a safe
    default; `default_text` replaces the default in help where the real one is computed.
    """
    extra: dict[str, Any] = {"group": group.value}
    if metavar is not None:
        extra["metavar"] = metavar
    if example is not None:
        extra["example"] = example
    if default_text is not None:
        extra["default_text"] = default_text
    return Field(default, description=description, json_schema_extra=extra, **constraints)


def split_commas(value: object) -> object:
    """Flags and environment variables give lists as `a,b,c`; the config file may give a YAML list."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def apply_on_merge_words(value: object) -> object:
    """YAML and flags may say true/false as booleans or words."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip().lower() if isinstance(value, str) else value


REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")
"""The reactions GitHub puts on a comment (GitLab's award emoji for them are the GitLab client's)."""

REACTION_ALIASES = {"thumbsup": "+1", "thumbsdown": "-1", "tada": "hooray"}
"""Emoji names Atlantis configs use (GitLab's) for GitHub's reactions."""

NO_REACTION = "none"


def reaction_name(value: object) -> object:
    """A reaction as GitHub names it (`:tada:` and `thumbsup` too), or `none`; ValueError for any other."""
    if not isinstance(value, str):
        return value
    name = value.strip().strip(":").lower()
    name = REACTION_ALIASES.get(name, name)
    if name not in (*REACTIONS, NO_REACTION):
        raise ValueError(f"{value!r} is not a reaction GitHub has: use one of {', '.join(REACTIONS)}, or none")
    return name


CommaList = Annotated[list[str], BeforeValidator(split_commas)]


Source = Literal["flag", "env", "file"]


SECRET_FILES = {
    "gh_token": "gh_token_file",
    "gh_app_key": "gh_app_key_file",
    "gh_webhook_secret": "gh_webhook_secret_file",
    "gitlab_token": "gitlab_token_file",
    "gitlab_webhook_secret": "gitlab_webhook_secret_file",
    "api_secret": "api_secret_file",
    "web_password": "web_password_file",
    "slack_token": "slack_token_file",
}
"""Each secret setting that may be read from a file instead, and the setting naming that file."""


MAX_SECRET_FILE_BYTES = 64 * 1024


LogLevel = Literal["debug", "info", "warning", "error"]


LogFormat = Literal["text", "json"]


def http_url(value: str, example: str) -> str:
    """`value` without its trailing slash, or a ValueError saying what a valid one looks like."""
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"must be an http(s) URL such as {example}, got {json.dumps(value)}")
    return value.rstrip("/")


GITHUB_API_HOST = "api.github.com"


ENTERPRISE_API_PATH = "/api/v3"


def git_host_url(api_url: str) -> str:
    """The base URL repositories are cloned from, for a GitHub API base URL; ValueError if it has none.

    `https://api.github.com` → `https://github.com`; GitHub Enterprise Server's `https://HOST/api/v3`
    → `https://HOST`; GitHub Enterprise Cloud's `https://api.SUBDOMAIN.ghe.com` → `https://SUBDOMAIN.ghe.com`.
    """
    parts = urlsplit(api_url.rstrip("/"))
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if parts.path.endswith(ENTERPRISE_API_PATH):
        return f"{parts.scheme}://{netloc}{parts.path[: -len(ENTERPRISE_API_PATH)]}"
    if not parts.path and netloc.lower().startswith("api.") and netloc.count(".") >= 2:
        return f"{parts.scheme}://{netloc[len('api.'):]}"
    raise ValueError(
        f"cannot tell the git host of {json.dumps(api_url)}: GitHub's API is https://{GITHUB_API_HOST} "
        f"and GitHub Enterprise Server's is https://HOST{ENTERPRISE_API_PATH}"
    )


def unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def is_secret(field: FieldInfo) -> bool:
    return unwrap_optional(field.annotation) is SecretStr


def flag_of(name: str) -> str:
    return "--" + name.replace("_", "-")


def read_secret_file(path: Path, file_setting: str) -> str:
    """The secret in `path`, without the newline editors and `kubectl create secret` leave; ValueError if unreadable.

    The message names the file and the reason, never what the file holds.
    """
    try:
        size = path.stat().st_size
        if size > MAX_SECRET_FILE_BYTES:
            raise ValueError(f"{file_setting}: {path} is {size} bytes, too large to be a secret")
        raw = path.read_bytes()
    except IsADirectoryError:
        raise ValueError(f"{file_setting}: {path} is a directory, not a file") from None
    except OSError as error:
        raise ValueError(f"{file_setting}: cannot read {path}: {error.strerror or type(error).__name__}") from None
    try:
        value = raw.decode("utf-8").strip("\r\n")
    except UnicodeDecodeError:
        raise ValueError(f"{file_setting}: {path} is not UTF-8 text") from None
    if not value.strip():
        raise ValueError(f"{file_setting}: {path} is empty")
    return value
