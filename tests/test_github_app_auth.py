"""GitHub App authentication against the emulator over real HTTP, with PyGithub and a real Redis."""

from __future__ import annotations

import base64
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from github import BadCredentialsException
from redis import Redis

from atlas import bootstrap
from atlas.config.settings import load_settings
from atlas.github.app_auth import (
    JWT_MAX_LIFETIME,
    AppAuthError,
    AppCredentials,
    AppKeyError,
    GitHubApp,
    InstallationNotFound,
    MemoryTokenCache,
    RedisTokenCache,
    TokenCache,
)
from tests.emulator import GitHubEmulator
from tests.emulator.app import GitHubAppEmulator
from tests.emulator.server import API_PREFIX
from tests.redis_backends import backend_of, url_of
from tests.redis_plugin import free_port

REPO = "acme/infra"


@pytest.fixture
def github_app(github_emulator: GitHubEmulator) -> GitHubAppEmulator:
    github_emulator.create_repo(REPO, files={"main.tf": 'resource "terraform_data" "x" {}\n'})
    app = GitHubAppEmulator(github_emulator)
    app.install("acme")
    return app


@pytest.fixture
def make_app(github_emulator: GitHubEmulator, github_app: GitHubAppEmulator) -> Iterator[Callable[..., GitHubApp]]:
    made: list[GitHubApp] = []

    def make(cache: TokenCache | None = None, **kwargs: object) -> GitHubApp:
        credentials = AppCredentials(github_app.app_id, github_app.private_key_pem)
        app = GitHubApp(credentials, github_emulator.api_url, cache, **kwargs)  # type: ignore[arg-type]
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()


def redis_cache(redis_client: Redis, app: GitHubAppEmulator, prefix: str = "atlas:") -> RedisTokenCache:
    """The cache as bootstrap builds it: on a Redis backend whose prefix (`--redis-key-prefix`) starts its keys."""
    credentials = AppCredentials(app.app_id, app.private_key_pem)
    return RedisTokenCache(backend_of(redis_client, prefix), credentials.app_id, credentials.sealing_key())


# The App's JWT and identity


def test_the_jwt_is_rs256_issued_by_the_app_backdated_and_at_most_ten_minutes_long(
    github_app: GitHubAppEmulator,
) -> None:
    credentials = AppCredentials(github_app.app_id, github_app.private_key_pem, clock=lambda: 1_800_000_000)
    token = credentials.jwt()
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    unchecked = {"verify_exp": False, "verify_iat": False}
    claims = jwt.decode(token, github_app.public_key, algorithms=["RS256"], options=unchecked)
    assert claims["iss"] == str(github_app.app_id)
    assert claims["iat"] == 1_800_000_000 - 60
    assert claims["exp"] - claims["iat"] <= JWT_MAX_LIFETIME
    assert claims["exp"] > 1_800_000_000


def test_the_slug_and_bot_login_come_from_get_app_when_not_configured(make_app: Callable[..., GitHubApp]) -> None:
    app = make_app()
    assert app.slug == "atlas-test-app"
    assert app.bot_login == "atlas-test-app[bot]"
    assert app.info().id == 424_242


def test_a_configured_slug_is_used_without_asking_github(
    make_app: Callable[..., GitHubApp], github_emulator: GitHubEmulator
) -> None:
    app = make_app(slug="my-atlas")
    assert app.bot_login == "my-atlas[bot]"
    assert not [r for r in github_emulator.requests if r.path.endswith("/app")]


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"iat": -700, "exp": -100}, "'Expiration time' claim ('exp') must be a numeric value"),
        ({"iat": -60, "exp": 1200}, "'Expiration time' claim ('exp') is too far in the future"),
        ({"iat": 300, "exp": 400}, "'Issued at' claim ('iat') must be an Integer"),
        ({"iat": -60, "exp": 300, "iss": "1"}, "A JSON web token could not be decoded"),
    ],
)
def test_github_refuses_jwts_whose_claims_are_wrong(
    github_emulator: GitHubEmulator, github_app: GitHubAppEmulator, claims: dict[str, int | str], message: str
) -> None:
    now = int(time.time())
    body = {"iss": str(github_app.app_id), **claims}
    body["iat"] = now + int(claims["iat"])
    body["exp"] = now + int(claims["exp"])
    answer = requests.get(
        f"{github_emulator.api_url}/app", headers={"Authorization": f"Bearer {github_app.sign_jwt(body)}"}, timeout=10
    )
    assert answer.status_code == 401
    assert message in answer.json()["message"]


