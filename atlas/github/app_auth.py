"""GitHub App authentication: the App's JWT, and installation tokens minted once and shared.

An App signs a short JWT (RS256, `iss` = app id) with its private key and trades it for an
installation token (`POST /app/installations/{id}/access_tokens`), valid for an hour. Tokens are
kept per installation until `refresh_margin` before their `expires_at`, in a `TokenCache`: in
process (`MemoryTokenCache`) or in Redis (`RedisTokenCache`, sealed with a key derived from the
App's private key, on the Redis backend and below its key prefix), and minted under the cache's lock
so that N workers mint one token, not N.
A token GitHub refuses (401) is replaced once and the call retried (`GitHubApp.call`).

Neither the key nor a token appears in an error message or a repr; `GitHubApp(on_token=…)` hands
each token to the log redaction before it is used, so that none reaches a log either.

Over 500 lines on purpose: signing, minting, caching in process and in Redis, and replacing a refused
token are one lifecycle of one credential, read in order.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import jwt
import requests
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from github import Auth, BadCredentialsException, Github, GithubException, GithubIntegration, UnknownObjectException
from redis.exceptions import LockError, RedisError

from atlas.github.ratelimit import RedisKeys

log = logging.getLogger(__name__)

T = TypeVar("T")

GITHUB_API_URL = "https://api.github.com"
JWT_BACKDATE = 60
"""Seconds `iat` is set in the past, so that a clock a little ahead of GitHub's is not refused."""
JWT_LIFETIME = 540
"""Seconds from now to `exp`: `exp - iat` is GitHub's maximum of 600, and `exp` stays inside it
even when this clock runs up to a minute ahead of GitHub's."""
JWT_MAX_LIFETIME = 600
"""GitHub refuses a JWT whose `exp` is more than ten minutes ahead."""
REFRESH_MARGIN = timedelta(minutes=5)
"""A cached token is replaced this long before its `expires_at`, so no call starts with a dying token."""
MINT_LOCK_TIMEOUT = 30.0
"""Seconds a worker may hold the shared minting lock (it expires should the worker die holding it)."""
MINT_LOCK_WAIT = 60.0
"""Seconds a worker waits for another to finish minting before giving up."""
BOT_SUFFIX = "[bot]"

_SEAL_INFO = b"atlas github-app installation-token cache v1"
_NONCE_BYTES = 12


class AppKeyError(ValueError):
    """The App's private key cannot be used; the message names the problem, never the key."""


class AppAuthError(RuntimeError):
    """GitHub refused the App or one of its installations; the message carries no secret."""


class InstallationNotFound(AppAuthError):
    """The App is not installed on the repository (or may not see it)."""


# The App and its JWT


