"""Settings: where values come from, what a wrong one reads like, and the documented example file."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from atlas.config.settings import Settings, SettingsError, example_config, load_settings, setting_infos

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = REPO_ROOT / "config" / "server.example.yaml"


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "atlas.yaml"
    path.write_text(text)
    return path


def load_error(
    tmp_path: Path,
    cli: dict[str, object] | None = None,
    env: dict[str, str] | None = None,
    config: str | None = None,
) -> str:
    config_file = write_config(tmp_path, config) if config is not None else None
    with pytest.raises(SettingsError) as caught:
        load_settings(cli, config_file, env or {})
    message = str(caught.value)
    assert "\n" not in message, message
    return message


# --- where values come from -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "flag", "env", "file", "default"),
    [
        ("port", "4001", "4002", 4003, 4141),
        ("log_level", "debug", "warning", "error", "info"),
        ("allow_draft_prs", True, "false", True, False),
        ("gh_api_url", "https://a.example/api/v3", "https://b.example/api/v3", "https://c.example/api/v3", None),
        ("parallel_pool_size", "2", "3", 4, 15),
    ],
)
def test_a_flag_beats_the_environment_which_beats_the_file_which_beats_the_default(
    tmp_path: Path, name: str, flag: object, env: str, file: object, default: object
) -> None:
    key = name.replace("_", "-")
    env_name = f"ATLAS_{name.upper()}"
    config = write_config(tmp_path, f"{key}: {file}\n")

    def value(settings: Settings) -> object:
        return getattr(settings, name)

    expected_default = default if default is not None else "https://api.github.com"
    assert value(load_settings(env={})) == expected_default
    from_file = value(load_settings(config_file=config, env={}))
    assert str(from_file).lower() == str(file).lower()
    from_env = value(load_settings(config_file=config, env={env_name: env}))
    assert str(from_env).lower() == env.lower()
    from_flag = value(load_settings({name: flag}, config_file=config, env={env_name: env}))
    assert str(from_flag).lower() == str(flag).lower()


def test_lists_are_comma_separated_in_flags_and_environment_and_yaml_lists_in_the_file(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, "repo-allowlist:\n  - github.com/file/*\n  - github.com/other/*\n")
    assert load_settings(config_file=config, env={}).repo_allowlist == [
        "github.com/file/*",
        "github.com/other/*",
    ]
    env = {"ATLAS_REPO_ALLOWLIST": "github.com/env/a, github.com/env/b"}
    assert load_settings(config_file=config, env=env).repo_allowlist == [
        "github.com/env/a",
        "github.com/env/b",
    ]
    flagged = load_settings({"repo_allowlist": "github.com/flag/*"}, config_file=config, env=env)
    assert flagged.repo_allowlist == ["github.com/flag/*"]
    one_string = write_config(tmp_path, "comment-prefix: atlas, tf\n")
    assert load_settings(config_file=one_string, env={}).comment_prefix == ["atlas", "tf"]


def test_config_file_keys_may_be_kebab_or_snake_case(tmp_path: Path) -> None:
    config = write_config(tmp_path, "gh-user: atlas-bot\nterraform_timeout: 90\n")
    settings = load_settings(config_file=config, env={})
    assert settings.gh_user == "atlas-bot"
    assert settings.terraform_timeout == 90


def test_atlas_config_names_the_file_when_no_config_file_is_given(tmp_path: Path) -> None:
    config = write_config(tmp_path, "port: 5000\n")
    assert load_settings(env={"ATLAS_CONFIG": str(config)}).port == 5000


def test_empty_values_leave_the_setting_unset(tmp_path: Path) -> None:
    config = write_config(tmp_path, "gh-token:\nport: 4500\n")
    settings = load_settings({"gh_webhook_secret": ""}, config, env={"ATLAS_GH_TOKEN": "", "ATLAS_PORT": ""})
    assert settings.gh_token is None
    assert settings.gh_webhook_secret is None
    assert settings.port == 4500


def test_defaults_are_resolved(tmp_path: Path) -> None:
    settings = load_settings(env={})
    assert settings.data_dir == Path.home() / ".atlas"
    assert settings.atlas_url == f"http://{socket.gethostname()}:4141"
    assert load_settings({"port": "8080"}, env={}).atlas_url == f"http://{socket.gethostname()}:8080"
    assert settings.terraform_bin == "terraform"
    assert settings.terraform_timeout == 3600
    assert settings.comment_prefix == ["atlas"]
    assert settings.repo_allowlist == []
    assert settings.log_format == "text"


def test_paths_are_made_absolute_and_urls_lose_their_trailing_slash(tmp_path: Path) -> None:
    settings = load_settings(
        {"data_dir": "~/state", "gh_api_url": "https://ghe.example.com/api/v3/"},
        env={"ATLAS_ATLAS_URL": "https://atlas.example.com/"},
    )
    assert settings.data_dir == Path.home() / "state"
    assert settings.gh_api_url == "https://ghe.example.com/api/v3"
    assert settings.atlas_url == "https://atlas.example.com"
    assert load_settings({"data_dir": "relative"}, env={}).data_dir == Path.cwd() / "relative"


def test_settings_built_directly_read_no_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ATLAS_PORT", "5555")
    monkeypatch.setenv("PORT", "6666")
    assert Settings(data_dir=tmp_path).port == 4141


# --- wrong values: one line that names the setting as the user wrote it -------------------------


def test_a_wrong_flag_is_named_as_a_flag(tmp_path: Path) -> None:
    assert load_error(tmp_path, cli={"port": "abc"}) == (
        'invalid setting --port (ATLAS_PORT): must be an integer between 1 and 65535, got "abc"'
    )


def test_a_wrong_environment_variable_is_named_as_a_variable(tmp_path: Path) -> None:
    assert load_error(tmp_path, env={"ATLAS_PORT": "70000"}) == (
        'invalid setting ATLAS_PORT (--port): must be an integer between 1 and 65535, got "70000"'
    )


def test_a_wrong_file_value_is_named_by_file_and_key(tmp_path: Path) -> None:
    message = load_error(tmp_path, config="parallel_pool_size: 0\n")
    assert message == (
        f'{tmp_path / "atlas.yaml"}: invalid setting "parallel_pool_size": must be an integer of at least 1, got 0'
    )


@pytest.mark.parametrize(
    ("cli", "expected"),
    [
        ({"log_level": "loud"}, 'must be one of debug, info, warning, error, got "loud"'),
        ({"log_format": "xml"}, 'must be one of text, json, got "xml"'),
        ({"allow_draft_prs": "maybe"}, 'must be true or false, got "maybe"'),
        ({"terraform_timeout": "1h"}, 'must be a number greater than 0, got "1h"'),
        ({"terraform_timeout": "0"}, 'must be a number greater than 0, got "0"'),
        ({"gh_api_url": "api.github.com"}, "must be an http(s) URL such as https://api.github.com"),
        ({"atlas_url": "ftp://atlas"}, "must be an http(s) URL such as https://atlas.example.com"),
        ({"repo_allowlist": "acme/infra"}, 'entry "acme/infra" is not a HOST/OWNER/NAME glob'),
        (
            {"comment_prefix": "atlas, terraform please"},
            'each prefix must be one word, got "terraform please"',
        ),
    ],
)
def test_each_kind_of_wrong_value_says_what_is_expected(tmp_path: Path, cli: dict[str, object], expected: str) -> None:
    (name,) = cli
    message = load_error(tmp_path, cli=cli)
    assert message.startswith(f"invalid setting --{name.replace('_', '-')} (ATLAS_{name.upper()}): ")
    assert expected in message


def test_an_unknown_file_key_is_named_with_a_suggestion(tmp_path: Path) -> None:
    assert load_error(tmp_path, config="gh-tokn: x\n") == (
        f'{tmp_path / "atlas.yaml"}: unknown setting "gh-tokn" (did you mean "gh-token"?)'
    )


def test_a_key_given_twice_in_the_file_is_an_error(tmp_path: Path) -> None:
    message = load_error(tmp_path, config="gh-user: a\ngh_user: b\n")
    assert message.endswith('setting "gh_user" is given twice, also as "gh-user"')


def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(SettingsError) as caught:
        load_settings(config_file=missing, env={})
    assert str(caught.value) == f"{missing}: cannot read config file: No such file or directory"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("port: 1\n  gh-user: x\n", "invalid YAML at line 2, column 10: mapping values are not allowed here"),
        ("- port\n", "must be a mapping of setting names to values, got a list"),
    ],
)
def test_a_file_that_is_not_a_yaml_mapping_is_one_line(tmp_path: Path, text: str, expected: str) -> None:
    assert load_error(tmp_path, config=text) == f"{tmp_path / 'atlas.yaml'}: {expected}"


def test_a_wrong_secret_is_never_echoed(tmp_path: Path) -> None:
    message = load_error(tmp_path, config="gh-webhook-secret: [s3cr3t-value]\n")
    assert message == f'{tmp_path / "atlas.yaml"}: invalid setting "gh-webhook-secret": must be a string'


# --- what the settings decide -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowlist", "repo", "allowed"),
    [
        ("", "github.com/acme/infra", False),
        ("*", "github.com/acme/infra", True),
        ("*", "ghe.corp.example/team/net", True),
        ("github.com/acme/*", "github.com/acme/infra", True),
        ("github.com/acme/*", "github.com/other/infra", False),
        ("github.com/acme/*", "ghe.corp.example/acme/infra", False),
        ("github.com/ACME/Infra", "GitHub.com/acme/infra", True),
        ("github.com/acme/infra", "github.com/acme/infra-old", False),
        ("github.com/acme/infra-*,github.com/ops/*", "github.com/acme/infra-prod", True),
        ("github.com/acme/infra-*,github.com/ops/*", "github.com/ops/dns", True),
        ("github.com/*", "github.com/anyone/anything", True),
        ("127.0.0.1:8080/acme/*", "127.0.0.1:8080/acme/infra", True),
    ],
)
def test_the_allowlist_matches_globs_over_host_owner_name(allowlist: str, repo: str, allowed: bool) -> None:
    settings = load_settings({"repo_allowlist": allowlist} if allowlist else {}, env={})
    assert settings.repo_allowed(repo) is allowed


def test_secrets_lists_every_secret_that_is_set(tmp_path: Path) -> None:
    assert load_settings(env={}).secrets() == []
    config = write_config(tmp_path, "api-secret: from-file\n")
    settings = load_settings({"gh_token": "ghp_flagtoken"}, config, env={"ATLAS_GH_WEBHOOK_SECRET": "hook-secret"})
    assert sorted(settings.secrets()) == ["from-file", "ghp_flagtoken", "hook-secret"]
    assert "ghp_flagtoken" not in repr(settings)
    assert "hook-secret" not in str(settings)


# --- secrets from files, and where secrets were given ---------------------------------------------


@pytest.mark.parametrize(("secret", "kind"), [
    ("gh_token", "flag"), ("gh_webhook_secret", "env"), ("api_secret", "file"), ("web_password", "flag"),
])
def test_every_secret_can_be_read_from_a_file_given_as_flag_variable_or_key(
    tmp_path: Path, secret: str, kind: str
) -> None:
    secret_file = tmp_path / "mounted-secret"
    secret_file.write_text("from-a-mounted-secret\n")  # kubectl and editors leave a newline
    file_setting = f"{secret}_file"
    extra: dict[str, object] = {"web_username": "operator"} if secret == "web_password" else {}
    if kind == "flag":
        settings = load_settings({file_setting: str(secret_file), **extra}, env={})
    elif kind == "env":
        settings = load_settings(extra, env={f"ATLAS_{file_setting.upper()}": str(secret_file)})
    else:
        config = write_config(tmp_path, f"{file_setting.replace('_', '-')}: {secret_file}\n")
        settings = load_settings(extra, config, env={})

    assert getattr(settings, secret).get_secret_value() == "from-a-mounted-secret"
    assert "from-a-mounted-secret" in settings.secrets()
    assert settings.secrets_given_as_flags() == []
    assert secret_file in settings.own_paths()


def test_an_unreadable_secret_file_stops_start_up_without_showing_the_secret(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "token"
    assert load_error(tmp_path, {"gh_token_file": str(missing)}) == (
        f"invalid setting --gh-token-file (ATLAS_GH_TOKEN_FILE): cannot read {missing}: No such file or directory")
    assert load_error(tmp_path, env={"ATLAS_GH_TOKEN_FILE": str(tmp_path)}) == (
        f"invalid setting ATLAS_GH_TOKEN_FILE (--gh-token-file): {tmp_path} is a directory, not a file")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    assert load_error(tmp_path, {"api_secret_file": str(empty)}) == (
        f"invalid setting --api-secret-file (ATLAS_API_SECRET_FILE): {empty} is empty")
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfeghp_secret")
    message = load_error(tmp_path, {"gh_token_file": str(binary)})
    assert message.endswith("is not UTF-8 text") and "ghp_secret" not in message


def test_a_secret_and_its_file_together_are_refused(tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("ghp_fromfile")

    message = load_error(tmp_path, {"gh_token_file": str(secret_file)}, env={"ATLAS_GH_TOKEN": "ghp_fromenv"})

    assert message == ("invalid setting --gh-token-file (ATLAS_GH_TOKEN_FILE): give --gh-token or "
                       "--gh-token-file, not both")
    assert "ghp_from" not in message


def test_secrets_given_as_flags_are_named_for_the_start_up_warning(tmp_path: Path) -> None:
    config = write_config(tmp_path, "api-secret: from-file\n")

    settings = load_settings({"gh_token": "ghp_flag", "repo_allowlist": "*"}, config,
                             env={"ATLAS_GH_WEBHOOK_SECRET": "from-env"})

    assert settings.secrets_given_as_flags() == ["--gh-token"]
    assert (settings.source_of("gh_token"), settings.source_of("gh_webhook_secret"),
            settings.source_of("api_secret"), settings.source_of("port")) == ("flag", "env", "file", None)
    assert settings.config_file == config


# --- the sandbox ------------------------------------------------------------------------------------


def test_the_sandbox_defaults_to_auto_and_takes_paths_with_ro(tmp_path: Path) -> None:
    assert load_settings(env={}).sandbox == "auto"

    settings = load_settings({"sandbox": "REQUIRED"}, env={"ATLAS_SANDBOX_PATHS": "/srv/state, ~/creds:ro"})

    assert settings.sandbox == "required"
    assert settings.sandbox_paths == ["/srv/state", f"{Path.home()}/creds:ro"]


@pytest.mark.parametrize(("cli", "expected"), [
    ({"sandbox": "sometimes"}, "invalid setting --sandbox (ATLAS_SANDBOX): must be one of auto, required, off, "
                               'got "sometimes"'),
    ({"sandbox_paths": "state"}, "invalid setting --sandbox-paths (ATLAS_SANDBOX_PATHS): 'state' is not an "
                                 "absolute path"),
    ({"sandbox": "off", "sandbox_paths": "/srv/state"},
     "invalid setting --sandbox-paths (ATLAS_SANDBOX_PATHS): --sandbox-paths has no effect with --sandbox off; "
     "remove it, or use --sandbox auto or required"),
    ({"var_file_allowlist": "tfvars"}, 'invalid setting --var-file-allowlist (ATLAS_VAR_FILE_ALLOWLIST): "tfvars" '
                                       "is not an absolute path"),
])
def test_wrong_sandbox_settings_are_refused(tmp_path: Path, cli: dict[str, object], expected: str) -> None:
    assert load_error(tmp_path, cli) == expected


def test_own_paths_are_the_data_dir_config_repos_yaml_and_secret_files(tmp_path: Path) -> None:
    token, repos = tmp_path / "token", tmp_path / "repos.yaml"
    token.write_text("ghp_x")
    config = write_config(tmp_path, f"repo-config: {repos}\n")

    settings = load_settings({"gh_token_file": str(token), "data_dir": str(tmp_path / "data")}, config, env={})

    assert settings.own_paths() == [tmp_path / "data", config, repos, token]


def test_var_file_directories_are_reachable_read_only_in_the_sandbox(tmp_path: Path) -> None:
    settings = load_settings({"var_file_allowlist": f"{tmp_path},/nonexistent/tfvars",
                              "sandbox_paths": "/srv/state"}, env={})

    assert [str(path) for path in settings.host_paths()] == ["/srv/state", f"{tmp_path}:ro"]


# --- the example config file ------------------------------------------------------------------


def test_the_example_config_documents_every_setting() -> None:
    text = EXAMPLE_CONFIG.read_text()
    assert text == example_config(), (
        "config/server.example.yaml is out of date: python -m atlas.config.settings > config/server.example.yaml"
    )
    for info in setting_infos():
        assert f"{info.key}: " in text
        assert f"# env: {info.env}, flag: {info.flag}, " in text


def test_the_example_config_loads_to_the_defaults() -> None:
    assert load_settings(config_file=EXAMPLE_CONFIG, env={}) == load_settings(env={})


@pytest.mark.parametrize(
    ("api_url", "git_url"),
    [
        ("https://api.github.com", "https://github.com"),
        ("https://github.acme.com/api/v3", "https://github.acme.com"),
        ("https://github.acme.com/api/v3/", "https://github.acme.com"),
        ("http://127.0.0.1:8080/api/v3", "http://127.0.0.1:8080"),
        ("https://api.acme.ghe.com", "https://acme.ghe.com"),
    ],
)
def test_repositories_are_cloned_from_the_git_host_of_the_api_url(api_url: str, git_url: str) -> None:
    settings = load_settings({"gh_api_url": api_url}, env={})

    assert settings.gh_git_url == git_url
    assert settings.repo_id("acme/infra") == f"{git_url.split('://')[1].split(':')[0]}/acme/infra"


def test_an_api_url_without_a_known_git_host_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"cannot tell the git host of \"https://git.acme.com/github\""):
        load_settings({"gh_api_url": "https://git.acme.com/github"}, env={})
