"""Finding and reading a repository's own config in a pull request's checkout.

atlas reads `atlas.yaml` (or `atlas.yml`), else Atlantis's `atlantis.yaml` (or `atlantis.yml`)
unchanged, or the one file the server names (`repo_config_file` in repos.yaml). The file comes from
the pull request, so it is read only from inside the checkout and only up to a size limit.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from pathlib import Path

from atlas.config.raw import MAX_CONFIG_BYTES, ConfigError, parse_yaml
from atlas.config.valid import RepoConfig, repo_config_from

REPO_CONFIG_FILES = ("atlas.yaml", "atlas.yml", "atlantis.yaml", "atlantis.yml")
"""Looked for at the repository root, first found wins."""


def find_repo_config(repo_dir: Path, file_name: str | None = None) -> str | None:
    """The repo-relative name of the repo config file in a checkout, or None when it has none."""
    for name in (file_name,) if file_name else REPO_CONFIG_FILES:
        if (repo_dir / _inside(name)).exists():
            return name
    return None


def load_repo_config(
    repo_dir: Path, file_name: str | None = None, *, server_workflows: Sequence[str] | None = None
) -> RepoConfig | None:
    """The checkout's repo config, None when there is none; ConfigError when it is wrong or unreadable.

    `file_name` is the server's `repo_config_file` (a path relative to the repository root);
    `server_workflows` names repos.yaml's workflows, so that a project naming an undefined workflow is
    reported here.
    """
    name = find_repo_config(repo_dir, file_name)
    if name is None:
        return None
    path = repo_dir / _inside(name)
    root = repo_dir.resolve()
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise ConfigError(name, "", "is a link to a file outside the repository; atlas does not read it")
    if not resolved.is_file():
        raise ConfigError(name, "", "is not a file")
    try:
        if resolved.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(name, "", f"is larger than {MAX_CONFIG_BYTES // 1024} KiB; atlas does not read it")
        text = resolved.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(name, "", "is not UTF-8 text") from None
    except OSError as error:
        raise ConfigError(name, "", f"cannot be read: {error.strerror or error}") from None
    return parse_repo_config(text, name, server_workflows=server_workflows, repo_dir=repo_dir)


def parse_repo_config(
    text: str, file: str, *, server_workflows: Sequence[str] | None = None, repo_dir: Path | None = None
) -> RepoConfig:
    """Validate the text of a repo config named `file` (the name errors show).

    With `repo_dir`, the checkout it belongs to, an absolute `dir` must name one of its directories.
    """
    return repo_config_from(parse_yaml(text, file), server_workflows=server_workflows, repo_dir=repo_dir)


def _inside(name: str) -> str:
    """A repo-relative file name that cannot leave the repository."""
    cleaned = posixpath.normpath(name.replace("\\", "/"))
    if cleaned.startswith("/") or cleaned == ".." or cleaned.startswith("../"):
        raise ConfigError(name, "", "must be a path inside the repository")
    return cleaned
