"""atlas's settings: one model from which every flag, `ATLAS_*` variable and config-file key is derived.

A setting is declared once, as a field of `Settings` built with `setting()`; its name gives the flag
(`gh_token` → `--gh-token`), the environment variable (`ATLAS_GH_TOKEN`) and the config-file key
(`gh-token`, or `gh_token`), and its description is its `--help` text. `load_settings()` merges the
sources (flag > environment > config file > default) and turns a wrong value into a `SettingsError`
whose one-line message names the setting the way the user wrote it.

The model itself is in `settings_model`, the pieces fields are declared with in `setting_types`;
both are importable from here.
"""

from __future__ import annotations

import difflib
import json
import os
import textwrap
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    SecretStr,
    ValidationError,
)
from pydantic.fields import FieldInfo

from atlas.config.atlantis_keys import Where, refusal, unread_key
from atlas.config.setting_types import (
    ALIASES,
    CONFIG_ENV,
    ENV_PREFIX,
    SECRET_FILES,
    Group,
    SettingsError,
    git_host_url,
    read_secret_file,
    unwrap_optional,
)
from atlas.config.settings_model import Settings, require_github_auth, require_webhook_secret

__all__ = [
    "ALIASES",
    "CONFIG_ENV",
    "ENV_PREFIX",
    "SECRET_FILES",
    "Group",
    "SettingInfo",
    "Settings",
    "SettingsError",
    "example_config",
    "git_host_url",
    "load_settings",
    "read_secret_file",
    "require_github_auth",
    "require_webhook_secret",
    "setting_info",
    "setting_infos",
]


@dataclass(frozen=True)
class SettingInfo:
    """How one setting is spelled in each place it can be given, and how it is documented."""

    name: str
    description: str
    group: Group
    default: Any
    metavar: str
    example: object
    default_text: str | None
    is_secret: bool
    is_bool: bool
    is_list: bool

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def key(self) -> str:
        """The config-file key; the snake_case field name is accepted too."""
        return self.name.replace("_", "-")

    @property
    def shown_default(self) -> str | None:
        """The default as help text shows it, or None when there is none."""
        if self.default_text is not None:
            return self.default_text
        return _plain(self.default)


def _plain(value: Any) -> str | None:
    """A value as a user would type it after a flag."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ",".join(value) if value else "none"
    return str(value)


def setting_infos() -> Iterator[SettingInfo]:
    """Every setting, in declaration order."""
    for name, field in Settings.model_fields.items():
        extra = field.json_schema_extra
        assert isinstance(extra, dict), f"declare setting {name} with setting()"
        annotation = unwrap_optional(field.annotation)
        group, metavar = extra.get("group"), extra.get("metavar")
        example = extra.get("example")
        default_text = extra.get("default_text")
        yield SettingInfo(
            name=name,
            description=field.description or "",
            group=Group(str(group)),
            default=field.default,
            metavar=metavar if isinstance(metavar, str) else name.upper(),
            example=example,
            default_text=default_text if isinstance(default_text, str) else None,
            is_secret=annotation is SecretStr,
            is_bool=annotation is bool,
            is_list=typing.get_origin(annotation) is list,
        )


def setting_info(name: str) -> SettingInfo:
    for info in setting_infos():
        if info.name == name:
            return info
    raise KeyError(name)


@dataclass(frozen=True)
class _Given:
    """A value and where the user gave it, so that an error can point back at it."""

    source: Literal["flag", "env", "file"]
    value: object
    key: str = ""


def load_settings(
    cli_values: Mapping[str, object] | None = None,
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Merge flags > environment > config file > defaults into validated settings.

    `cli_values` maps setting names (snake_case or kebab-case) to flag values; `config_file`
    defaults to the file `ATLAS_CONFIG` names; `env` defaults to `os.environ`.
    Raises SettingsError with a one-line message.
    """
    env = os.environ if env is None else env
    if config_file is None and env.get(CONFIG_ENV):
        config_file = Path(env[CONFIG_ENV])
    infos = {info.name: info for info in setting_infos()}

    given: dict[str, _Given] = {}
    if config_file is not None:
        for key, value in _read_config_file(config_file, infos).items():
            if value is not None and value != "":  # `key:` with nothing after it leaves the default
                given[_canonical(key)] = _Given("file", value, key)
    for info in infos.values():
        # An empty variable counts as unset, as `ATLAS_GH_TOKEN=` in a compose file means.
        if env.get(info.env):
            given[info.name] = _Given("env", env[info.env], info.env)
    for key, value in (cli_values or {}).items():
        name = _canonical(key)
        if name not in infos:
            raise SettingsError(f"unknown setting --{key.replace('_', '-')}")
        if value is not None and value != "":  # `--flag ''` leaves the setting unset, like `ATLAS_X=`
            given[name] = _Given("flag", value, infos[name].flag)

    try:
        settings = Settings.model_validate({name: item.value for name, item in given.items()})
    except ValidationError as error:
        raise SettingsError(_describe(error, given, infos, config_file)) from None
    settings._sources = {name: item.source for name, item in given.items()}
    settings._config_file = config_file.expanduser().absolute() if config_file is not None else None
    return settings


def _canonical(key: str) -> str:
    """The setting a flag name or config-file key names, through its aliases."""
    name = key.replace("-", "_")
    return ALIASES.get(name, name)