def load_private_key(pem: str | bytes, *, source: str = "--gh-app-key") -> RSAPrivateKey:
    """The RSA private key in `pem`, or one `AppKeyError` line that says what is wrong with it.

    `source` names where the key came from (a flag or a file) in the message.
    """
    data = pem.encode() if isinstance(pem, str) else pem
    data = data.strip()
    if not data:
        raise AppKeyError(f"the GitHub App private key from {source} is empty")
    if b"-----BEGIN" not in data:
        raise AppKeyError(
            f"the GitHub App private key from {source} is not PEM: expected the .pem file GitHub "
            "generated, starting with -----BEGIN RSA PRIVATE KEY-----"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise AppKeyError(
            f"the GitHub App private key from {source} is encrypted: give the unencrypted key GitHub generated"
        ) from None
    except Exception:
        # The library's message may quote the input; `from None` keeps the key out of tracebacks too.
        raise AppKeyError(
            f"the GitHub App private key from {source} could not be parsed: it is not a valid PEM private "
            "key (download a new one from the App's settings if the file is damaged)"
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise AppKeyError(
            f"the GitHub App private key from {source} is not an RSA key: GitHub Apps sign with RS256"
        )
    return key


class AppCredentials:
    """A GitHub App's id and private key, which sign the App's JWTs."""

    def __init__(
        self, app_id: int | str, private_key: str | bytes, *, source: str = "--gh-app-key",
        clock: Callable[[], float] = time.time,
    ) -> None:
        text_id = str(app_id).strip()
        if not text_id.isdigit():
            raise AppKeyError(f"the GitHub App id must be a number (the App's settings show it), not {text_id!r}")
        self.app_id = text_id
        self._key = load_private_key(private_key, source=source)
        self._clock = clock

    @classmethod
    def from_key_file(cls, app_id: int | str, path: Path | str, **kwargs: Any) -> AppCredentials:
        """Credentials with the key read from `path` (`--gh-app-key-file`)."""
        source = f"--gh-app-key-file {path}"
        try:
            pem = Path(path).read_bytes()
        except OSError as error:
            raise AppKeyError(f"cannot read the GitHub App private key file {path}: {error.strerror}") from None
        return cls(app_id, pem, source=source, **kwargs)

    def __repr__(self) -> str:
        return f"AppCredentials(app_id={self.app_id!r})"

    def claims(self) -> dict[str, int | str]:
        """`iat` back-dated for clock drift, `exp` inside GitHub's ten minutes, `iss` the app id."""
        now = int(self._clock())
        return {"iat": now - JWT_BACKDATE, "exp": now + JWT_LIFETIME, "iss": self.app_id}

    def jwt(self) -> str:
        """A freshly signed JWT authenticating as the App (`Authorization: Bearer …`)."""
        return jwt.encode(self.claims(), self._key, algorithm="RS256")

    def sealing_key(self) -> bytes:
        """A 256-bit key derived from the private key, for sealing tokens kept outside the process."""
        der = self._key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SEAL_INFO).derive(der)


class _AppJWTAuth(Auth.AppAuth):
    """PyGithub's App auth with atlas's claims (PyGithub builds its own otherwise)."""

    def __init__(self, credentials: AppCredentials) -> None:
        super().__init__(credentials.app_id, sign_func=lambda _claims: credentials.jwt())
        self._credentials = credentials

    def create_jwt(self, expiration: int | None = None) -> str:
        return self._credentials.jwt()


# Installation tokens and where they are kept


@dataclass(frozen=True)
class InstallationToken:
    """An installation token and when GitHub lets it expire."""

    installation_id: int
    token: str = field(repr=False)
    expires_at: datetime

    def fresh(self, margin: timedelta, now: datetime | None = None) -> bool:
        """Whether it is still good for at least `margin`."""
        return self.expires_at - margin > (now or datetime.now(UTC))


class TokenCache(Protocol):
    """Where installation tokens are kept between calls, and shared between workers."""

    def get(self, installation_id: int) -> InstallationToken | None:
        """The token kept for the installation, if any (possibly close to its expiry)."""
        ...

    def put(self, token: InstallationToken) -> None:
        """Keep `token` for its installation, replacing any other, until it expires."""
        ...

    def mint_lock(self, installation_id: int) -> AbstractContextManager[object]:
        """Held while a token of the installation is minted, so that only one is."""
        ...


class MemoryTokenCache:
    """Tokens kept in this process, shared by its threads (the embedded default)."""

    def __init__(self) -> None:
        self._tokens: dict[int, InstallationToken] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, installation_id: int) -> InstallationToken | None:
        with self._guard:
            return self._tokens.get(installation_id)

    def put(self, token: InstallationToken) -> None:
        with self._guard:
            self._tokens[token.installation_id] = token

    def mint_lock(self, installation_id: int) -> AbstractContextManager[object]:
        with self._guard:
            return self._locks.setdefault(installation_id, threading.Lock())


