"""The GitHub App's settings: flags, env twins and config keys; exactly one of token or App; a bad key
is one start-up line that does not show it."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from atlas.bootstrap import github_app
from atlas.config.settings import SettingsError, load_settings, require_github_auth


@pytest.fixture(scope="module")
def pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()


def test_the_app_is_configured_by_flag_env_or_config_file_and_its_key_file_is_read(pem: str, tmp_path: Path) -> None:
    key_file = tmp_path / "app.pem"
    key_file.write_text(pem)
    by_env = load_settings(env={"ATLAS_GH_APP_ID": "42", "ATLAS_GH_APP_KEY_FILE": str(key_file),
                                "ATLAS_GH_APP_SLUG": "atlas-acme"})
    assert by_env.gh_app_id == 42 and by_env.gh_app_key is not None
    assert by_env.gh_app_key.get_secret_value().strip() == pem.strip()
    assert by_env.checks_enabled and by_env.github_app_mode
    config = tmp_path / "atlas.yaml"
    config.write_text(f"gh-app-id: 42\ngh-app-key-file: {key_file}\ngh-app-installation-id: 7\ngh-checks: false\n")
    by_file = load_settings(config_file=config, env={})
    assert by_file.gh_app_installation_id == 7 and not by_file.checks_enabled
    app = github_app(by_file)
    assert app is not None and app.default_installation == 7
    # The key is a secret: redacted from logs and kept out of child environments.
    assert pem.strip() in [s.strip() for s in by_file.secrets()]


def test_exactly_one_of_token_or_app(pem: str) -> None:
    with pytest.raises(SettingsError, match="either --gh-token or a GitHub App"):
        load_settings({"gh_token": "ghp_x", "gh_app_id": 42, "gh_app_key": pem}, env={})
    with pytest.raises(SettingsError, match="GitHub credentials are required"):
        require_github_auth(load_settings({}, env={}), "the server reads pull requests")
    with pytest.raises(SettingsError, match="--gh-app-id needs the App's private key"):
        load_settings({"gh_app_id": 42}, env={})
    with pytest.raises(SettingsError, match="--gh-app-slug needs --gh-app-id"):
        load_settings({"gh_token": "ghp_x", "gh_app_slug": "x"}, env={})
    with pytest.raises(SettingsError, match="--gh-checks needs a GitHub App"):
        load_settings({"gh_token": "ghp_x", "gh_checks": True}, env={})


def test_a_key_that_does_not_parse_is_one_line_without_the_key(pem: str, tmp_path: Path) -> None:
    damaged = pem.replace(pem.splitlines()[3], "x" * 64)
    key_file = tmp_path / "app.pem"
    key_file.write_text(damaged)
    settings = load_settings({"gh_app_id": 42, "gh_app_key_file": str(key_file)}, env={})
    with pytest.raises(SettingsError) as caught:
        github_app(settings)
    message = str(caught.value)
    assert "\n" not in message
    assert f"--gh-app-key-file {key_file}" in message and "could not be parsed" in message
    assert all(line not in message for line in damaged.splitlines()[1:-1])
    with pytest.raises(SettingsError, match="is not PEM"):
        github_app(load_settings({"gh_app_id": 42, "gh_app_key": "not a key"}, env={}))