def _read_config_file(path: Path, infos: Mapping[str, SettingInfo]) -> dict[str, object]:
    """The file's settings by the key the user wrote, after checking every key names a setting."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise SettingsError(f"{path}: cannot read config file: {reason}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SettingsError(f"{path}: invalid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: must be a mapping of setting names to values, got {_kind(data)}")

    seen: dict[str, str] = {}
    refused: list[str] = []
    lines = _key_lines(text)
    for key in data:
        name = _canonical(str(key))
        if name not in infos or not isinstance(key, str):
            where = f"line {lines[str(key)]}: " if str(key) in lines else ""
            unread = unread_key(Where.SERVER, str(key).replace("_", "-"))
            if unread is not None:
                refused.append(f"{where}{refusal(unread)}")
                continue
            keys = [info.key for info in infos.values()]
            close = difflib.get_close_matches(str(key).replace("_", "-"), keys, n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            refused.append(f'{where}unknown setting "{key}"{hint}')
            continue
        if name in seen:
            raise SettingsError(f'{path}: setting "{key}" is given twice, also as "{seen[name]}"')
        seen[name] = key
    if len(refused) == 1:  # one problem is one line, as every settings error is
        only = refused[0].partition(": ")[2] if refused[0].startswith("line ") else refused[0]
        raise SettingsError(f"{path}: {only}")
    if refused:
        raise SettingsError(f"{path}: {len(refused)} settings atlas does not take:\n  " + "\n  ".join(refused))
    return {str(key): value for key, value in data.items()}


def _key_lines(text: str) -> dict[str, int]:
    """The line each top-level key of a YAML mapping is on, for messages that point at it."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(key.value): key.start_mark.line + 1 for key, _ in node.value if isinstance(key, yaml.ScalarNode)}


def _kind(value: object) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _describe(
    error: ValidationError,
    given: Mapping[str, _Given],
    infos: Mapping[str, SettingInfo],
    config_file: Path | None,
) -> str:
    """One line for the first validation error, naming the setting as the user gave it."""
    first = error.errors()[0]
    name = str(first["loc"][0]) if first["loc"] else ""
    problem = str(first.get("ctx", {}).get("error", first["msg"]))
    if not name and first["type"] == "value_error":
        # A check across settings says which one it is about: "web_username: …".
        name, _, problem = problem.partition(": ")
    info = infos.get(name)
    if info is None:  # not about one setting: cannot happen with load_settings's own checks
        return f"invalid settings: {first['msg']}"
    item = given.get(name)

    if first["type"] != "value_error":
        problem = _expectation(Settings.model_fields[name])
        if item is not None and not info.is_secret:
            problem += f", got {json.dumps(item.value, default=str)}"

    if item is not None and item.source == "file":
        return f'{config_file}: invalid setting "{item.key}": {problem}'
    if item is not None and item.source == "env":
        return f"invalid setting {info.env} ({info.flag}): {problem}"
    return f"invalid setting {info.flag} ({info.env}): {problem}"


def _expectation(field: FieldInfo) -> str:
    """What a valid value of `field` looks like, from its type and constraints."""
    annotation = unwrap_optional(field.annotation)
    bounds = {
        kind: getattr(item, kind)
        for item in field.metadata
        for kind in ("ge", "gt", "le")
        if hasattr(item, kind)
    }
    if annotation is int:
        if "ge" in bounds and "le" in bounds:
            return f"must be an integer between {bounds['ge']} and {bounds['le']}"
        if "ge" in bounds:
            return f"must be an integer of at least {bounds['ge']}"
        return "must be an integer"
    if annotation is float:
        if "gt" in bounds:
            return f"must be a number greater than {bounds['gt']}"
        return "must be a number"
    if annotation is bool:
        return "must be true or false"
    if typing.get_origin(annotation) is Literal:
        return "must be one of " + ", ".join(str(choice) for choice in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, StrEnum):
        return "must be one of " + ", ".join(member.value for member in annotation)
    if typing.get_origin(annotation) is list:
        return "must be a comma-separated list (a YAML list in the config file) of strings"
    if annotation is Path:
        return "must be a path"
    return "must be a string"


def example_config() -> str:
    """The text of config/server.example.yaml: every setting with its description, variable and default."""
    lines = [
        "# atlas server configuration.",
        "#",
        "# Pass this file with `atlas server --config FILE` (or ATLAS_CONFIG=FILE). Each key is a flag",
        "# without its leading dashes (snake_case works too). A flag overrides its environment variable,",
        "# which overrides this file, which overrides the default. Keep secrets out of this file where you",
        "# can: set ATLAS_GH_TOKEN and ATLAS_GH_WEBHOOK_SECRET in the environment instead.",
        "#",
        "# Generated from atlas/settings.py: python -m atlas.config.settings > config/server.example.yaml",
    ]
    for group in Group:
        lines += ["", f"## {group.value}"]
        for info in setting_infos():
            if info.group is not group:
                continue
            shown = info.shown_default
            lines.append("")
            lines += textwrap.wrap(
                info.description,
                width=98,
                initial_indent="# ",
                subsequent_indent="# ",
                break_on_hyphens=False,
            )
            default = f"default: {shown}" if shown is not None else "no default"
            lines.append(f"# env: {info.env}, flag: {info.flag}, {default}")
            if info.example is not None:
                lines.append(f"# {info.key}: {_yaml_value(info.example)}")
            else:
                lines.append(f"{info.key}: {_yaml_value(_plain_yaml(info.default))}")
    return "\n".join(lines) + "\n"


def _plain_yaml(value: Any) -> Any:
    if isinstance(value, Path | StrEnum):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _yaml_value(value: object) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1000).removesuffix("\n...\n").strip()


if __name__ == "__main__":
    print(example_config(), end="")