class RedisTokenCache:
    """Tokens kept in Redis for every worker, each until its `expires_at` (the key's TTL).

    On the Redis backend (`atlas.stores.redis.backend.RedisBackend`), whose prefix (`--redis-key-prefix`)
    starts every key, so that deployments sharing one Redis share no token:
    `{prefix}github-app-token:{app id}:{installation id}` holds the token sealed (AES-GCM) with
    `sealing_key` (`AppCredentials.sealing_key()`), so that a Redis dump or RDB file does not hold
    a usable token; `{prefix}github-app-token-lock:{app id}:{installation id}` is the minting lock.
    """

    def __init__(
        self,
        backend: RedisKeys,
        app_id: int | str,
        sealing_key: bytes,
        *,
        lock_timeout: float = MINT_LOCK_TIMEOUT,
        lock_wait: float = MINT_LOCK_WAIT,
    ) -> None:
        if len(sealing_key) != 32:
            raise ValueError("the sealing key must be 32 bytes (AppCredentials.sealing_key())")
        self.backend = backend
        self.app_id = str(app_id)
        self._aead = AESGCM(sealing_key)
        self._lock_timeout = lock_timeout
        self._lock_wait = lock_wait

    def token_key(self, installation_id: int) -> str:
        return self.backend.key("github-app-token", self.app_id, str(installation_id))

    def lock_key(self, installation_id: int) -> str:
        return self.backend.key("github-app-token-lock", self.app_id, str(installation_id))

    def get(self, installation_id: int) -> InstallationToken | None:
        raw = self.backend.redis.get(self.token_key(installation_id))
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            sealed = base64.b64decode(data["sealed"])
            token = self._aead.decrypt(
                sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], self._aad(installation_id)
            ).decode()
            expires_at = datetime.fromisoformat(data["expires_at"])
        except (ValueError, KeyError, TypeError, InvalidTag):
            # Sealed with another key (the App's key was rotated) or damaged: mint a new one.
            log.warning("ignoring an unreadable cached GitHub App token", extra={"installation": installation_id})
            return None
        return InstallationToken(installation_id, token, expires_at)

    def put(self, token: InstallationToken) -> None:
        ttl_ms = int((token.expires_at - datetime.now(UTC)).total_seconds() * 1000)
        if ttl_ms <= 0:
            return
        nonce = os.urandom(_NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, token.token.encode(), self._aad(token.installation_id))
        value = json.dumps(
            {"expires_at": token.expires_at.isoformat(), "sealed": base64.b64encode(sealed).decode()}
        )
        self.backend.redis.set(self.token_key(token.installation_id), value, px=ttl_ms)

    @contextmanager
    def mint_lock(self, installation_id: int) -> Iterator[object]:
        lock = self.backend.redis.lock(
            self.lock_key(installation_id), timeout=self._lock_timeout, blocking_timeout=self._lock_wait
        )
        try:
            acquired = lock.acquire()
        except (LockError, RedisError) as error:
            raise AppAuthError(f"cannot take the GitHub App token lock in Redis: {error}") from error
        if not acquired:
            raise AppAuthError(
                f"another atlas process has been minting a token for installation {installation_id} "
                f"for over {self._lock_wait:g} s; giving up"
            )
        try:
            yield lock
        finally:
            try:
                lock.release()
            except LockError:
                # Held past its timeout; another worker may hold it now, which is what the timeout is for.
                log.warning("the GitHub App token lock expired while held", extra={"installation": installation_id})

    def _aad(self, installation_id: int) -> bytes:
        # Binds a sealed token to its key, so that one cannot be copied under another installation.
        return f"{self.app_id}:{installation_id}".encode()


# The App as atlas uses it


@dataclass(frozen=True)
class AppInfo:
    """What `GET /app` says about the App."""

    id: int
    slug: str
    name: str
    html_url: str


