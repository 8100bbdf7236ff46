"""GitLab's settings: flags, ATLAS_GITLAB_* variables and config keys, the hostname rule, and what start-up asks."""

from __future__ import annotations

from pathlib import Path

import pytest

from atlas.config.settings import SettingsError, load_settings, require_github_auth, require_webhook_secret
from atlas.models import VCSHost


def test_gitlab_is_configured_by_flag_env_or_config_file_and_its_secrets_read_from_files(tmp_path: Path) -> None:
    token_file, secret_file = tmp_path / "gitlab-token", tmp_path / "gitlab-secret"
    token_file.write_text("glpat-from-file\n")
    secret_file.write_text("hook-secret\n")
    config = tmp_path / "atlas.yaml"
    config.write_text(f"gitlab-hostname: gitlab.example.com\ngitlab-webhook-secret-file: {secret_file}\n")

    settings = load_settings(config_file=config, env={"ATLAS_GITLAB_TOKEN_FILE": str(token_file)})

    assert settings.gitlab_token is not None and settings.gitlab_token.get_secret_value() == "glpat-from-file"
    assert settings.gitlab_webhook_secret is not None
    assert settings.gitlab_webhook_secret.get_secret_value() == "hook-secret"
    assert settings.gitlab_base_url == "https://gitlab.example.com"
    assert settings.repo_id("group/subgroup/project", VCSHost.GITLAB) == "gitlab.example.com/group/subgroup/project"
    assert "glpat-from-file" in settings.secrets() and "hook-secret" in settings.secrets()
    # GitLab alone is enough to start a server.
    require_github_auth(settings, "the server reads pull requests and comments")
    require_webhook_secret(settings)


@pytest.mark.parametrize(
    ("hostname", "base_url"),
    [
        ("gitlab.com", "https://gitlab.com"),
        ("gitlab.example.com:8443", "https://gitlab.example.com:8443"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https://corp.example/gitlab/", "https://corp.example/gitlab"),
    ],
)
def test_a_bare_host_means_https_and_a_url_is_taken_as_it_is(hostname: str, base_url: str) -> None:
    assert load_settings({"gitlab_hostname": hostname}, env={}).gitlab_base_url == base_url


@pytest.mark.parametrize(
    ("hostname", "message"),
    [
        ("ftp://gitlab.example.com", "must use http:// or https://"),
        ("https://user:pw@gitlab.example.com", "must not carry credentials"),
        ("https://gitlab.example.com/api/v4", "without /api/v4"),
    ],
)
def test_a_hostname_that_is_no_gitlab_is_refused_saying_why(hostname: str, message: str) -> None:
    with pytest.raises(SettingsError, match="--gitlab-hostname") as refused:
        load_settings({"gitlab_hostname": hostname}, env={})
    assert message in str(refused.value)


def test_a_gitlab_token_without_the_gitlab_webhook_secret_is_refused_at_start_up() -> None:
    settings = load_settings({"gitlab_token": "glpat-x"}, env={})
    with pytest.raises(SettingsError, match=r"--gitlab-webhook-secret .* is required with --gitlab-token"):
        require_webhook_secret(settings)
    both = load_settings({"gitlab_token": "glpat-x", "gitlab_webhook_secret": "s", "gh_token": "ghp_x"}, env={})
    with pytest.raises(SettingsError, match="--gh-webhook-secret"):
        require_webhook_secret(both)


def test_the_repo_allowlist_names_gitlab_projects_in_nested_groups() -> None:
    settings = load_settings(
        {"gitlab_hostname": "gitlab.example.com",
         "repo_allowlist": "gitlab.example.com/platform/*,!gitlab.example.com/platform/secret/*"},
        env={},
    )
    assert settings.repo_allowed(settings.repo_id("platform/network/core", VCSHost.GITLAB))
    assert not settings.repo_allowed(settings.repo_id("platform/secret/vault", VCSHost.GITLAB))
    assert not settings.repo_allowed(settings.repo_id("platform/network", VCSHost.GITHUB))