def test_a_jwt_signed_with_another_key_is_refused_with_a_clear_error(
    github_emulator: GitHubEmulator, github_app: GitHubAppEmulator
) -> None:
    other = GitHubAppEmulator(github_emulator, app_id=777, slug="other")
    impostor = GitHubApp(AppCredentials(github_app.app_id, other.private_key_pem), github_emulator.api_url)
    with pytest.raises(AppAuthError) as refused:
        impostor.info()
    assert "401 A JSON web token could not be decoded" in str(refused.value)
    assert "clock" in str(refused.value)
    impostor.close()


# The key


def test_a_key_that_does_not_parse_gives_one_clear_error_without_the_key(github_app: GitHubAppEmulator) -> None:
    real = github_app.private_key_pem
    lines = real.splitlines()
    damaged = "\n".join([lines[0], *(line[::-1] for line in lines[1:-1]), lines[-1]])
    with pytest.raises(AppKeyError) as bad:
        AppCredentials(github_app.app_id, damaged)
    message = str(bad.value)
    assert "could not be parsed" in message
    assert "\n" not in message
    for line in damaged.splitlines()[1:-1]:
        assert line[:16] not in message
    assert bad.value.__cause__ is None and bad.value.__suppress_context__


def test_keys_that_are_not_pem_or_not_rsa_are_named_as_such(github_app: GitHubAppEmulator) -> None:
    with pytest.raises(AppKeyError, match="is not PEM"):
        AppCredentials(1, "c2VjcmV0LWtleS1tYXRlcmlhbA==")
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(AppKeyError, match="not an RSA key"):
        AppCredentials(1, ec_pem)
    with pytest.raises(AppKeyError, match=r"cannot read the GitHub App private key file /nonexistent/key\.pem"):
        AppCredentials.from_key_file(1, "/nonexistent/key.pem")
    encrypted = serialization.load_pem_private_key(github_app.private_key_pem.encode(), None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    with pytest.raises(AppKeyError, match="is encrypted"):
        AppCredentials(1, encrypted)
    with pytest.raises(AppKeyError, match="must be a number"):
        AppCredentials("my-app", github_app.private_key_pem)


def test_reprs_show_neither_key_nor_token(make_app: Callable[..., GitHubApp]) -> None:
    app = make_app()
    token = app.token(app.installation_id(REPO))
    cached = app.cache.get(app.installation_id(REPO))
    assert cached is not None
    for text in (repr(app), repr(app.credentials), repr(cached), repr(app.auth(cached.installation_id))):
        assert token not in text
        assert "PRIVATE KEY" not in text


# Installations and tokens


def test_the_installation_comes_from_the_delivery_else_from_github(
    make_app: Callable[..., GitHubApp], github_emulator: GitHubEmulator, github_app: GitHubAppEmulator
) -> None:
    app = make_app()
    assert app.installation_id(REPO, {"installation": {"id": 31337}}) == 31337
    assert not [r for r in github_emulator.requests if r.path.endswith("/installation")]
    installation = next(iter(github_app._installations))
    assert app.installation_id(REPO) == installation
    assert app.installation_id(REPO) == installation
    assert len([r for r in github_emulator.requests if r.path.endswith("/installation")]) == 1


def test_an_accounts_installation_is_found_for_an_organisation_and_for_a_user(
    make_app: Callable[..., GitHubApp], github_emulator: GitHubEmulator, github_app: GitHubAppEmulator
) -> None:
    github_emulator.add_org("platform")
    on_org, on_user = github_app.install("platform"), github_app.install("octocat")
    app = make_app()
    assert app.owner_installation_id("platform") == on_org.id
    assert app.owner_installation_id("octocat") == on_user.id
    assert app.owner_installation_id("Platform") == on_org.id  # known now: not asked again
    asked = [r.path.removeprefix(API_PREFIX) for r in github_emulator.requests if r.path.endswith("/installation")]
    assert asked == ["/orgs/platform/installation", "/orgs/octocat/installation", "/users/octocat/installation"]
    with pytest.raises(InstallationNotFound, match="not installed on the account nobody"):
        app.owner_installation_id("nobody")


def test_a_repository_without_the_app_is_named_in_the_error(
    make_app: Callable[..., GitHubApp], github_emulator: GitHubEmulator
) -> None:
    github_emulator.create_repo("elsewhere/infra", files={"main.tf": ""})
    with pytest.raises(InstallationNotFound, match="not installed on elsewhere/infra"):
        make_app().installation_id("elsewhere/infra")


def test_the_token_works_through_pygithub_and_git_but_not_for_get_user(
    make_app: Callable[..., GitHubApp], github_emulator: GitHubEmulator
) -> None:
    app = make_app()
    installation = app.installation_id(REPO)
    client = app.github(installation)
    assert client.get_repo(REPO).full_name == REPO
    token = app.token(installation)
    answer = requests.get(f"{github_emulator.api_url}/user", headers={"Authorization": f"token {token}"}, timeout=10)
    assert answer.status_code == 403
    assert answer.json()["message"] == "Resource not accessible by integration"
    assert git_ls_remote(github_emulator, token).returncode == 0
    client.close()


def test_an_expired_or_revoked_token_is_refused_by_the_api_and_by_git(
    make_app: Callable[..., GitHubApp], github_emulator: GitHubEmulator, github_app: GitHubAppEmulator
) -> None:
    app = make_app()
    token = app.token(app.installation_id(REPO))
    github_app.expire(token)
    answer = requests.get(f"{github_emulator.api_url}/repos/{REPO}", headers={"Authorization": f"token {token}"},
                          timeout=10)
    assert answer.status_code == 401
    assert answer.json()["message"] == "Bad credentials"
    assert git_ls_remote(github_emulator, token).returncode != 0


def git_ls_remote(emulator: GitHubEmulator, token: str) -> subprocess.CompletedProcess[str]:
    credentials = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return subprocess.run(
        ["git", "-c", f"http.extraHeader=Authorization: Basic {credentials}", "ls-remote",
         f"{emulator.base_url}/{REPO}.git"],
        capture_output=True, text=True, timeout=60, env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin"},
        check=False,
    )


def run_together(count: int, work: Callable[[int], str]) -> list[str]:
    """`work(i)` on `count` threads released at once; their results."""
    barrier = threading.Barrier(count)
    results: list[str] = [""] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


def test_threads_sharing_one_app_mint_one_token(
    make_app: Callable[..., GitHubApp], github_app: GitHubAppEmulator
) -> None:
    app = make_app(MemoryTokenCache())
    installation = app.installation_id(REPO)
    tokens = run_together(8, lambda _: app.token(installation))
    assert len(set(tokens)) == 1
    assert len(github_app.minted) == 1


def test_workers_sharing_redis_mint_one_token_stored_sealed_with_a_ttl(
    make_app: Callable[..., GitHubApp], github_app: GitHubAppEmulator, redis_client: Redis
) -> None:
    # Each "worker" has its own GitHubApp and Redis cache object, as separate processes would.
    workers = [make_app(redis_cache(redis_client, github_app, prefix="deploy-a:")) for _ in range(6)]
    installation = workers[0].installation_id(REPO)
    tokens = run_together(6, lambda i: workers[i].token(installation))
    assert len(set(tokens)) == 1
    assert len(github_app.minted) == 1
    keys = [key for key in redis_client.keys("*") if "github-app-token:" in str(key)]
    assert keys == [f"deploy-a:github-app-token:{github_app.app_id}:{installation}"]
    stored = str(redis_client.get(keys[0]))
    assert tokens[0] not in stored
    assert 0 < redis_client.ttl(keys[0]) <= 3600
    # A further worker starting later reads the shared token instead of minting.
    assert make_app(redis_cache(redis_client, github_app, prefix="deploy-a:")).token(installation) == tokens[0]
    assert len(github_app.minted) == 1


def test_deployments_sharing_one_redis_under_different_prefixes_share_no_token(
    make_app: Callable[..., GitHubApp], github_app: GitHubAppEmulator, redis_client: Redis
) -> None:
    """Two atlas installations of one App on one Redis (`--redis-key-prefix` a: and b:) each mint their own."""
    first = make_app(redis_cache(redis_client, github_app, prefix="team-a:"))
    second = make_app(redis_cache(redis_client, github_app, prefix="team-b:"))
    installation = first.installation_id(REPO)
    token_a, token_b = first.token(installation), second.token(installation)
    assert token_a != token_b
    assert len(github_app.minted) == 2
    keys = sorted(str(key) for key in redis_client.keys("*github-app-token*"))
    assert keys == [f"team-a:github-app-token:{github_app.app_id}:{installation}",
                    f"team-b:github-app-token:{github_app.app_id}:{installation}"]
    # Each deployment's later processes read their own deployment's token.
    assert make_app(redis_cache(redis_client, github_app, prefix="team-a:")).token(installation) == token_a
    assert make_app(redis_cache(redis_client, github_app, prefix="team-b:")).token(installation) == token_b
    assert len(github_app.minted) == 2


def test_bootstrap_keeps_the_apps_tokens_below_the_redis_key_prefix(
    github_app: GitHubAppEmulator, github_emulator: GitHubEmulator, redis_client: Redis
) -> None:
    settings = load_settings(env={
        "ATLAS_GH_APP_ID": str(github_app.app_id), "ATLAS_GH_APP_KEY": github_app.private_key_pem,
        "ATLAS_GH_API_URL": github_emulator.api_url, "ATLAS_REDIS_URL": url_of(redis_client),
        "ATLAS_REDIS_KEY_PREFIX": "staging:",
    })
    app = bootstrap.github_app(settings, bootstrap.redis_backend(settings))
    assert app is not None
    try:
        installation = app.installation_id(REPO)
        app.token(installation)
    finally:
        app.close()
    assert [str(key) for key in redis_client.keys("*")] == [
        f"staging:github-app-token:{github_app.app_id}:{installation}"]


def test_a_cache_sealed_with_another_key_is_ignored_not_trusted(
    make_app: Callable[..., GitHubApp], github_app: GitHubAppEmulator, redis_client: Redis
) -> None:
    app = make_app(redis_cache(redis_client, github_app))
    installation = app.installation_id(REPO)
    app.token(installation)
    rotated = RedisTokenCache(backend_of(redis_client), github_app.app_id, b"k" * 32)
    assert rotated.get(installation) is None


def test_a_token_is_replaced_a_few_minutes_before_it_expires(
    make_app: Callable[..., GitHubApp], github_app: GitHubAppEmulator
) -> None:
    moment = [datetime.now(UTC)]
    app = make_app(refresh_margin=timedelta(minutes=5), clock=lambda: moment[0])
    installation = app.installation_id(REPO)
    first = app.token(installation)
    moment[0] += timedelta(minutes=54)
    assert app.token(installation) == first
    moment[0] += timedelta(minutes=2)  # 4 minutes left: inside the margin
    second = app.token(installation)
    assert second != first
    assert len(github_app.minted) == 2


def test_new_tokens_are_handed_to_the_redaction_once_each(
    make_app: Callable[..., GitHubApp], github_app: GitHubAppEmulator
) -> None:
    seen: list[str] = []
    app = make_app(on_token=seen.append)
    installation = app.installation_id(REPO)
    first = app.token(installation)
    app.token(installation)
    github_app.revoke(first)
    second = app.replace_token(installation, first)
    assert seen == [first, second]


def test_a_refused_token_is_replaced_once_and_the_call_retried(
    make_app: Callable[..., GitHubApp], github_app: GitHubAppEmulator
) -> None:
    app = make_app()
    installation = app.installation_id(REPO)
    client = app.github(installation, retry=None)
    first = app.token(installation)
    github_app.revoke(first)
    repo = app.call(installation, lambda: client.get_repo(REPO))
    assert repo.full_name == REPO
    assert len(github_app.minted) == 2
    assert app.token(installation) != first
    client.close()


def test_a_second_refusal_is_not_retried_again(
    make_app: Callable[..., GitHubApp], github_emulator: GitHubEmulator, github_app: GitHubAppEmulator
) -> None:
    app = make_app()
    installation = app.installation_id(REPO)
    client = app.github(installation, retry=None)
    github_emulator.fail_next("GET", rf"/repos/{REPO}$", 401, {"message": "Bad credentials"}, times=3)
    with pytest.raises(BadCredentialsException):
        app.call(installation, lambda: client.get_repo(REPO))
    assert len(github_app.minted) == 2
    assert len([r for r in github_emulator.requests if r.path.endswith(f"/repos/{REPO}")]) == 2
    client.close()


def test_workers_replacing_the_same_refused_token_mint_one_replacement(
    make_app: Callable[..., GitHubApp], github_app: GitHubAppEmulator, redis_client: Redis
) -> None:
    workers = [make_app(redis_cache(redis_client, github_app)) for _ in range(4)]
    installation = workers[0].installation_id(REPO)
    refused = workers[0].token(installation)
    for worker in workers[1:]:
        assert worker.token(installation) == refused
    github_app.revoke(refused)
    replacements = run_together(4, lambda i: workers[i].replace_token(installation, refused))
    assert len(set(replacements)) == 1 and replacements[0] != refused
    assert len(github_app.minted) == 2


def test_an_uninstalled_app_says_so_when_minting(
    make_app: Callable[..., GitHubApp], github_app: GitHubAppEmulator
) -> None:
    app = make_app()
    installation = app.installation_id(REPO)
    github_app.uninstall(installation)
    with pytest.raises(InstallationNotFound, match=f"no installation {installation}"):
        app.token(installation)


def test_an_unreachable_github_is_a_clear_error(github_app: GitHubAppEmulator) -> None:
    app = GitHubApp(AppCredentials(github_app.app_id, github_app.private_key_pem), f"http://127.0.0.1:{free_port()}")
    with pytest.raises(AppAuthError, match=r"cannot reach GitHub at http://127\.0\.0\.1:"):
        app.token(1)
    app.close()
