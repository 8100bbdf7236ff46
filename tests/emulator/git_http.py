"""Git over smart HTTP for the emulator: `git http-backend` run as a CGI program per request.

Access is checked the way GitHub checks it: HTTP basic auth with the user `x-access-token` and a
valid token as password; anything else is refused with 401 and `WWW-Authenticate: Basic`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import re
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from werkzeug.wsgi import get_input_stream

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

GIT_PATH = re.compile(r"^/(?P<owner>[^/]+)/(?P<name>[^/]+?)\.git(?P<rest>/.*)?$")
"""`/{owner}/{name}.git/...`: the paths git clients use for a GitHub repository."""

GIT_USER = "x-access-token"
"""The basic-auth user GitHub expects with an installation or access token as password."""

_UNAUTHORIZED_BODY = b"Invalid username or token. Password authentication is not supported for Git operations.\n"
_CHUNK = 64 * 1024


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic …` header, or None."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class GitAccess:
    """What the git endpoint asks the emulator: who a token is and which repositories exist."""

    def __init__(
        self,
        login_for_token: Callable[[str], str | None],
        repository: Callable[[str], tuple[Path, bool] | None],
        after_push: Callable[[str], None],
    ) -> None:
        self.login_for_token = login_for_token
        # full name -> (bare repository path, private), or None when there is no such repository.
        self.repository = repository
        self.after_push = after_push


class GitHttpBackend:
    """A WSGI app serving `/{owner}/{name}.git/...` from bare repositories under `project_root`.

    `path` and `users` say which URLs name a repository and which basic-auth users carry a token;
    GitHub's by default, another host's (GitLab's nested groups, its `oauth2` user) when given.
    """

    def __init__(
        self,
        project_root: Path,
        access: GitAccess,
        *,
        path: re.Pattern[str] = GIT_PATH,
        users: tuple[str, ...] = (GIT_USER,),
        realm: str = "GitHub",
        unauthorized_body: bytes = _UNAUTHORIZED_BODY,
    ) -> None:
        self.project_root = project_root
        self.access = access
        self.path = path
        self.users = users
        self.realm = realm
        self.unauthorized_body = unauthorized_body

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        match = self.path.match(path)
        if match is None:
            return _plain(start_response, "404 Not Found", b"Not Found\n")
        full_name = f"{match['owner']}/{match['name']}"
        query = environ.get("QUERY_STRING", "")
        is_push = "git-receive-pack" in query or (match["rest"] or "").endswith("/git-receive-pack")

        login: str | None = None
        credentials = basic_credentials(environ.get("HTTP_AUTHORIZATION"))
        if credentials is not None:
            user, password = credentials
            login = self.access.login_for_token(password) if user in self.users else None
            if login is None:
                return self._unauthorized(start_response)
        found = self.access.repository(full_name)
        if login is None and (found is None or found[1] or is_push):
            return self._unauthorized(start_response)
        if found is None:
            return _plain(start_response, "404 Not Found", b"Repository not found.\n")

        bare_path, _private = found
        relative = bare_path.relative_to(self.project_root).as_posix()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_PROJECT_ROOT": str(self.project_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": f"/{relative}{match['rest'] or ''}",
            "REQUEST_METHOD": environ.get("REQUEST_METHOD", "GET"),
            "QUERY_STRING": query,
            "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
            "REMOTE_USER": login or "",
            "REMOTE_ADDR": environ.get("REMOTE_ADDR", "127.0.0.1"),
            "SERVER_PROTOCOL": environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
        }
        chunked = environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
        if environ.get("CONTENT_LENGTH") and not chunked:
            env["CONTENT_LENGTH"] = environ["CONTENT_LENGTH"]
        # git sends large requests gzipped; http-backend inflates them itself when told so.
        if environ.get("HTTP_CONTENT_ENCODING"):
            env["HTTP_CONTENT_ENCODING"] = environ["HTTP_CONTENT_ENCODING"]
        if environ.get("HTTP_GIT_PROTOCOL"):
            env["GIT_PROTOCOL"] = environ["HTTP_GIT_PROTOCOL"]

        proc = subprocess.Popen(
            ["git", "http-backend"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        body = get_input_stream(environ)
        pump = threading.Thread(target=_copy_and_close, args=(body, proc.stdin), daemon=True)
        pump.start()
        errors: list[bytes] = []
        drain = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
        drain.start()

        status = "200 OK"
        headers: list[tuple[str, str]] = []
        while True:
            line = proc.stdout.readline()
            if not line or line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("latin-1").rstrip("\r\n").partition(":")
            if name.lower() == "status":
                status = value.strip()
            else:
                headers.append((name.strip(), value.strip()))
        start_response(status, headers)
        return self._stream(proc, pump, drain, errors, full_name if is_push else None)

    def _unauthorized(self, start_response: StartResponse) -> list[bytes]:
        start_response(
            "401 Unauthorized",
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(self.unauthorized_body))),
                ("WWW-Authenticate", f'Basic realm="{self.realm}"'),
            ],
        )
        return [self.unauthorized_body]

    def _stream(
        self,
        proc: subprocess.Popen[bytes],
        pump: threading.Thread,
        drain: threading.Thread,
        errors: list[bytes],
        pushed_to: str | None,
    ) -> Iterator[bytes]:
        assert proc.stdout is not None
        try:
            while chunk := proc.stdout.read1(_CHUNK):  # type: ignore[attr-defined]
                yield chunk
        finally:
            proc.stdout.close()
            code = proc.wait()
            pump.join(timeout=5)
            drain.join(timeout=5)
            if code != 0:
                log.warning("git http-backend exited %s: %s", code, b"".join(errors).decode(errors="replace"))
            if pushed_to is not None:
                self.access.after_push(pushed_to)


def _copy_and_close(source: IO[bytes], sink: IO[bytes]) -> None:
    try:
        while chunk := source.read(_CHUNK):
            sink.write(chunk)
    except (BrokenPipeError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.close()


def _plain(start_response: StartResponse, status: str, body: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]