class GitHubApp:
    """A GitHub App's view of GitHub: its identity, its installations and their tokens."""

    def __init__(
        self,
        credentials: AppCredentials,
        api_url: str = GITHUB_API_URL,
        cache: TokenCache | None = None,
        *,
        slug: str | None = None,
        refresh_margin: timedelta = REFRESH_MARGIN,
        timeout: int = 30,
        on_token: Callable[[str], None] | None = None,
        default_installation: int | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`on_token` is called with each token the process comes to hold (minted here or read from
        the shared cache), before it is used: hand it to the log redaction. `clock` is for tests."""
        self.credentials = credentials
        self.api_url = api_url.rstrip("/")
        self.cache: TokenCache = cache if cache is not None else MemoryTokenCache()
        self.refresh_margin = refresh_margin
        self._slug = slug.strip() if slug else None
        self._integration = GithubIntegration(
            base_url=self.api_url,
            auth=_AppJWTAuth(credentials),
            timeout=timeout,
            seconds_between_requests=None,
            seconds_between_writes=None,
        )
        self._lock = threading.Lock()
        # Tokens this process already holds, so that a Redis cache is read once per token, not per call.
        self._held: dict[int, InstallationToken] = {}
        self._installations: dict[str, int] = {}
        self._on_token = on_token
        # --gh-app-installation-id: for a repository GitHub names no installation for.
        self.default_installation = default_installation
        self._clock = clock

    def __repr__(self) -> str:
        return f"GitHubApp(app_id={self.app_id!r}, api_url={self.api_url!r})"

    @property
    def app_id(self) -> str:
        return self.credentials.app_id

    def close(self) -> None:
        self._integration.close()

    # Identity

    def info(self) -> AppInfo:
        """`GET /app` with the App's JWT; an `AppAuthError` if GitHub refuses the JWT."""
        with self._refused_as_error("reading the App (GET /app)"):
            app = self._integration.get_app()
            return AppInfo(id=int(app.id), slug=str(app.slug), name=str(app.name), html_url=str(app.html_url))

    @property
    def slug(self) -> str:
        """The App's slug: as configured, else read once from `GET /app`."""
        if self._slug is None:
            slug = self.info().slug
            with self._lock:
                self._slug = slug
        return self._slug

    @property
    def bot_login(self) -> str:
        """The login GitHub shows on the App's comments and check runs: `SLUG[bot]`."""
        return f"{self.slug}{BOT_SUFFIX}"

    # Installations

    def installation_id(self, full_name: str, delivery: Mapping[str, Any] | None = None) -> int:
        """The installation for the repository: the delivery's `installation.id`, else asked of GitHub."""
        given = (delivery or {}).get("installation")
        if isinstance(given, Mapping) and isinstance(given.get("id"), int) and not isinstance(given["id"], bool):
            return int(given["id"])
        key = full_name.lower()
        with self._lock:
            known = self._installations.get(key)
        if known is not None:
            return known
        owner, _, name = full_name.partition("/")
        what = f"finding the App's installation on {full_name}"
        with self._refused_as_error(what):
            try:
                found = int(self._integration.get_repo_installation(quote(owner, safe=""), quote(name, safe="")).id)
            except UnknownObjectException:
                if self.default_installation is not None:
                    return self.default_installation
                raise InstallationNotFound(
                    f"GitHub App {self.app_id} is not installed on {full_name} (or may not see it): install it "
                    "there, or add the repository to the installation"
                ) from None
        with self._lock:
            self._installations[key] = found
        return found

    def remember_installation(self, full_name: str, installation_id: int) -> None:
        """Note the repository's installation, as a delivery names it, so that no lookup is needed."""
        with self._lock:
            self._installations[full_name.lower()] = installation_id

    def owner_installation_id(self, owner: str) -> int:
        """The installation on an organisation (`GET /orgs/{org}/installation`), else on a user account
        (`GET /users/{user}/installation`): what org-wide calls such as team membership act as."""
        key = owner.lower() + "/"
        with self._lock:
            known = self._installations.get(key)
        if known is not None:
            return known
        login = quote(owner, safe="")
        with self._refused_as_error(f"finding the App's installation on {owner}"):
            try:
                found = int(self._integration.get_org_installation(login).id)
            except UnknownObjectException:
                try:
                    found = int(self._integration.get_user_installation(login).id)
                except UnknownObjectException:
                    raise InstallationNotFound(
                        f"GitHub App {self.app_id} is not installed on the account {owner}: install it there"
                    ) from None
        with self._lock:
            self._installations[key] = found
        return found

    # Tokens

    def token(self, installation_id: int) -> str:
        """A token of the installation good for at least `refresh_margin`, minted only when none is."""
        held = self._fresh(self._held_token(installation_id)) or self._fresh(self.cache.get(installation_id))
        if held is None:
            with self.cache.mint_lock(installation_id):
                # Another worker may have minted while this one waited for the lock.
                held = self._fresh(self.cache.get(installation_id))
                if held is None:
                    held = self._mint(installation_id)
                    self.cache.put(held)
        self._hold(held)
        return held.token

    def replace_token(self, installation_id: int, refused: str) -> str:
        """A token other than `refused` (which GitHub answered 401 to): another worker's newer one, or a new one."""
        with self._lock:
            if (held := self._held.get(installation_id)) is not None and held.token == refused:
                del self._held[installation_id]
        with self.cache.mint_lock(installation_id):
            current = self._fresh(self.cache.get(installation_id))
            if current is None or current.token == refused:
                current = self._mint(installation_id)
                self.cache.put(current)
        self._hold(current)
        return current.token

    def call(self, installation_id: int, action: Callable[[], T]) -> T:
        """`action()`, run again once with a new token if GitHub refuses the current one (401)."""
        used = self.token(installation_id)
        try:
            return action()
        except BadCredentialsException:
            log.info("GitHub refused the installation token; replacing it", extra={"installation": installation_id})
            self.replace_token(installation_id, used)
            return action()

    def auth(self, installation_id: int) -> InstallationAuth:
        """PyGithub authentication that sends the installation's current token on every request."""
        return InstallationAuth(self, installation_id)

    def github(self, installation_id: int, **kwargs: Any) -> Github:
        """A PyGithub client acting as the installation (`kwargs` go to `Github`)."""
        return Github(base_url=self.api_url, auth=self.auth(installation_id), **kwargs)

    def _mint(self, installation_id: int) -> InstallationToken:
        with self._refused_as_error(f"minting a token for installation {installation_id}"):
            try:
                granted = self._integration.get_access_token(installation_id)
            except UnknownObjectException:
                raise InstallationNotFound(
                    f"GitHub App {self.app_id} has no installation {installation_id} (was it uninstalled?)"
                ) from None
        expires_at = granted.expires_at
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        token = InstallationToken(installation_id, str(granted.token), expires_at)
        log.info(
            "minted a GitHub App installation token",
            extra={"installation": installation_id, "expires_at": expires_at.isoformat()},
        )
        return token

    def _held_token(self, installation_id: int) -> InstallationToken | None:
        with self._lock:
            return self._held.get(installation_id)

    def _hold(self, token: InstallationToken) -> None:
        with self._lock:
            previous = self._held.get(token.installation_id)
            self._held[token.installation_id] = token
        if self._on_token is not None and (previous is None or previous.token != token.token):
            self._on_token(token.token)

    def _fresh(self, token: InstallationToken | None) -> InstallationToken | None:
        return token if token is not None and token.fresh(self.refresh_margin, self._clock()) else None

    @contextmanager
    def _refused_as_error(self, action: str) -> Iterator[None]:
        """GitHub's refusals of the App as an `AppAuthError` with GitHub's reason (no JWT in it)."""
        try:
            yield
        except UnknownObjectException:
            raise
        except GithubException as error:
            data = error.data if isinstance(error.data, dict) else {}
            reason = data.get("message") or error.message or ""
            hint = ""
            if error.status == 401:
                hint = " (check --gh-app-id and the key, and that this machine's clock is right)"
            raise AppAuthError(f"GitHub refused the App {action}: {error.status} {reason}{hint}".rstrip()) from None
        except requests.RequestException as error:
            raise AppAuthError(f"cannot reach GitHub at {self.api_url} {action}: {type(error).__name__}") from None


class InstallationAuth(Auth.Auth):
    """PyGithub `Auth` sending the installation's current token (`Authorization: token …`)."""

    def __init__(self, app: GitHubApp, installation_id: int) -> None:
        self.app = app
        self.installation_id = installation_id

    @property
    def token_type(self) -> str:
        return "token"

    @property
    def token(self) -> str:
        return self.app.token(self.installation_id)

    @property
    def _masked_token(self) -> str:
        return "token (installation token removed)"

    def __repr__(self) -> str:
        return f"InstallationAuth(app_id={self.app.app_id!r}, installation_id={self.installation_id})"
