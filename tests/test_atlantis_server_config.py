"""An Atlantis server config.yaml, with Atlantis's key names, read by atlas: what atlas has under
another name is mapped, what it does not take is refused one line per key, saying what to write."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from atlas.config.settings import SettingsError, load_settings

ATLANTIS_CONFIG = """\
# An Atlantis server config, as its docs write one.
atlantis-url: https://atlantis.example.com
repo-allowlist: "github.com/acme/*,!github.com/acme/secrets"
gh-user: atlantis-bot
gh-team-allowlist: "platform:plan, platform-leads:apply"
default-tf-distribution: opentofu
default-tf-version: 1.8.2
executable-name: atlantis
automerge: true
hide-prev-plan-comments: true
port: 4242
"""


def test_an_atlantis_config_yaml_is_read_with_its_names(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(ATLANTIS_CONFIG)
    settings = load_settings(config_file=config, env={})
    assert settings.atlas_url == "https://atlantis.example.com"
    assert settings.comment_prefix == ["atlantis"]
    assert settings.tf_distribution == "opentofu" and settings.default_tf_version == "1.8.2"
    assert settings.repo_allowed("github.com/acme/infra") and not settings.repo_allowed("github.com/acme/secrets")
    assert settings.gh_team_allowlist == ["platform:plan", "platform-leads:apply"]
    assert settings.automerge and settings.hide_prev_plan_comments and settings.port == 4242


def test_atlantis_only_keys_are_refused_line_by_line_with_what_to_write(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(ATLANTIS_CONFIG + "gh-hostname: github.acme.com\nredis-host: redis.internal\n"
                      "ssl-cert-file: /etc/tls/cert.pem\nfrobnicate: true\n")
    with pytest.raises(SettingsError) as raised:
        load_settings(config_file=config, env={})
    lines = str(raised.value).splitlines()
    assert lines[0] == f"{config}: 4 settings atlas does not take:"
    assert lines[1].strip().startswith('line 12: atlas does not read "gh-hostname": use --gh-api-url')
    assert "https://HOST/api/v3" in lines[1]
    assert lines[2].strip().startswith('line 13: atlas does not read "redis-host": use --redis-url')
    assert lines[3].strip().startswith('line 14: atlas does not support "ssl-cert-file"')
    assert "reverse proxy" in lines[3]
    assert lines[4].strip() == 'line 15: unknown setting "frobnicate"'


def test_atlas_config_validate_reports_an_atlantis_config(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(ATLANTIS_CONFIG)
    bad.write_text(ATLANTIS_CONFIG + "locking-db-type: redis\n")
    run = [sys.executable, "-m", "atlas", "config", "validate", "--server"]
    ok = subprocess.run([*run, str(good)], capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "valid server settings" in ok.stdout
    refused = subprocess.run([*run, str(bad)], capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode != 0
    assert 'atlas does not read "locking-db-type": use --redis-url' in refused.stderr + refused.stdout
