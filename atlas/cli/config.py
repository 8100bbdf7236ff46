"""`atlas config validate`: check a repo config, a server repos.yaml or a server settings file as atlas reads it.

The config modules load when the subcommand runs, so that `atlas --help` and the other subcommands
start quickly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from atlas.cli.catalog import SUMMARIES
from atlas.cli.subcommand import HelpFormatter, Subcommand, count
from atlas.config.settings import SettingsError, load_settings, setting_infos


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(title="actions", metavar="ACTION", dest="config_action", required=True)
    validate = actions.add_parser(
        "validate",
        help="Check a repo config (atlas.yaml, atlantis.yaml), a server repos.yaml or a server settings file.",
        description=(
            "Check FILE the way atlas reads it: a repository's atlas.yaml or atlantis.yaml; the server's\n"
            "repos.yaml (top-level repos: or workflows:); or the server's settings file, the one\n"
            "`atlas server --config FILE` reads (keys are flags without dashes, as in\n"
            "config/server.example.yaml). With --server FILE is one of the server's two. Prints\n"
            "'FILE: valid' and exits 0, or prints the first problem and exits 1."
        ),
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    validate.add_argument("file", metavar="FILE", type=Path, help="The file to check.")
    validate.add_argument(
        "--server", action="store_true",
        help="FILE is the server's: its repos.yaml, or its settings file (--config) when it has no repos: or "
        "workflows: key.",
    )
    validate.set_defaults(parser=validate)


def run_config(args: argparse.Namespace) -> int:
    from atlas.config.loading import parse_repo_config
    from atlas.config.raw import MAX_CONFIG_BYTES, ConfigError, parse_yaml
    from atlas.config.server import parse_server_config

    path: Path = args.file
    name = str(path)
    try:
        try:
            if path.stat().st_size > MAX_CONFIG_BYTES:
                raise ConfigError(name, "", f"is larger than {MAX_CONFIG_BYTES // 1024} KiB")
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError(name, "", "is not UTF-8 text") from None
        except OSError as error:
            raise ConfigError(name, "", f"cannot be read: {error.strerror or error}") from None
        data = parse_yaml(text, name).data
        server_shaped = isinstance(data, dict) and "version" not in data and ("repos" in data or "workflows" in data)
        keys = {str(key).replace("_", "-") for key in data} if isinstance(data, dict) else set()
        settings_shaped = bool(keys) and keys <= {info.key for info in setting_infos()}
        if (args.server and not server_shaped) or settings_shaped:
            return _validate_settings_file(path)
        if args.server or server_shaped:
            server = parse_server_config(text, name)
            repos, workflows = len(server.repos), len(server.workflows)
            print(f"{name}: valid ({count(repos, 'repo entry', 'repo entries')}, {count(workflows, 'workflow')})")
        else:
            # A repo config sits at its repository's root, which an absolute dir is checked against.
            config = parse_repo_config(text, name, repo_dir=path.absolute().parent)
            print(f"{name}: valid ({count(len(config.projects), 'project')})")
    except ConfigError as error:
        print(str(error), file=sys.stderr)
        return 1
    return 0


def _validate_settings_file(path: Path) -> int:
    """`atlas config validate` of a server settings file: every key a setting, every value valid."""
    from atlas.config.raw import ConfigError
    from atlas.config.server import load_server_config

    try:
        settings = load_settings(config_file=path, env={})
    except SettingsError as error:
        print(str(error), file=sys.stderr)
        return 1
    keys = _yaml_keys(path)
    detail = count(len(keys), "setting")
    if settings.repo_config is not None:
        if settings.repo_config.is_file():
            try:
                server = load_server_config(settings.repo_config)
            except ConfigError as error:
                print(str(error), file=sys.stderr)
                return 1
            entries = count(len(server.repos), "repo entry", "repo entries")
            detail += f"; repo-config {settings.repo_config}: valid ({entries})"
        else:
            detail += f"; repo-config {settings.repo_config} is not on this machine, so it was not checked"
    print(f"{path}: valid server settings ({detail})")
    return 0


def _yaml_keys(path: Path) -> list[str]:
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [str(key) for key in data] if isinstance(data, dict) else []


SUBCOMMAND = Subcommand(
    name="config",
    summary=SUMMARIES["config"],
    run=run_config,
    add_arguments=add_config_arguments,
    description="Work with atlas's configuration files.",
    epilog=(
        "examples:\n  atlas config validate atlantis.yaml\n  atlas config validate --server /etc/atlas/repos.yaml\n"
        "  atlas config validate --server /etc/atlas/server.yaml"
    ),
)
